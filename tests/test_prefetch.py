"""Prefetch and FHIR fetch: use prefetch, fetch what is missing (mocked FHIR server), or 412."""

from __future__ import annotations

import json
import re

import pytest
import responses
from responses import matchers

from tests.builders import PID, bundle, carried_ids, hook_request, losses, patient, prefetch, rpl_diagnosis, tsh
from service.prefetch import DATA_NOT_AVAILABLE
from tests.conftest import FHIR_BASE

AUTH = {"access_token": "secret-token-123", "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/*.read", "subject": "rpl-cds"}


def mock_server(rsps, *resources, patient_status=200, token="secret-token-123"):
    """A FHIR server answering the service's reads and searches from the given resources."""
    headers = [matchers.header_matcher({"Authorization": f"Bearer {token}"})] if token else []
    rsps.add(responses.GET, f"{FHIR_BASE}/Patient/{PID}", json=patient() if patient_status == 200 else {},
             status=patient_status, match=headers)
    for rtype in ("Condition", "Observation", "MedicationRequest", "MedicationStatement", "ServiceRequest", "Procedure",
                  "DiagnosticReport"):
        rsps.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/{rtype}\?.*"),
                 json=bundle(*[r for r in resources if r["resourceType"] == rtype]), match=headers)


def topics(response):
    return sorted(rec_id for c in response.get_json()["cards"] for rec_id in carried_ids(c))


@responses.activate
def test_everything_fetched_when_no_prefetch(client):
    mock_server(responses, rpl_diagnosis())
    body = hook_request("patient-view", fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    del body["prefetch"]
    r = client.post("/cds-services/rpl-patient-view", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert {"D3.2", "D5.1a"} <= set(topics(r))
    assert len(responses.calls) == 8
    searched = {c.request.url.split("?")[0].rsplit("/", 1)[-1] for c in responses.calls}
    assert searched >= {"Condition", "Observation", "MedicationRequest"}
    assert all(f"patient={PID}" in c.request.url for c in responses.calls if "?" in c.request.url)


@responses.activate
def test_only_missing_keys_are_fetched(client):
    mock_server(responses, rpl_diagnosis())
    data = prefetch()  # no Condition in prefetch...
    del data["conditions"]  # ...and the key is missing: fetch it
    body = hook_request("patient-view", data=data, fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    r = client.post("/cds-services/rpl-patient-view", json=body)
    assert {"D3.2", "D5.1a"} <= set(topics(r))
    assert [c.request.url.split("?")[0] for c in responses.calls] == [f"{FHIR_BASE}/Condition"]


@responses.activate
def test_operation_outcome_in_prefetch_is_fetched(client):
    mock_server(responses, rpl_diagnosis())
    data = prefetch()
    data["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request("patient-view", data=data, fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    assert {"D3.2", "D5.1a"} <= set(topics(client.post("/cds-services/rpl-patient-view", json=body)))


@responses.activate
def test_null_prefetch_key_is_not_fetched(client):
    data = prefetch()
    data["conditions"] = None
    body = hook_request("patient-view", data=data, fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    assert client.post("/cds-services/rpl-patient-view", json=body).status_code == 200
    assert len(responses.calls) == 0


@responses.activate
def test_fetch_without_token_sends_no_authorization(client):
    mock_server(responses, token=None)
    body = hook_request("patient-view", fhirServer=FHIR_BASE)
    del body["prefetch"]
    assert client.post("/cds-services/rpl-patient-view", json=body).status_code == 200
    assert all("Authorization" not in c.request.headers for c in responses.calls)


@responses.activate
def test_next_links_are_followed(client):
    first = bundle(rpl_diagnosis())
    first["link"] = [{"relation": "next", "url": f"{FHIR_BASE}/Condition?page=2"}]
    responses.add(responses.GET, f"{FHIR_BASE}/Condition?page=2", json=bundle(losses(3)))
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Condition\?patient=.*"), json=first)
    data = prefetch()
    del data["conditions"]
    body = hook_request("patient-view", data=data, fhirServer=FHIR_BASE)
    r = client.post("/cds-services/rpl-patient-view", json=body)
    assert r.status_code == 200
    assert len(responses.calls) == 2
    # page content is merged: the loss count from page 2 is used
    d32 = next(c for c in r.get_json()["cards"] if "D3.2" in carried_ids(c))
    assert "Pregnancy losses: 3" in d32["detail"]


@responses.activate
def test_paginated_prefetch_bundle_is_completed_from_the_server(client):
    data = prefetch(losses(2))
    data["observations"]["link"] = [{"relation": "next", "url": f"{FHIR_BASE}/Observation?page=2"}]
    responses.add(responses.GET, f"{FHIR_BASE}/Observation?page=2", json=bundle(tsh(2.0, date="2026-10-01")))
    body = hook_request("patient-view", data=data, fhirServer=FHIR_BASE)
    r = client.post("/cds-services/rpl-patient-view", json=body)
    assert "D3.2" in topics(r) and "D5.1a" not in topics(r)  # the TSH on page 2 was seen


@responses.activate
def test_too_many_pages_is_412(tmp_path, caplog):
    from service import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, fhir_max_pages=2))
    looping = bundle()
    looping["link"] = [{"relation": "next", "url": f"{FHIR_BASE}/Condition?page=again"}]
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Condition.*"), json=looping)
    data = prefetch()
    del data["conditions"]
    r = app.test_client().post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data, fhirServer=FHIR_BASE))
    _412(r, "more than 2 pages", caplog)
    app.extensions["rpl"].close()


def _412(response, reason, caplog):
    """A 412 that tells the caller only that the data is not available; the reason is in the log."""
    assert response.status_code == 412, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert [issue["diagnostics"] for issue in body["issue"]] == [DATA_NOT_AVAILABLE]
    logged = [reason for record in caplog.records for reason in getattr(record, "audit", {}).get("reasons", [])]
    assert any(reason in text for text in logged), logged


def test_missing_prefetch_without_fhir_server_is_412(client):
    data = prefetch()
    del data["observations"]
    r = client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data))
    assert r.status_code == 412 and "no fhirServer" in r.get_json()["issue"][0]["diagnostics"]


