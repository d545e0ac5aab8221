"""The demo patients: valid FHIR R4 transaction Bundles with stable ids, codes the
service recognises, dated relative to the evaluation date, and the cards the
README promises. Also the pieces of `rpl-cds call` that need no network."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from cards.catalog import CATALOGUE
from cards.rules import RULES
from fhir_mappings.resources import MODELS
from fhir_mappings.valuesets import ValueSetIndex
from service import create_app
from service.cli import main
from service.demo_data import BY_ID, CHECKED_IDS, HOOKS, PATIENTS, REFERENCE_DATE, bundles, draft_bundle, shipped_bundle
from service.sandbox_client import (
    JwtSigner,
    build_request,
    new_tester_key,
    pick_service,
    prepare_drafts,
    read_drafts,
    render_template,
)

from . import builders
from .conftest import FHIR_BASE, RESPONSE_SCHEMA, TODAY, make_settings

ROOT = Path(__file__).parent.parent
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
LATER = date(2027, 3, 1)  # a day long after the shipped files were dated


@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.id)
def test_transaction_bundle_of_puts_with_stable_ids(patient):
    bundle = patient.bundle(TODAY)
    Bundle.model_validate(bundle)  # valid FHIR (R4B models, as the service uses)
    assert bundle["type"] == "transaction"
    refs = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        ref = f"{resource['resourceType']}/{resource['id']}"
        assert entry["request"] == {"method": "PUT", "url": ref}
        assert FHIR_ID.match(resource["id"]) and resource["id"].startswith(patient.id)
        assert not resource["id"].isdigit()  # HAPI refuses client-assigned purely numeric ids
        uuid.UUID(entry["fullUrl"].removeprefix("urn:uuid:"))
        MODELS[resource["resourceType"]].model_validate(resource)
        if resource["resourceType"] != "Patient":
            assert resource["subject"] == {"reference": f"Patient/{patient.id}"}
        refs.append(ref)
    assert len(refs) == len(set(refs))
    assert refs[0] == f"Patient/{patient.id}"  # the patient first: references resolve on every server
    later = [f"{e['request']['url']}|{e['fullUrl']}" for e in patient.bundle(LATER)["entry"]]
    assert later == [f"{e['request']['url']}|{e['fullUrl']}" for e in bundle["entry"]]  # same ids on another day


def test_every_clinical_code_is_in_the_value_sets():
    valuesets = ValueSetIndex.load()
    for patient in PATIENTS:
        for resource in patient.resources(TODAY):
            concept = resource.get("code") or resource.get("medicationCodeableConcept")
            if resource["resourceType"] == "Patient":
                continue
            assert valuesets.classify(concept), f"{resource['resourceType']}/{resource['id']}: {concept} is in no value set"
    for entry in draft_bundle()["entry"]:
        assert valuesets.classify(entry["resource"]["medicationCodeableConcept"])


def test_coding_styles():
    systems = {
        pid: {c["system"] for r in BY_ID[pid].resources(TODAY) for key in ("code", "medicationCodeableConcept")
              for c in (r.get(key) or {}).get("coding", [])}
        for pid in ("rpl-demo-us-coded", "rpl-demo-dutch")
    }
    assert systems["rpl-demo-us-coded"] == {builders.ICD10CM, builders.RXNORM}
    assert systems["rpl-demo-dutch"] == {builders.ICD10, builders.ATC, builders.LOINC}
    ft4 = next(r for r in BY_ID["rpl-demo-dutch"].resources(TODAY) if r["id"].endswith("-ft4"))
    assert ft4["valueQuantity"]["unit"] == "pmol/L"


def test_shipped_files_are_the_bundles_of_the_reference_date():
    for pid, bundle in bundles(REFERENCE_DATE).items():
        assert shipped_bundle(pid) == bundle, f"service/demo/{pid}.json is stale: rpl-cds load-demo --output service/demo --today {REFERENCE_DATE}"
    demo_dir = ROOT / "service" / "demo"
    assert json.loads((demo_dir / "draft-orders.json").read_text()) == draft_bundle()
    assert read_drafts(demo_dir / "draft-progesterone.json")["entry"][0]["resource"]["id"] == "demo-draft-progesterone"
    assert {p.stem for p in demo_dir.glob("rpl-demo-*.json")} == set(BY_ID)


def test_output_writes_the_same_files(tmp_path, capsys):
    assert main(["load-demo", "--output", str(tmp_path), "--today", REFERENCE_DATE.isoformat()]) == 0
    for path in (ROOT / "service" / "demo").glob("*.json"):
        assert (tmp_path / path.name).read_text() == path.read_text()


def _call(client, patient, hook):
    resources = patient.resources(client.today)
    data = builders.prefetch(*(r for r in resources if r["resourceType"] != "Patient"), pid=patient.id)
    data["patient"] = resources[0]
    drafts = draft_bundle() if hook != "patient-view" else None
    body = build_request(hook, patient.id, FHIR_BASE, drafts=drafts, prefetched=data)
    response = client.post(f"/cds-services/rpl-{hook}", json=body, headers={"Accept-Language": "en"})
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert not list(RESPONSE_SCHEMA.iter_errors(answer))
    return answer["cards"]


@pytest.fixture(params=[TODAY, LATER], ids=["today", "later"])
def demo_client(request, tmp_path):
    day = request.param
    app = create_app(make_settings(tmp_path), today=lambda: day)
    client = app.test_client()
    client.today = day
    yield client
    app.extensions["rpl"].close()


IMPLEMENTED = {rec_id for spec in RULES for rec_id in spec.ids}


@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.id)
def test_expected_cards(demo_client, patient):
    for hook in HOOKS:
        cards = _call(demo_client, patient, hook)
        topics = {rec_id for card in cards for rec_id in builders.listed_rows(card)}
        assert topics & CHECKED_IDS == patient.expected[hook] & CHECKED_IDS, hook
        assert patient.expected[hook] & IMPLEMENTED <= topics, hook  # rows without a rule yet are not required


def test_expected_cards_are_catalogue_rows():
    for patient in PATIENTS:
        for ids in patient.expected.values():
            assert ids <= set(CATALOGUE), patient.id


def test_the_pregnancy_is_nine_weeks_on_any_day(demo_client):
    cards = _call(demo_client, BY_ID["rpl-demo-pregnant-bleeding"], "patient-view")
    e86b = next(card for card in cards if card["source"]["topic"]["code"] == "E8.6b")
    assert "Gestational age today: 9+0 weeks" in e86b["detail"]
    until = (demo_client.today + timedelta(weeks=7)).isoformat()  # 16 weeks
    assert until in json.dumps(e86b["suggestions"])


def _ids(ids: frozenset[str]) -> str:
    return ", ".join(sorted(ids, key=list(CATALOGUE).index)) or "–"


def readme_row(patient) -> str:
    """The README's demo-table row of a patient: every card of each hook, as test_expected_cards checks."""
    pv, select, sign = (patient.expected[hook] for hook in HOOKS)
    assert select == sign, "the table has one column for both order hooks"
    return f"| `{patient.id}` | {patient.scenario} | {_ids(pv)} | {_ids(select)} | {patient.notes} |"


