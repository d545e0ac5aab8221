"""CDS Hooks protocol: discovery, request validation, error answers, CORS, health."""

from __future__ import annotations

import json
import re

import pytest

from tests.builders import PID, hook_request, ivig_order, prefetch, progesterone_order

SERVICES = {"rpl-patient-view": "patient-view", "rpl-order-select": "order-select", "rpl-order-sign": "order-sign"}
ALLOWED_TOKENS = re.compile(r"\{\{(context\.(userId|patientId|encounterId)|userPractitionerId|userPractitionerRoleId|userPatientId|userRelatedPersonId)\}\}")


def test_discovery_lists_the_three_services(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = response.get_json()["services"]
    assert {s["id"]: s["hook"] for s in services} == SERVICES
    assert [s["id"] for s in services] == sorted(SERVICES)
    for service in services:
        assert service["title"] and service["description"]
        assert set(service["prefetch"]) == {
            "patient", "conditions", "observations", "medicationRequests",
            "medicationStatements", "serviceRequests", "procedures", "diagnosticReports",
        }


def test_prefetch_templates_use_only_allowed_tokens(client):
    for service in client.get("/cds-services").get_json()["services"]:
        for template in service["prefetch"].values():
            tokens = re.findall(r"\{\{[^}]*\}\}", template)
            assert tokens, template
            assert all(ALLOWED_TOKENS.fullmatch(t) for t in tokens), template


def test_observation_prefetch_is_limited_to_the_codes_the_rules_read(client):
    service = client.get("/cds-services").get_json()["services"][0]
    query = service["prefetch"]["observations"]
    assert "http://loinc.org|3016-3" in query  # TSH
    assert "http://loinc.org|11614-5" in query  # number of spontaneous abortions
    assert "http://loinc.org|2093-3" not in query  # cholesterol: no rule reads it


@pytest.mark.parametrize("hook", ["patient-view", "order-select", "order-sign"])
def test_each_hook_answers_with_cards(cds, hook):
    drafts = (progesterone_order(rid="p1"),) if hook != "patient-view" else ()
    body = hook_request(hook, drafts=drafts)
    assert cds.call(hook, body) == {"cards": []}


def test_patient_id_may_be_given_as_reference(cds):
    from tests.builders import rpl_diagnosis

    body = hook_request("patient-view", rpl_diagnosis())
    body["context"]["patientId"] = f"Patient/{PID}"
    assert "D3.2" in cds.topics("patient-view", body)


# -- errors -------------------------------------------------------------------------
def _outcome(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(i["diagnostics"] for i in body["issue"])
    text = json.dumps(body)
    assert "Traceback" not in text
    return " | ".join(i["diagnostics"] for i in body["issue"])


def test_malformed_json_is_400(client):
    r = client.post("/cds-services/rpl-patient-view", data="{not json", content_type="application/json")
    assert "malformed JSON" in _outcome(r, 400)


def test_json_that_is_not_an_object_is_400(client):
    r = client.post("/cds-services/rpl-patient-view", data="[1, 2]", content_type="application/json")
    assert "JSON object" in _outcome(r, 400)


def test_deeply_nested_json_is_400_not_500(client):
    r = client.post("/cds-services/rpl-patient-view", data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert r.status_code in (400, 413)


def test_non_json_body_is_415(client):
    r = client.post("/cds-services/rpl-patient-view", data="hook=patient-view", content_type="application/x-www-form-urlencoded")
    _outcome(r, 415)


def test_body_over_the_limit_is_413(tmp_path):
    from service import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, max_body_bytes=2000))
    r = app.test_client().post("/cds-services/rpl-patient-view", data=json.dumps({"x": "a" * 5000}), content_type="application/json")
    _outcome(r, 413)
    app.extensions["rpl"].close()


def test_unknown_service_is_404(client):
    r = client.post("/cds-services/nope", json=hook_request("patient-view"))
    assert "nope" in _outcome(r, 404)


@pytest.mark.parametrize("method,path", [("get", "/cds-services/rpl-patient-view"), ("delete", "/cds-services"),
                                          ("get", "/cds-services/rpl-order-sign/feedback")])
def test_wrong_method_is_405(client, method, path):
    r = getattr(client, method)(path)
    _outcome(r, 405)
    assert "Allow" in r.headers


def test_hook_must_match_service(client):
    r = client.post("/cds-services/rpl-order-sign", json=hook_request("patient-view"))
    assert "does not match" in _outcome(r, 400)


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda b: b.pop("hookInstance"), "hookInstance: Field required"),
        (lambda b: b.update(hookInstance="not-a-uuid"), "hookInstance: must be a UUID"),
        (lambda b: b.pop("context"), "context: Field required"),
        (lambda b: b["context"].pop("patientId"), "context.patientId: Field required"),
        (lambda b: b["context"].update(patientId="a b/c"), "context.patientId: must be a FHIR id"),
        (lambda b: b["context"].update(userId="dr-1"), "context.userId"),
        (lambda b: b["context"].update(encounterId="$$"), "context.encounterId"),
        (lambda b: b.update(fhirServer="ftp://x"), "fhirServer"),
        (lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                                               "scope": "patient/*.read", "subject": "cds"}),
         "fhirServer is required"),
        (lambda b: b.update(fhirServer="https://x", fhirAuthorization={"access_token": "t", "token_type": "MAC",
                                                                       "expires_in": 1, "scope": "s", "subject": "c"}),
         "fhirAuthorization.token_type"),
        (lambda b: b.update(prefetch=[1]), "prefetch"),
        (lambda b: b.update(prefetch={"patient": "123"}), "prefetch.patient"),
    ],
)
def test_invalid_patient_view_request_is_400_and_says_why(client, change, expected):
    body = hook_request("patient-view")
    change(body)
    assert expected in _outcome(client.post("/cds-services/rpl-patient-view", json=body), 400)


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda b: b["context"].pop("selections"), "context.selections: Field required"),
        (lambda b: b["context"].update(selections=[]), "context.selections"),
        (lambda b: b["context"].update(selections=["MedicationRequest/other"]), "not in draftOrders"),
        (lambda b: b["context"].update(selections=["junk"]), "not a reference"),
        (lambda b: b["context"].pop("draftOrders"), "context.draftOrders: Field required"),
        (lambda b: b["context"].update(draftOrders={"resourceType": "Patient"}), "must be a FHIR Bundle"),
        (lambda b: b["context"]["draftOrders"]["entry"].append({"resource": {"resourceType": "MedicationRequest", "id": "a b"}}),
         "is not a valid FHIR id"),
        (lambda b: b["context"].update(userId="Patient/1"), "context.userId"),
    ],
)
def test_invalid_order_select_request_is_400_and_says_why(client, change, expected):
    body = hook_request("order-select", drafts=(ivig_order(rid="ivig-1"),))
    change(body)
    assert expected in _outcome(client.post("/cds-services/rpl-order-select", json=body), 400)


