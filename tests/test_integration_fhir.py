"""End to end against a real FHIR R4 server (sekmet-fhir, see tests/fhir_server.py).

The demo patients are uploaded with `rpl-cds load-demo`; then, for every demo
patient and every hook, the service (`rpl-cds serve`, gunicorn) must give the
same cards whether it gets the prefetch (computed from its discovery templates,
as the CDS Hooks sandbox does) or fetches the data itself from the server, on
an open server and on one that requires a bearer token.

The server is installed on first use (PyPI must be reachable); if that fails
the tests fail with the reason, they are not skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from tests.builders import listed_rows
from tests.serve import rpl_cds_serve

from cards.rules import RULES
from service.config import Settings
from service.demo_data import CHECKED_IDS, HOOKS, PATIENTS
from service.sandbox_client import JwtSigner, call_hook, card_signature, new_session, new_tester_key

from . import fhir_server

CLI = Path(sys.executable).parent / "rpl-cds"
SERVERS = ("open", "token")
IMPLEMENTED = {rec_id for spec in RULES for rec_id in spec.ids}
AUTH = "auth_enabled" in Settings.model_fields  # the service checks the CDS client's JWT


@pytest.fixture(scope="session")
def fhir_servers(tmp_path_factory):
    started: dict[str, fhir_server.FhirServer] = {}
    try:
        started["open"] = fhir_server.start(tmp_path_factory.mktemp("sekmet-open"))
        started["token"] = fhir_server.start(tmp_path_factory.mktemp("sekmet-token"), require_token=True)
    except fhir_server.FhirServerUnavailable as exc:
        for server in started.values():
            server.stop()
        pytest.fail(f"the FHIR test server is not available: {exc}", pytrace=False)
    try:
        for server in started.values():
            _load_demo(server)
        yield started
    finally:
        for server in started.values():
            server.stop()


def _load_demo(server: fhir_server.FhirServer, *extra: str) -> subprocess.CompletedProcess:
    args = [str(CLI), "load-demo", "--fhir-server", server.base_url, *extra]
    if server.token:
        args += [f"--token={server.token}"]  # a token_urlsafe token may start with '-'
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"load-demo failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def tester_key(tmp_path_factory) -> Path | None:
    """The test CDS client's private key (`rpl-cds call --jwt-key`), when the service checks JWTs."""
    if not AUTH:
        return None
    path = tmp_path_factory.mktemp("jwt") / "tester-key.pem"
    path.write_bytes(new_tester_key())
    return path


@pytest.fixture(scope="session")
def signer(tester_key) -> JwtSigner | None:
    return JwtSigner.from_file(tester_key) if tester_key else None