@responses.activate
def test_fhir_server_not_on_allowlist_is_412_and_nothing_is_sent(client, caplog):
    data = prefetch()
    del data["observations"]
    body = hook_request("patient-view", data=data, fhirServer="https://evil.example.com/fhir", fhirAuthorization=AUTH)
    _412(client.post("/cds-services/rpl-patient-view", json=body), "allowlist", caplog)
    assert len(responses.calls) == 0


@pytest.mark.parametrize("status,text", [(500, "HTTP 500"), (401, "refused access"), (403, "refused access")])
@responses.activate
def test_fhir_server_errors_are_412(client, status, text, caplog):
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Observation.*"), json={}, status=status)
    data = prefetch()
    del data["observations"]
    _412(client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data, fhirServer=FHIR_BASE)), text, caplog)


@responses.activate
def test_unreachable_fhir_server_is_412(client, caplog):
    import requests

    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Observation.*"), body=requests.ConnectionError("down"))
    data = prefetch()
    del data["observations"]
    _412(client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data, fhirServer=FHIR_BASE)), "not reachable", caplog)


@responses.activate
def test_redirect_to_another_host_is_not_followed(client, caplog):
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Observation.*"), status=302,
                  headers={"Location": "https://elsewhere.example.net/steal"})
    data = prefetch()
    del data["observations"]
    r = client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data, fhirServer=FHIR_BASE))
    _412(r, "is not the fhirServer", caplog)
    assert all("elsewhere" not in c.request.url for c in responses.calls)


@responses.activate
def test_redirect_on_the_same_host_is_followed(client):
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Observation\?patient.*"), status=301,
                  headers={"Location": f"{FHIR_BASE}/Observation?moved=1"})
    responses.add(responses.GET, f"{FHIR_BASE}/Observation?moved=1", json=bundle(losses(2)))
    data = prefetch()
    del data["observations"]
    r = client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data, fhirServer=FHIR_BASE))
    assert {"D3.2", "D5.1a"} <= set(topics(r))


@responses.activate
def test_oversized_fhir_response_is_refused(tmp_path, caplog):
    from service import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, fhir_max_response_bytes=5000))
    big = bundle(*[losses(2) for _ in range(100)])
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Observation.*"), body=json.dumps(big))
    data = prefetch()
    del data["observations"]
    r = app.test_client().post("/cds-services/rpl-patient-view", json=hook_request("patient-view", data=data, fhirServer=FHIR_BASE))
    _412(r, "larger than allowed", caplog)
    app.extensions["rpl"].close()


@responses.activate
def test_missing_patient_is_no_data_not_an_error(client):
    mock_server(responses, rpl_diagnosis(), patient_status=404)
    body = hook_request("patient-view", fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    del body["prefetch"]
    assert client.post("/cds-services/rpl-patient-view", json=body).status_code == 200


def test_prefetch_resources_of_another_patient_are_ignored(cds):
    other = rpl_diagnosis(pid="someone-else")
    assert cds.topics("patient-view", hook_request("patient-view", other)) == []


@responses.activate
def test_token_never_in_logs(client, caplog):
    mock_server(responses, rpl_diagnosis())
    body = hook_request("patient-view", fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    del body["prefetch"]
    with caplog.at_level("DEBUG"):
        client.post("/cds-services/rpl-patient-view", json=body)
    assert "secret-token-123" not in caplog.text


@responses.activate
def test_fhir_answers_are_asked_for_uncompressed_unless_gzip_is_set(tmp_path):
    import gzip

    from service import create_app
    from tests.conftest import make_settings

    body = hook_request("patient-view", fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    del body["prefetch"]
    for setting, expected in ((False, "identity"), (True, "gzip, deflate")):
        responses.reset()
        mock_server(responses, rpl_diagnosis())
        if setting:  # a compressed answer is decoded as before
            responses.replace(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Condition\?.*"),
                              body=gzip.compress(json.dumps(bundle(rpl_diagnosis())).encode()),
                              headers={"Content-Encoding": "gzip"}, content_type="application/fhir+json")
        app = create_app(make_settings(tmp_path, fhir_gzip=setting))
        r = app.test_client().post("/cds-services/rpl-patient-view", json=body)
        assert r.status_code == 200 and "D3.2" in topics(r)
        assert {c.request.headers["Accept-Encoding"] for c in responses.calls} == {expected}
        app.extensions["rpl"].close()


@responses.activate
def test_a_cookie_the_fhir_server_sets_is_never_sent_with_a_later_call(client):
    """One Session serves every user: a session cookie bound to one user's token must not go
    out with the next call, which may be another user's or carry no token at all."""
    mock_server(responses, rpl_diagnosis(), token=None)
    responses.replace(responses.GET, f"{FHIR_BASE}/Patient/{PID}", json=patient(),
                      headers={"Set-Cookie": "JSESSIONID=user-a; Path=/"})
    body = hook_request("patient-view", fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    del body["prefetch"]
    for _ in range(2):
        assert client.post("/cds-services/rpl-patient-view", json=body).status_code == 200
    sent = [c.request.headers.get("Cookie") for c in responses.calls]
    assert len(sent) == 16 and sent == [None] * 16
