"""The OpenAPI 3.1 document of the service's own endpoints: served at /openapi.json, valid,
true to the routes, and a bounded property-based run (schemathesis) against the running
service on loopback that counts no 5xx and only documented answers."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.openapi import SERVICE_IDS, document
from tests.serve import rpl_cds_serve

SCHEMA = schemathesis.openapi.from_dict(document())
EXAMPLES_PER_OPERATION = 25  # bounded: about 150 calls in all, a few seconds on loopback


def test_the_document_is_valid_openapi_3_1():
    validate(document())
    assert document()["openapi"].startswith("3.1.")


def test_the_document_is_served_without_a_token(tmp_path):
    from service import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, auth_enabled=True,
                                   auth_issuers=[{"iss": "https://ehr.example.org",
                                                  "jku_allowlist": ["https://ehr.example.org/jwks.json"]}]))
    try:
        client = app.test_client()
        response = client.get("/openapi.json")
        assert response.status_code == 200 and response.get_json() == document()
        assert client.get("/cds-services").status_code == 401  # what it documents still needs one
    finally:
        app.extensions["rpl"].close()


def test_the_document_lists_exactly_the_routes(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<service_id>", "{service_id}")
        routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert not routes - documented, f"routes missing in service/openapi.py: {sorted(routes - documented)}"
    assert not documented - routes, f"documented routes the app does not have: {sorted(documented - routes)}"
    assert set(next(p for p in document()["paths"]["/cds-services/{service_id}"]["post"]["parameters"])
               ["schema"]["enum"]) == set(SERVICE_IDS) == {s["id"] for s in app.test_client().get("/cds-services").get_json()["services"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """rpl-cds serve as in production (gunicorn), authentication off, no FHIR server allowed:
    generated requests can reach no other host."""
    tmp = tmp_path_factory.mktemp("openapi")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env.update(RPL_DATABASE_URL=f"sqlite:///{tmp / 'feedback.sqlite3'}", RPL_AUTH_ENABLED="false",
               RPL_LOG_LEVEL="WARNING")
    with rpl_cds_serve(env, tmp) as (url, _stdout, _stderr):
        yield url


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_running_service_answers_as_documented(case, served):
    case.call_and_validate(
        base_url=served, timeout=30,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