def _service_env(tmp: Path, url: str, allowlist: list[str], signer: JwtSigner | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env.update(
        RPL_PUBLIC_BASE_URL=url,
        RPL_FHIR_SERVER_ALLOWLIST=",".join(allowlist),
        RPL_DATABASE_URL=f"sqlite:///{tmp / 'feedback.sqlite3'}",
        RPL_LANGUAGE="en",
        RPL_FHIR_RETRIES="0",
    )
    if signer is not None:  # as deployed: JWTs required, from the test client's key
        env["RPL_AUTH_ENABLED"] = "true"
        env["RPL_AUTH_ISSUERS"] = json.dumps([signer.issuer()])
    return env


@pytest.fixture(scope="session")
def cds_service(fhir_servers, signer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rpl-serve")
    url = f"http://127.0.0.1:{fhir_server.free_port()}"  # the JWT audience needs the URL up front
    env = _service_env(tmp, url, [s.base_url for s in fhir_servers.values()], signer)
    with rpl_cds_serve(env, tmp, port=int(url.rsplit(":", 1)[1])) as (served_url, _stdout, _stderr):
        yield served_url


@pytest.fixture(scope="session")
def session():
    with new_session() as s:
        yield s


def _topics(response: dict) -> set[str]:
    return {rec_id for card in response["cards"] for rec_id in listed_rows(card)}


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.id)
def test_same_cards_with_prefetch_and_with_fetch(fhir_servers, cds_service, session, signer, patient, hook, kind):
    server = fhir_servers[kind]
    results = {}
    for mode, use_prefetch in (("prefetch", True), ("fetch", False)):
        result = call_hook(session, cds_service, hook, patient.id, server.base_url,
                           token=server.token, use_prefetch=use_prefetch, signer=signer)
        assert result.status == 200, f"{mode}: HTTP {result.status}: {result.response}"
        assert not result.warnings, result.warnings
        results[mode] = result
    assert set(results["prefetch"].request["prefetch"]) == set(results["prefetch"].service["prefetch"])
    assert "prefetch" not in results["fetch"].request
    with_prefetch = [card_signature(c) for c in results["prefetch"].response["cards"]]
    with_fetch = [card_signature(c) for c in results["fetch"].response["cards"]]
    assert with_prefetch == with_fetch
    topics = _topics(results["fetch"].response)
    assert topics & CHECKED_IDS == patient.expected[hook] & CHECKED_IDS
    assert patient.expected[hook] & IMPLEMENTED <= topics


def test_the_token_is_needed_and_forwarded(fhir_servers, cds_service, session, signer):
    """Without the token the secured server refuses the service (412, not 500); with it the data comes."""
    server = fhir_servers["token"]
    assert requests.get(f"{server.base_url}/Patient/rpl-demo-unexplained", timeout=5).status_code == 401
    refused = call_hook(session, cds_service, "patient-view", "rpl-demo-unexplained", server.base_url,
                        use_prefetch=False, signer=signer)
    assert refused.status == 412
    assert "data not available" in str(refused.response)  # why (HTTP 401) is only in the service log


def test_load_demo_is_idempotent(fhir_servers):
    server = fhir_servers["open"]
    url = f"{server.base_url}/Condition?patient=rpl-demo-aps&_count=100"
    before = requests.get(url, timeout=5).json()
    _load_demo(server, "--patient", "rpl-demo-aps")
    after = requests.get(url, timeout=5).json()
    ids = lambda bundle: sorted(e["resource"]["id"] for e in bundle.get("entry", []))  # noqa: E731
    assert ids(after) == ids(before)
    assert len(ids(after)) == 4  # three miscarriages and the RPL diagnosis, once each


def test_load_demo_without_the_token_fails_clearly(fhir_servers):
    server = fhir_servers["token"]
    done = subprocess.run([str(CLI), "load-demo", "--fhir-server", server.base_url, "--patient", "rpl-demo-aps"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "FAILED rpl-demo-aps" in done.stderr and "401" in done.stderr


def _jwt_args(tester_key: Path | None) -> list[str]:
    return ["--jwt-key", str(tester_key)] if tester_key else []


def test_call_command_prints_the_cards(fhir_servers, cds_service, tester_key):
    server = fhir_servers["token"]
    done = subprocess.run(
        [str(CLI), "call", "patient-view", "--fhir-server", server.base_url, "--patient", "rpl-demo-pregnant-bleeding",
         f"--token={server.token}", "--service", cds_service, "--no-color", *_jwt_args(tester_key)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "=== rpl-patient-view for Patient/rpl-demo-pregnant-bleeding (prefetch 8 keys) -> HTTP 200" in done.stdout
    assert "[INFO] E8.6b:" in done.stdout
    assert "-> suggestion: Prescribe progesterone 400 mg" in done.stdout
    assert server.token not in done.stdout + done.stderr


def test_call_command_order_sign_with_a_draft_file(fhir_servers, cds_service, tester_key, tmp_path):
    server = fhir_servers["open"]
    draft = tmp_path / "ivig.json"
    draft.write_text('{"resourceType": "MedicationRequest", "status": "draft", "intent": "order", '
                     '"medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]}}')
    done = subprocess.run(
        [str(CLI), "call", "order-sign", "--fhir-server", server.base_url, "--patient", "rpl-demo-unexplained",
         "--draft", str(draft), "--service", cds_service, "--no-color", "--no-prefetch", *_jwt_args(tester_key)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "[WARNING] E8.2:" in done.stdout
    assert "E8.6a" not in done.stdout
    assert "delete MedicationRequest/draft-" in done.stdout


@pytest.mark.skipif(not AUTH, reason="the service has no JWT check in this version")
def test_call_without_the_jwt_is_refused_with_a_hint(fhir_servers, cds_service):
    done = subprocess.run(
        [str(CLI), "call", "patient-view", "--fhir-server", fhir_servers["open"].base_url,
         "--patient", "rpl-demo-unexplained", "--service", cds_service],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr and "--jwt-key" in done.stderr


# -- medications by reference (issue 14, item 8), on the real server ------------------------
MEDREF = "rpl-medref-known"  # RPL, progesterone active as a MedicationRequest -> Medication
MEDREF_MISSING = "rpl-medref-missing"  # RPL, an active order whose Medication the server does not have
MEDREF_CONTAINED = "rpl-medref-contained"  # RPL, progesterone as a Medication contained in the order
PROGESTERONE = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8727", "display": "progesterone"}


def _put(server: fhir_server.FhirServer, resource: dict) -> None:
    url = f"{server.base_url}/{resource['resourceType']}/{resource['id']}"
    response = requests.put(url, json=resource, headers=server.headers(), timeout=10)
    assert response.status_code in (200, 201), response.text


def _medref_records(server: fhir_server.FhirServer) -> None:
    for pid, medication in ((MEDREF, f"{MEDREF}-progesterone"), (MEDREF_MISSING, f"{MEDREF_MISSING}-nowhere")):
        subject = {"reference": f"Patient/{pid}"}
        _put(server, {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1990-05-01"})
        _put(server, {
            "resourceType": "Condition", "id": f"{pid}-rpl", "subject": subject,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "102878001"}]},
        })
        _put(server, {"resourceType": "MedicationRequest", "id": f"{pid}-rx", "status": "active", "intent": "order",
                      "subject": subject, "medicationReference": {"reference": f"Medication/{medication}"}})
    _put(server, {"resourceType": "Medication", "id": f"{MEDREF}-progesterone", "code": {"coding": [PROGESTERONE]}})
    subject = {"reference": f"Patient/{MEDREF_CONTAINED}"}
    _put(server, {"resourceType": "Patient", "id": MEDREF_CONTAINED, "gender": "female", "birthDate": "1990-05-01"})
    _put(server, {"resourceType": "Observation", "id": f"{MEDREF_CONTAINED}-losses", "status": "final", "subject": subject,
                  "code": {"coding": [{"system": "http://loinc.org", "code": "11614-5"}]}, "effectiveDateTime": "2026-01-10",
                  "valueQuantity": {"value": 2, "unit": "{#}", "system": "http://unitsofmeasure.org", "code": "{#}"}})
    _put(server, {"resourceType": "MedicationRequest", "id": f"{MEDREF_CONTAINED}-rx", "status": "active", "intent": "order",
                  "subject": subject, "contained": [{"resourceType": "Medication", "id": "m", "code": {"coding": [PROGESTERONE]}}],
                  "medicationReference": {"reference": "#m"}})


@pytest.fixture(scope="session")
def medref_servers(fhir_servers):
    for server in fhir_servers.values():
        _medref_records(server)
    return fhir_servers


def _post(session, service_url: str, body: dict, signer: JwtSigner | None) -> dict:
    url = f"{service_url}/cds-services/rpl-{body['hook']}"
    headers = signer.headers(url) if signer else {}
    response = session.post(url, json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.version2("Medications by reference")
@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("use_prefetch", [True, False], ids=["prefetch-with-include", "fetch"])
def test_medication_by_reference_with_prefetch_and_fetch(medref_servers, cds_service, session, signer, kind, use_prefetch):
    server = medref_servers[kind]
    known = call_hook(session, cds_service, "patient-view", MEDREF, server.base_url, token=server.token,
                      use_prefetch=use_prefetch, signer=signer)
    assert known.status == 200, known.response
    assert "E8.6a" in _topics(known.response)  # the progesterone behind the reference is seen
    if use_prefetch:  # the sandbox-style prefetch followed the template's _include
        included = known.request["prefetch"]["medicationRequests"]["entry"]
        assert {e["resource"]["resourceType"] for e in included} == {"MedicationRequest", "Medication"}
    missing = call_hook(session, cds_service, "patient-view", MEDREF_MISSING, server.base_url, token=server.token,
                        use_prefetch=use_prefetch, signer=signer)
    assert missing.status == 200, missing.response
    topics = _topics(missing.response)
    assert "E8.6a" not in topics and not {"E8.5", "E5.6"} & topics  # unknown order: nothing started
    assert {"D3.2", "D5.1a"} <= topics
    contained = call_hook(session, cds_service, "patient-view", MEDREF_CONTAINED, server.base_url, token=server.token,
                          use_prefetch=use_prefetch, signer=signer)
    assert contained.status == 200 and "E8.6a" in _topics(contained.response)


@pytest.mark.version2("Medications by reference")
def test_medication_read_by_reference_when_the_ehr_ignores_include(medref_servers, cds_service, session, signer):
    """An EHR whose prefetch leaves out the _include'd Medications: the service reads it from the server."""
    server = medref_servers["token"]
    first = call_hook(session, cds_service, "patient-view", MEDREF, server.base_url, token=server.token, signer=signer)
    body = first.request
    for value in body["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            value["entry"] = [e for e in value.get("entry", []) if e["resource"]["resourceType"] != "Medication"]
    body["hookInstance"] = str(uuid.uuid4())
    assert "E8.6a" in _topics(_post(session, cds_service, body, signer))


@pytest.mark.version2("Medications by reference")
def test_draft_medication_by_reference_on_order_sign(medref_servers, cds_service, session, signer):
    server = medref_servers["open"]
    draft = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
             "medicationReference": {"reference": f"Medication/{MEDREF}-progesterone"}}
    result = call_hook(session, cds_service, "order-sign", "rpl-demo-unexplained", server.base_url, use_prefetch=False,
                       drafts={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
                       signer=signer)
    assert result.status == 200 and "E8.6a" in _topics(result.response)
