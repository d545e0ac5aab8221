"""HTTP endpoints of the CDS Hooks protocol: discovery, service calls, feedback.

Views are thin: parse and validate the request, gather the data, derive the
facts, run the rules, render the cards. request -> FHIR data -> facts ->
rules -> cards -> response.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cards.i18n import Translator
from cards.model import RuleContext
from cards.orders import OrderBuilder
from cards.merge import merge
from cards.rules import evaluate
from fhir_mappings.orders import UncheckableDraftOrder

from . import auth
from .errors import ApiError, error_response
from .feedback import FeedbackUnavailable
from .medications import referenced_medications
from .prefetch import PrefetchUnavailable, resolve
from .protocol import (
    CONTEXTS,
    CdsResponse,
    Discovery,
    FeedbackRequest,
    HookRequest,
    InputLimitError,
    load_json,
    validation_messages,
)
from .replay import ReplayCacheUnavailable
from .render import render_card
from .runtime import Runtime

bp = Blueprint("cds", __name__)
audit = logging.getLogger("rpl_cds.audit")
log = logging.getLogger(__name__)

JSON_TYPES = ("application/json", "application/fhir+json")
# A database outage is minutes, not milliseconds: the client should not retry at once.
FEEDBACK_RETRY_AFTER_SECONDS = 30


def runtime() -> Runtime:
    return current_app.extensions["rpl"]


def _json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    raw = _body_bytes()
    try:
        return load_json(raw, runtime().json_limits)
    except InputLimitError as exc:
        raise ApiError(400, str(exc)) from None
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None


def _body_bytes() -> bytes:
    """The request body; 413 above RPL_MAX_BODY_BYTES, whether it has a Content-Length or is
    chunked, and 400 for a chunked body the server cannot decode (issue #13)."""
    try:
        raw = request.get_data(cache=False)  # 413 at once for a Content-Length above the limit
        # A chunked body is read up to the limit and stops there without an error, and the
        # service answered from its first RPL_MAX_BODY_BYTES: one byte more from the server's
        # stream says whether there was more.
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is None and limit is not None and len(raw) >= limit \
                and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
        return raw
    except (ApiError, HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - the server's decoding of the body (gunicorn: InvalidChunkSize, ...)
        log.info("request body not readable: %s", type(exc).__name__)
        raise ApiError(400, "the request body could not be read (malformed chunked transfer encoding)") from None


def _service(service_id: str):
    service = runtime().services.get(service_id)
    if service is None:
        raise ApiError(404, f"no CDS service with id {service_id!r}; see GET /cds-services")
    return service


@bp.get("/cds-services")
@bp.get("/cds-services/", endpoint="discovery")  # clients and people type the discovery URL with a slash
def discovery():
    services = [s.descriptor() for s in runtime().services.values()]
    return jsonify(Discovery(services=services).dump())


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str):
    rt = runtime()
    service = _service(service_id)
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        hook_request = HookRequest.model_validate(body)
    except ValidationError as exc:
        raise ApiError(400, validation_messages(exc)) from None
    g.audit["hookInstance"] = hook_request.hookInstance
    if hook_request.hook != service.hook.value:
        raise ApiError(400, f"hook {hook_request.hook!r} does not match service {service_id!r}, which answers {service.hook.value!r}")
    try:
        context = CONTEXTS[service.hook.value].model_validate(hook_request.context)
    except ValidationError as exc:
        raise ApiError(400, validation_messages(exc, prefix="context.")) from None

    token = hook_request.fhirAuthorization.access_token if hook_request.fhirAuthorization else None
    g.fhir_budget = rt.fhir_clients.budget()  # the call's FHIR deadline and bytes, held until it ends
    try:
        data = resolve(
            service.prefetch,
            hook_request.prefetch,
            context.patientId,
            hook_request.fhirServer,
            token,
            rt.fhir_clients,
            g.fhir_budget,
        )
    except PrefetchUnavailable as exc:
        raise ApiError(412, str(exc)) from None

    draft_orders = getattr(context, "draftOrders", None)
    values = list(data.values())
    # Medications the orders reference but neither prefetch nor draftOrders carried (service/medications.py).
    medications = referenced_medications(context.patientId, data, draft_orders, hook_request.fhirServer, token,
                                         rt.fhir_clients, g.fhir_budget)
    if medications is not None:
        values.append(medications)
    try:
        facts = rt.facts.facts(
            context.patientId,
            values,
            rt.today(),
            draft_orders=draft_orders,
            selections=getattr(context, "selections", ()),
        )
    except (InputLimitError, UncheckableDraftOrder) as exc:  # in a resource a rule reads (see ResourceParser)
        raise ApiError(400, str(exc)) from None
    if facts.unresolved_medications:  # orders whose medication is unknown (said in the audit line)
        g.audit["unresolvedMedications"] = len(facts.unresolved_medications)
    every_row = evaluate(facts, RuleContext(
        hook=service.hook,
        orders=OrderBuilder(rt.valuesets, context.patientId, rt.order_templates),
        department=rt.department,
    ), merged=False)
    # Rows set to silent are held back before the cards are merged (cards/merge.py), so that a
    # silent row is not shown inside a merged card; they are still recorded, as silent.
    silent = [d for d in every_row if rt.governance.is_silent(service.hook.value, d)]
    drafts = [*merge([d for d in every_row if d not in silent], service.hook, rt.department.workup_order_all), *silent]
    language = _language(rt)
    translate = Translator(rt.translations[language], language)
    cards = rt.governance.issue(  # recorded; silent and suppressed ones held back
        service_id=service_id,
        hook=service.hook.value,
        drafts=drafts,
        cards=[render_card(d, translate, rt.new_uuid) for d in drafts],
        fhir_server=hook_request.fhirServer,
        patient_id=context.patientId,
        iss=g.audit.get("iss"),
        tenant=g.audit.get("tenant"),
    )
    g.audit["cards"] = [c.source.topic.code for c in cards]
    g.audit["rows"] = [c.extension["org.rpl-cds.carried-ids"] if c.extension else [c.source.topic.code] for c in cards]
    if len(cards) < len(drafts):
        g.audit["held_back"] = len(drafts) - len(cards)
    return current_app.response_class(CdsResponse(cards=cards).dump_json(), mimetype="application/json")


def _language(rt: Runtime) -> str:
    if request.accept_languages:
        default = rt.settings.language  # first, so that 'Accept-Language: *' gets the default
        best = request.accept_languages.best_match((default, "en" if default == "nl" else "nl"))
        if best:
            return best
    return rt.settings.language


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    _service(service_id)
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        items = FeedbackRequest.model_validate(body).feedback
    except ValidationError as exc:
        raise ApiError(400, validation_messages(exc)) from None
    try:
        result = runtime().feedback.add(service_id, items)
    except FeedbackUnavailable:
        unavailable = error_response(503, ["the feedback store is unavailable; nothing was stored, please retry"])
        unavailable.headers["Retry-After"] = str(FEEDBACK_RETRY_AFTER_SECONDS)
        return unavailable
    runtime().metrics.feedback_items([item.outcome for item in items], result.duplicates)
    # Items sent again are acknowledged (the client may stop resending) but stored once.
    return jsonify({"stored": result.stored, "duplicates": result.duplicates})


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the feedback database is reachable."""
    if runtime().feedback.ping():
        return jsonify({"status": "ready", "database": "ok"})
    response = jsonify({"status": "not ready", "database": "unreachable"})
    response.status_code = 503
    return response


@bp.get("/metrics")
def metrics():
    """Prometheus metrics of every worker of this instance (no patient data)."""
    body, content_type = runtime().metrics.exposition()
    return current_app.response_class(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of these endpoints (public: it holds no data)."""
    from .openapi import document

    return jsonify(document())


# -- authentication and the audit log: every call but the health probes, metrics and the API document
# The probes and Prometheus's scrapes (every few seconds) are neither audited nor behind the EHR's JWT.
UNAUDITED = frozenset({"cds.healthz", "cds.readyz", "cds.metrics", "cds.openapi"})


@bp.before_app_request
def _authenticate():
    """Start the audit record, then let only an authenticated CDS client through."""
    if request.endpoint in UNAUDITED or request.method == "OPTIONS":
        return None  # health probes, and CORS preflights: no call, no token, no data (flask-cors answers them)
    started = time.perf_counter()
    g.audit = {"endpoint": (request.endpoint or "none").removeprefix("cds."), "started": started}
    service_id = (request.view_args or {}).get("service_id")
    if service_id is not None:
        g.audit["service"] = service_id[:100]
    if (request.endpoint or "").startswith("admin."):  # its own credential (service/admin.py), not the EHR's
        return None
    try:
        client = auth.authenticate_request(runtime().settings)
    except auth.AuthError:
        return auth.unauthorized()
    except ReplayCacheUnavailable as exc:
        log.error("authentication impossible: %s", exc)
        raise ApiError(503, "authentication is unavailable; try again later") from None
    if client is not None:
        g.audit["iss"] = client.iss
        if client.tenant:
            g.audit["tenant"] = client.tenant[:100]
    return None


@bp.teardown_app_request
def _release_fhir_budget(_exc):
    """The answer is built: the call's FHIR data no longer counts against the worker's bytes."""
    budget = g.pop("fhir_budget", None)
    if budget is not None:
        budget.release()


@bp.after_app_request
def _audit_line(response):
    """One JSON line per call: what was called, by whom, with what outcome; never patient data or tokens."""
    record = getattr(g, "audit", None)
    if record is not None:
        started = record.pop("started", None)
        record["status"] = response.status_code
        seconds = time.perf_counter() - started if started is not None else None
        if seconds is not None:
            record["latency_ms"] = round(seconds * 1000, 2)
        service = record.get("service", "")
        if service and service not in runtime().services:
            service = "unknown"  # a label per made-up id in the URL would grow without bound
        runtime().metrics.request(record["endpoint"], service, response.status_code, seconds)
        audit.info("call", extra={"audit": record})
    return response
