"""The audit log: one JSON line per call (logger rpl_cds.audit) with what was called, by
which client, the outcome and the card topics; never patient data, resources or tokens,
and no token in any other log line either."""

from __future__ import annotations

import json
import re

import pytest
import responses

from service.logs import JsonFormatter
from tests.builders import PID, hook_request, prefetch, rpl_diagnosis
from tests.conftest import FHIR_BASE
from tests.test_auth import DISCOVERY, FEEDBACK, FEEDBACK_BODY, ISS, SERVICE, close, issuer, new_app, token
from tests.test_prefetch import AUTH, mock_server

FORMAT = JsonFormatter()


@pytest.fixture
def secured(tmp_path):
    from tests.conftest import make_settings

    app = new_app(make_settings(tmp_path, auth_enabled=True, auth_issuers=[issuer(tenants=["hospital-a"])]))
    yield app.test_client()
    close(app)


def lines(caplog, logger: str | None = None) -> list[dict]:
    """Every captured record as the JSON line the service writes to stdout."""
    return [json.loads(FORMAT.format(r)) for r in caplog.records if logger is None or r.name == logger]


def bearer(path: str) -> dict:
    return {"Authorization": f"Bearer {token(path, tenant='hospital-a')}"}


def test_one_line_per_call_with_what_who_and_outcome(secured, caplog):
    body = hook_request("patient-view", rpl_diagnosis())
    with caplog.at_level("INFO"):
        assert secured.get(DISCOVERY, headers=bearer(DISCOVERY)).status_code == 200
        r = secured.post(SERVICE, json=body, headers=bearer(SERVICE))
        assert secured.post(FEEDBACK, json=FEEDBACK_BODY, headers=bearer(FEEDBACK)).status_code == 200
        secured.get("/healthz")  # probes are not audited
    discovery, call, feedback = lines(caplog, "rpl_cds.audit")
    assert discovery["endpoint"] == "discovery" and discovery["status"] == 200 and discovery["iss"] == ISS
    assert call["endpoint"] == "call_service" and call["service"] == "rpl-patient-view"
    assert call["hookInstance"] == body["hookInstance"]
    assert call["cards"] == [c["source"]["topic"]["code"] for c in r.get_json()["cards"]] and call["cards"]
    assert call["status"] == 200 and call["iss"] == ISS and call["tenant"] == "hospital-a"
    assert feedback["endpoint"] == "feedback" and feedback["status"] == 200
    for line in (discovery, call, feedback):
        assert line["logger"] == "rpl_cds.audit" and line["time"] and isinstance(line["latency_ms"], float)


@pytest.mark.parametrize("request_kwargs,status", [
    ({"path": SERVICE, "json": {"hook": "patient-view"}}, 400),
    ({"path": "/cds-services/nope", "json": {}}, 404),
    ({"path": SERVICE, "data": "hook=x", "content_type": "text/plain"}, 415),
    ({"path": SERVICE, "method": "GET"}, 405),
    ({"path": SERVICE, "json": hook_request("patient-view", extension={"x": "y" * 200_000})}, 400),
])
def test_error_answers_are_audited_too(secured, caplog, request_kwargs, status):
    kwargs = dict(request_kwargs)
    path, method = kwargs.pop("path"), kwargs.pop("method", "POST")
    with caplog.at_level("INFO"):
        r = secured.open(path, method=method, headers=bearer(path), **kwargs)
    assert r.status_code == status
    (line,) = lines(caplog, "rpl_cds.audit")
    assert line["status"] == status


def test_a_refused_call_is_audited_without_iss(secured, caplog):
    with caplog.at_level("INFO"):
        assert secured.get(DISCOVERY, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    (line,) = lines(caplog, "rpl_cds.audit")
    assert line["status"] == 401 and "iss" not in line


def _all_text(caplog) -> str:
    return "\n".join(json.dumps(line) for line in lines(caplog)) + caplog.text


@responses.activate
def test_no_token_and_no_patient_data_in_any_log_line(secured, caplog):
    """A refused JWT, an accepted one, and a FHIR fetch with an access token: none of it in the logs."""
    mock_server(responses, rpl_diagnosis())
    refused = token(SERVICE, aud="https://elsewhere.example.org/cds-services")
    accepted = token(SERVICE, tenant="hospital-a")
    body = hook_request("patient-view", fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    del body["prefetch"]
    with caplog.at_level("DEBUG"):
        assert secured.post(SERVICE, json=body, headers={"Authorization": f"Bearer {refused}"}).status_code == 401
        assert secured.post(SERVICE, json=body, headers={"Authorization": f"Bearer {accepted}"}).status_code == 200
    text = _all_text(caplog)
    assert len(lines(caplog, "rpl_cds.audit")) == 2
    for secret in (refused, accepted, AUTH["access_token"]):
        for part in secret.split("."):
            assert part not in text
    assert PID not in text and "Patient/" not in text and "Condition" not in text


def test_audit_lines_of_a_full_example_hold_no_identifier(client, caplog):
    body = hook_request("order-select", rpl_diagnosis(), drafts=({
        "resourceType": "MedicationRequest", "id": "draft-ivig-77", "status": "draft", "intent": "proposal",
        "subject": {"reference": f"Patient/{PID}"},
        "medicationCodeableConcept": {"text": "immunoglobulin"}},), data=prefetch(rpl_diagnosis()))
    with caplog.at_level("INFO"):
        assert client.post("/cds-services/rpl-order-select", json=body).status_code == 200
    (line,) = lines(caplog, "rpl_cds.audit")
    assert set(line) <= {"time", "level", "logger", "message", "endpoint", "service", "hookInstance", "cards",
                         "rows", "status", "latency_ms", "iss", "tenant"}  # rows: catalogue IDs
    text = json.dumps(line)
    assert PID not in text and "draft-ivig-77" not in text and "Practitioner" not in text
    assert not re.search(r"\b(Patient|MedicationRequest|Condition)/", text)
