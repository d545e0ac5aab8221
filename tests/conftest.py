"""Fixtures: a fresh app per test (temp SQLite, fixed date, counted uuids),
its client, and a checker that validates every CDS Hooks response the suite
produces against the project's JSON Schemas."""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from service import create_app
from service.config import Settings
# The one session-wide Chromium: a test module that imported the fixture itself would get a second
# session fixture, and a second Playwright inside the first one's event loop fails.
from tests.browser import browser  # noqa: F401
from tests.prerequisites import pytest_collection_modifyitems, pytest_configure  # noqa: F401  (session-start check)

TODAY = date(2026, 11, 23)
SCHEMAS = Path(__file__).parent.parent / "service" / "schemas"
FHIR_BASE = "https://fhir.example.org/r4"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "version2(change): the catalogue version 2 change a test is about (listed in docs/coverage.md)"
    )


def schema_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


RESPONSE_SCHEMA = schema_validator("response")
DISCOVERY_SCHEMA = schema_validator("discovery")


def make_settings(tmp_path: Path, **overrides) -> Settings:
    values = dict(
        database_url=f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        fhir_server_allowlist=(FHIR_BASE,),
        language="en",
        fhir_retries=0,
        auth_enabled=False,  # tests/test_auth.py turns it on
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path, request):
    # a test may set settings: @pytest.mark.parametrize("settings", [{...}], indirect=True)
    return make_settings(tmp_path, **getattr(request, "param", {}))


@pytest.fixture
def app(settings):
    counter = itertools.count(1)
    app = create_app(settings, today=lambda: TODAY, new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}")
    violations: list[str] = []

    @app.after_request
    def _check_schema(response):
        if response.status_code == 200 and response.is_json:
            from flask import request

            body = response.get_json()
            if request.method == "GET" and request.path == "/cds-services":
                errors = list(DISCOVERY_SCHEMA.iter_errors(body))
            elif request.method == "POST" and not request.path.endswith("/feedback"):
                errors = list(RESPONSE_SCHEMA.iter_errors(body))
            else:
                errors = []
            violations.extend(f"{request.path}: {e.message} at {list(e.path)}" for e in errors)
        return response

    yield app
    app.extensions["rpl"].close()
    assert not violations, "responses violate the CDS Hooks schema:\n" + "\n".join(violations)


@pytest.fixture
def client(app):
    return app.test_client()


class Cds:
    """Calls the services like an EHR would."""

    def __init__(self, client):
        self.client = client

    def call(self, hook: str, body: dict, language: str = "en", expect: int = 200):
        response = self.client.post(f"/cds-services/rpl-{hook}", json=body, headers={"Accept-Language": language})
        assert response.status_code == expect, response.get_data(as_text=True)
        return response.get_json()

    def cards(self, hook: str, body: dict, language: str = "en") -> list[dict]:
        return self.call(hook, body, language)["cards"]

    def topics(self, hook: str, body: dict) -> list[str]:
        """The catalogue rows shown, a merged card's carried rows included."""
        from tests.builders import carried_ids

        return [rec_id for card in self.cards(hook, body) for rec_id in carried_ids(card)]


@pytest.fixture
def cds(client):
    return Cds(client)