def test_readme_demo_table_is_what_the_demo_patients_get():
    """The README's table lists exactly the cards test_expected_cards sees from the service."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for patient in PATIENTS:
        assert readme_row(patient) in readme, f"README demo table, expected row:\n{readme_row(patient)}"


# -- the sandbox-like client, offline -------------------------------------------------
def test_render_template():
    context = {"patientId": "p-1", "userId": "Practitioner/dr-7"}
    assert render_template("Condition?patient={{context.patientId}}&_count=5", context) == "Condition?patient=p-1&_count=5"
    assert render_template("Practitioner/{{userPractitionerId}}", context) == "Practitioner/dr-7"
    assert render_template("Patient/{{ context.patientId }}", context) == "Patient/p-1"


def test_drafts_get_an_id_and_the_patient():
    single = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
              "subject": {"reference": "Patient/other"}}
    bundle = prepare_drafts({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": single}]}, "p-1")
    resource = bundle["entry"][0]["resource"]
    assert resource["subject"] == {"reference": "Patient/p-1"} and FHIR_ID.match(resource["id"])
    assert single["subject"] == {"reference": "Patient/other"}  # the caller's object is not changed
    request = build_request("order-select", "p-1", "https://fhir.example.org/r4", drafts=bundle, token="t0k")
    assert request["context"]["selections"] == [f"MedicationRequest/{resource['id']}"]
    assert request["fhirAuthorization"]["access_token"] == "t0k"
    assert request["fhirAuthorization"]["token_type"] == "Bearer"
    uuid.UUID(request["hookInstance"])
    assert "prefetch" not in request


def test_pick_service():
    services = [{"id": "rpl-patient-view", "hook": "patient-view"}, {"id": "rpl-order-sign", "hook": "order-sign"}]
    assert pick_service(services, "patient-view")["id"] == "rpl-patient-view"
    assert pick_service(services, "rpl-order-sign")["hook"] == "order-sign"
    with pytest.raises(Exception, match="no service for 'order-select'"):
        pick_service(services, "order-select")


def test_call_reports_an_unreachable_service(capsys):
    port = 9  # discard port: nothing listens there
    status = main(["call", "patient-view", "--fhir-server", "http://127.0.0.1:9/fhir", "--patient", "p-1",
                   "--service", f"http://127.0.0.1:{port}"])
    assert status == 1
    assert "cannot reach the CDS service" in capsys.readouterr().err


def test_jwt_signer_signs_each_request_for_its_url():
    import jwt

    signer = JwtSigner(new_tester_key(), iss="tester-1")
    assert signer.alg == "ES384" and signer.issuer()["jwks"]["keys"][0]["kid"] == signer.kid
    url = "http://localhost:8080/cds-services/rpl-patient-view"
    first, second = (signer.headers(url)["Authorization"].removeprefix("Bearer ") for _ in range(2))
    header = jwt.get_unverified_header(first)
    assert header["kid"] == signer.kid and header["typ"] == "JWT" and header["alg"] == "ES384"
    key = jwt.PyJWK(signer.public_jwk)
    claims = jwt.decode(first, key, algorithms=["ES384"], audience=url, issuer="tester-1")
    assert claims["exp"] - claims["iat"] == 300 and claims["sub"] == "tester-1"
    assert claims["jti"] != jwt.decode(second, key, algorithms=["ES384"], audience=url)["jti"]  # never replayed
    assert "d" not in signer.public_jwk  # the private part never leaves the key file


def test_tester_key_command(tmp_path, capsys):
    key = tmp_path / "key.pem"
    assert main(["tester-key", "--out", str(key)]) == 0
    first = capsys.readouterr().out
    assert key.stat().st_mode & 0o077 == 0  # private to its owner
    assert main(["tester-key", "--out", str(key)]) == 0  # reused, not replaced
    assert capsys.readouterr().out == first
    issuers = json.loads(first.strip().removeprefix("RPL_AUTH_ISSUERS=").strip("'"))
    assert issuers[0]["iss"] == "rpl-cds-tester" and "jwks" in issuers[0]