def test_order_sign_needs_draft_orders_but_no_selections(cds):
    body = hook_request("order-sign", drafts=(ivig_order(rid="ivig-1"),))
    assert "selections" not in body["context"]
    cds.call("order-sign", body)


# -- CORS and health -------------------------------------------------------------------------
def test_cors_preflight_allows_the_sandbox(client):
    r = client.options(
        "/cds-services/rpl-patient-view",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in r.headers["Access-Control-Allow-Methods"]


def test_cors_header_on_discovery(client):
    r = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json()["status"] == "ready"


def test_readiness_fails_when_the_database_is_gone(tmp_path):
    from service import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path))
    app.extensions["rpl"].feedback.engine.dispose()
    app.extensions["rpl"].feedback.engine = __import__("sqlalchemy").create_engine("sqlite:////nonexistent/dir/x.db")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    app.extensions["rpl"].close()


def test_full_prefetch_with_null_keys_means_no_data(cds):
    data = prefetch()
    data["conditions"] = None
    data["patient"] = None
    assert cds.call("patient-view", hook_request("patient-view", data=data)) == {"cards": []}


def test_draft_without_id_is_judged_but_not_offered_for_removal(cds):
    """The public CDS Hooks sandbox sends its draft MedicationRequest without an id."""
    from tests.builders import losses

    draft = progesterone_order()
    del draft["id"]
    card = next(c for c in cds.cards("order-sign", hook_request("order-sign", losses(2), drafts=(draft,)))
                if c["source"]["topic"]["code"] == "E8.6a")
    assert "suggestions" not in card and card["overrideReasons"]
