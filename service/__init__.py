"""HTTP layer of the RPL CDS Hooks service: create_app builds a configured app.

The app's modules (Flask, the FHIR models, the rules: about 0.7 s) are imported by
create_app, not by importing this package, so that the ``rpl-cds`` command, a module of
this package, answers ``--help`` and ``--version`` at once (tests/test_cli.py checks it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings


def create_app(
    settings: Settings | None = None,
    *,
    today: Callable[[], date] = date.today,
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Flask:
    """Application factory: settings from the environment unless given (tests)."""
    from flask import Flask
    from flask_cors import CORS

    from cards.i18n import Translator, load_translations
    from cards.model import DepartmentSettings
    from cards.orders import OrderTemplateError, OrderTemplates
    from cards.supportive_care import ProtocolFileError, load_missed_miscarriage_protocol
    from fhir_mappings.facts_cache import FactsCache
    from fhir_mappings.json_limits import JsonLimits
    from fhir_mappings.resources import ResourceParser
    from fhir_mappings.settings import ExtractionSettings
    from fhir_mappings.valuesets import ValueSetIndex

    from . import auth, errors, logs
    from .admin import bp as admin_bp
    from .api import bp
    from .config import ConfigError, load_settings
    from .feedback import FeedbackStore
    from .fhir_client import FhirClients, FhirSettings
    from .governance import Governance
    from .metrics import InstrumentedClients, Metrics
    from .registry import build_services
    from .runtime import Runtime

    settings = settings or load_settings()
    logs.configure(settings.log_level)
    app = Flask(__name__)
    app.url_map.merge_slashes = False  # '/a//b' is a 404 in JSON, not a 308 redirect with an HTML body
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep the field order of the models
    valuesets = ValueSetIndex.load(settings.extra_valuesets_dir)
    try:
        order_templates = OrderTemplates.load(settings.region, settings.order_templates_dir)
    except OrderTemplateError as exc:
        raise ConfigError(f"Invalid configuration:\n  RPL_ORDER_TEMPLATES_DIR: {exc}") from None
    try:
        protocol = (load_missed_miscarriage_protocol(settings.missed_miscarriage_protocol_file)
                    if settings.missed_miscarriage_protocol_file else None)
    except ProtocolFileError as exc:
        raise ConfigError(f"Invalid configuration:\n  RPL_MISSED_MISCARRIAGE_PROTOCOL_FILE: {exc}") from None
    json_limits = JsonLimits.of(settings)
    extraction = ExtractionSettings(antibody_cutoff=settings.antibody_cutoff, loss_week_limit=settings.loss_week_limit)
    metrics = Metrics()
    feedback = FeedbackStore(settings.database_url, settings.retention_days)
    feedback.maybe_purge()  # the retention setting applies from the start
    translations = load_translations()
    app.extensions["rpl"] = Runtime(
        settings=settings,
        valuesets=valuesets,
        services=build_services(valuesets, settings.fhir_page_size),
        fhir_clients=InstrumentedClients(FhirClients(
            settings.fhir_server_allowlist,
            FhirSettings(
                connect_timeout=settings.fhir_connect_timeout,
                read_timeout=settings.fhir_read_timeout,
                max_pages=settings.fhir_max_pages,
                max_response_bytes=settings.fhir_max_response_bytes,
                retries=settings.fhir_retries,
                gzip=settings.fhir_gzip,
                call_deadline=settings.fhir_call_deadline_seconds,
                max_call_bytes=settings.fhir_max_call_bytes,
                max_worker_bytes=settings.fhir_max_worker_bytes,
                max_calls_per_server=settings.fhir_max_calls_per_server,
                max_calls_per_worker=settings.fhir_max_calls_per_worker,
            ),
        ), metrics),
        feedback=feedback,
        translations=translations,
        today=today,
        new_uuid=new_uuid,
        facts=FactsCache(settings.facts_cache_size, valuesets, extraction,
                         ResourceParser(settings.validation_cache_size, json_limits)),
        json_limits=json_limits,
        order_templates=order_templates,
        department=DepartmentSettings(region=settings.region, missed_miscarriage_protocol=protocol,
                                      workup_order_all=settings.workup_order_all),
        governance=Governance(settings, feedback, Translator(translations["en"]), metrics),
        metrics=metrics,
    )
    CORS(
        app,
        origins=list(settings.cors_origins),
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["WWW-Authenticate"],  # a browser client (the sandbox) may read why it got a 401
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
    errors.init_app(app)
    auth.init_app(app, settings)
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)  # 404 unless an admin credential is configured
    return app
