"""Real clients (issue 15): medications coded as RxNorm products or only named, the CDS Hooks
sandbox's draft orders, and the deviations from R4 that clients send."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from fhir_mappings.medications import ingredients_named
from service.demo_data import BY_ID
from tests.builders import (
    carried_ids,
    RXNORM, UCUM, hook_request, losses, medication_request, prefetch, rpl_diagnosis,
)
from tests.conftest import TODAY
from tests.scenarios import ALL
from tests.test_catalogue import request_for
from tests.test_e8_6 import pregnancy

SANDBOX_REASON = {  # the code of one of the patient's Conditions, as the sandbox copies it ("Treating")
    "coding": [{"system": "http://snomed.info/sct", "code": "102878001", "display": "Recurrent miscarriage"}],
    "text": "Recurrent miscarriage",
}


def sandbox_order(code: str, name: str, *, pills: int = 1, per_day: int = 1, treating: bool = False) -> dict:
    """A draft MedicationRequest exactly as the CDS Hooks sandbox (R4) builds it in Rx View/Rx Sign:
    RxNorm product, its name as display and text, a dose in {pill}, id request-123, intent proposal;
    category, and reasonCode when 'Treating' is picked, as ONE object (not an array)."""
    order = {
        "resourceType": "MedicationRequest",
        "id": "request-123",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": TODAY.isoformat(),
        "dosageInstruction": [{
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": pills, "system": UCUM, "code": "{pill}"}}],
        }],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days", "system": UCUM, "code": "d"}},
        "category": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]},
        "medicationCodeableConcept": {"text": name, "coding": [{"display": name, "system": RXNORM, "code": code}]},
    }
    if treating:
        order["reasonCode"] = copy.deepcopy(SANDBOX_REASON)
    return order


def cards_by_topic(cds, hook: str, *resources, drafts=()) -> dict[str, dict]:
    body = hook_request(hook, *resources, drafts=drafts)
    return {rec_id: c for c in cds.cards(hook, body) for rec_id in reversed(carried_ids(c))}


# -- recognition by name: whole words, never another drug ---------------------------------------
@pytest.mark.parametrize("name,ingredient,valueset,strength", [
    ("progesterone 200 MG Oral Capsule", "progesterone", "progesterone", 200),
    ("Progesterone 100 MG Vaginal Insert [Endometrin]", "progesterone", "progesterone", 100),
    ("Utrogestan 200 mg vaginale capsule", "progesterone", "progesterone", 200),
    ("Duphaston 10 mg tablet", "dydrogesterone", "progesterone", 10),
    ("aspirin 81 MG Oral Tablet", "aspirin", "low-dose-aspirin", 81),
    ("Ascal Cardio 100 mg", "carbasalate calcium", "low-dose-aspirin", 100),
    ("predniSONE 20 MG Oral Tablet", "prednisone", "prednisolone-prednisone", 20),
    ("prednisoLONE 5 MG Oral Tablet", "prednisolone", "prednisolone-prednisone", 5),
    ("0.4 ML enoxaparin sodium 100 MG/ML Prefilled Syringe", "enoxaparin", "heparins", None),
    ("levothyroxine sodium 0.1 MG Oral Tablet", "levothyroxine", "levothyroxine", 0.1),
    ("Folic Acid 5 MG Oral Tablet", "folic acid", "folic-acid", 5),
    ("cabergoline 0.5 MG Oral Tablet", "cabergoline", "dopamine-agonists", 0.5),
    ("letrozole 2.5 MG Oral Tablet", "letrozole", "ovulation-induction", 2.5),
    ("pegfilgrastim 6 MG/0.6 ML Prefilled Syringe", "pegfilgrastim", "g-csf", None),
])
def test_a_catalogue_ingredient_is_recognised_by_name_with_its_strength(name, ingredient, valueset, strength):
    [match] = ingredients_named([name])
    assert (match.ingredient, match.valueset) == (ingredient, valueset)
    assert match.strength_mg == (pytest.approx(strength) if strength is not None else None)


@pytest.mark.parametrize("name", [
    "medroxyPROGESTERone acetate 10 MG Oral Tablet",  # another progestogen
    "hydroxyprogesterone caproate 250 MG/ML Injectable Solution",
    "17-hydroxyprogesterone",
    "estradiol 1 MG / progesterone 100 MG Oral Capsule [Bijuva]",  # hormone replacement, not miscarriage care
    "aspirin 325 MG Oral Tablet",  # not low-dose
    "Acetaminophen 250 MG / Aspirin 250 MG / Caffeine 65 MG Oral Tablet",
    "Rho(D) Immune Globulin 0.3 MG Prefilled Syringe",  # anti-D after a miscarriage is not IVIg
    "Heparin Lock Flush 100 UNT/ML Injectable Solution",
    "prednisoLONE acetate 10 MG/ML Ophthalmic Suspension",  # eye drops
    "methylprednisolone 4 MG Oral Tablet",
    "Prenatal Vitamin with Folic Acid 1 MG Oral Tablet",  # a standard pregnancy multivitamin
    "Ascorbic Acid 500 MG / Vitamin E 400 UNT Oral Capsule",
    "acetaminophen 500 MG Oral Tablet",
])
def test_another_drug_or_form_is_never_recognised_as_a_catalogue_ingredient(name):
    assert ingredients_named([name]) == ()


# -- the sandbox's Rx View / Rx Sign: product codes, names, its deviations --------------------
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_sandbox_progesterone_product_code_gets_e8_6a(cds, hook):
    cards = cards_by_topic(cds, hook, losses(2), drafts=(sandbox_order("312641", "progesterone 200 MG Oral Capsule"),))
    card = cards["E8.6a"]
    assert "progesterone 200 MG Oral Capsule" in card["detail"]
    assert "recognised by its name" not in card["detail"]  # 312641 is in the value set
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/request-123"


def test_unknown_progesterone_product_is_recognised_by_name_and_the_card_says_so(cds):
    order = sandbox_order("1000000", "Progesterone 100 MG Vaginal Insert [Endometrin]")
    card = cards_by_topic(cds, "order-sign", losses(2), drafts=(order,))["E8.6a"]
    assert "recognised by its name" in card["detail"]
    nl = {rec_id: c for c in cds.cards("order-sign", hook_request("order-sign", losses(2), drafts=(order,)), "nl") for rec_id in reversed(carried_ids(c))}
    assert "herkend aan de naam" in nl["E8.6a"]["detail"]


def test_medroxyprogesterone_with_an_unknown_code_gets_no_progesterone_card(cds):
    order = sandbox_order("1000001", "medroxyPROGESTERone acetate 10 MG Oral Tablet")
    assert not {"E8.6a", "E8.6c"} & cards_by_topic(cds, "order-sign", losses(2), drafts=(order,)).keys()


def test_a_progesterone_test_is_not_recognised_as_a_progesterone_order(cds):
    from tests.builders import service_request

    test = service_request("http://example.org/local-lab", "PROG", display="Progesterone serum")
    assert "E8.6a" not in cards_by_topic(cds, "order-sign", losses(2), drafts=(test,))


def test_treating_picked_in_the_sandbox_changes_no_card(cds, caplog):
    """The sandbox sends reasonCode (and category) as one object: read as an array of one, with a warning."""
    plain = sandbox_order("243670", "aspirin 81 MG Oral Tablet")
    treating = sandbox_order("243670", "aspirin 81 MG Oral Tablet", treating=True)
    with caplog.at_level(logging.WARNING, logger="rpl_cds.orders"):
        with_reason = cards_by_topic(cds, "order-sign", losses(2), drafts=(treating,))
    without = cards_by_topic(cds, "order-sign", losses(2), drafts=(plain,))
    assert "E8.4" in without and with_reason.keys() == without.keys()
    warned = [r.getMessage() for r in caplog.records if r.name == "rpl_cds.orders"]
    assert any("MedicationRequest/request-123" in m and "reasonCode" in m and "category" in m for m in warned)


def test_an_order_citing_rpl_as_one_object_is_judged_by_its_reason(cds):
    """E8.5 reads the reason: high-dose folic acid FOR recurrent miscarriage, reasonCode as one object."""
    order = sandbox_order("1000002", "Folic Acid 5 MG Oral Tablet", treating=True)
    body = hook_request("patient-view", losses(2), rpl_diagnosis(), {**order, "status": "active", "id": "fa-1"})
    assert "E8.5" in {c["source"]["topic"]["code"] for c in cds.cards("patient-view", body)}


@pytest.mark.parametrize("pills,per_day,warned", [(1, 1, True), (1, 2, False)])
def test_aspirin_tablets_count_in_mg_per_day_from_the_product_strength(cds, pills, per_day, warned):
    """81 mg once a day is low-dose (E8.4); 2 x 81 = 162 mg/day is not."""
    order = sandbox_order("243670", "aspirin 81 MG Oral Tablet", pills=pills, per_day=per_day)
    assert ("E8.4" in cards_by_topic(cds, "order-sign", losses(2), drafts=(order,))) is warned


def test_aspirin_325_with_an_unknown_code_is_not_low_dose_aspirin(cds):
    order = sandbox_order("1000003", "aspirin 325 MG Oral Tablet")
    assert "E8.4" not in cards_by_topic(cds, "order-sign", losses(2), drafts=(order,))


@pytest.mark.parametrize("code,name,summary", [
    ("312617", "predniSONE 5 MG Oral Tablet", "Prednisone is not advised"),
    ("763181", "predniSONE 5 MG Tablet 21 Count Pack", "Prednisone is not advised"),
    ("1000004", "prednisoLONE 5 MG Oral Tablet", "Prednisolone is not advised"),
])
def test_e8_3_names_what_was_ordered(cds, code, name, summary):
    card = cards_by_topic(cds, "order-select", losses(2), drafts=(sandbox_order(code, name),))["E8.3"]
    assert card["summary"].startswith(summary)


def test_e8_3_in_dutch_names_prednison(cds):
    body = hook_request("order-sign", losses(2), drafts=(sandbox_order("312617", "predniSONE 5 MG Oral Tablet"),))
    [card] = [c for c in cds.cards("order-sign", body, "nl") if c["source"]["topic"]["code"] == "E8.3"]
    assert card["summary"].startswith("Prednison ")


def test_an_unreadable_draft_of_a_catalogue_drug_is_a_400_naming_it(cds):
    order = sandbox_order("312641", "progesterone 200 MG Oral Capsule")
    order["dosageInstruction"] = [{"timing": "twice a day"}]  # no single-object deviation: unreadable
    response = cds.call("order-sign", hook_request("order-sign", losses(2), drafts=(order,)), expect=400)
    assert "MedicationRequest/request-123" in str(response) and "could not be checked" in str(response)


def test_an_unreadable_draft_of_no_catalogue_drug_is_no_error(cds):
    order = sandbox_order("161", "acetaminophen 500 MG Oral Tablet")
    order["dosageInstruction"] = [{"timing": "twice a day"}]
    assert cds.cards("order-sign", hook_request("order-sign", losses(2), drafts=(order,))) is not None


# -- records as Synthea and US EHRs write them, on all three hooks ----------------------------
def synthea_order(code: str, name: str, rid: str) -> dict:
    order = medication_request(RXNORM, code, display=name, status="active", rid=rid)
    order["medicationCodeableConcept"]["text"] = name
    order["requester"] = {"reference": "Practitioner/synthea-1", "display": "Dr. Synthea"}
    order["authoredOn"] = "2026-05-01T10:00:00+02:00"
    return order


@pytest.mark.parametrize("code,name,topic", [
    ("312641", "progesterone 200 MG Oral Capsule", "E8.6a"),
    ("308416", "aspirin 81 MG Delayed Release Oral Tablet", "E8.4"),
    ("198145", "predniSONE 10 MG Oral Tablet", "E8.3"),
    ("999999", "Intralipid 200 MG/ML Injectable Emulsion", "E8.7"),
])
def test_synthea_style_active_products_are_judged_on_patient_view(cds, code, name, topic):
    assert topic in cards_by_topic(cds, "patient-view", losses(2), synthea_order(code, name, "syn-1"))


def test_ectopic_demo_patient_with_a_product_coded_progesterone_order_gets_the_critical_card(cds):
    """The README's ectopic demo patient, its active progesterone order coded as the sandbox and
    Synthea code it (312641): the critical E8.6c stop card on all three hooks."""
    bundle = BY_ID["rpl-demo-ectopic"].bundle(TODAY)
    resources = [e["resource"] for e in bundle["entry"]]
    for resource in resources:
        if resource["resourceType"] == "MedicationRequest":
            resource["medicationCodeableConcept"] = {
                "text": "progesterone 200 MG Oral Capsule",
                "coding": [{"system": RXNORM, "code": "312641", "display": "progesterone 200 MG Oral Capsule"}],
            }
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    pid = patient["id"]
    data = prefetch(*[r for r in resources if r["resourceType"] != "Patient"], pid=pid)
    data["patient"] = patient
    view = {rec_id: c for c in cds.cards("patient-view", hook_request("patient-view", pid=pid, data=data)) for rec_id in reversed(carried_ids(c))}
    assert view["E8.6c"]["indicator"] == "critical"
    draft = {**sandbox_order("312641", "progesterone 200 MG Oral Capsule"), "subject": {"reference": f"Patient/{pid}"}}
    for hook in ("order-select", "order-sign"):
        body = hook_request(hook, pid=pid, data=data, drafts=(draft,))
        cards = {rec_id: c for c in cds.cards(hook, body) for rec_id in reversed(carried_ids(c))}
        assert cards["E8.6c"]["indicator"] == "critical", hook


# -- links open beside the EHR ------------------------------------------------------------------
def test_external_links_are_card_links_not_markdown_in_the_detail(cds):
    from tests.builders import miscarriage

    card = cards_by_topic(cds, "patient-view", miscarriage("2026-09-01"))["S1"]
    assert card["links"] and all(link["type"] == "absolute" and link["url"].startswith("https://") for link in card["links"])
    assert "http" not in card["detail"] and "](" not in card["detail"]


# -- every client's conventions: selectionBehavior 'any', suggestions that do not overlap -------
def _assert_any_and_disjoint(card: dict) -> None:
    suggestions = card.get("suggestions") or []
    if not suggestions:
        return
    assert card["selectionBehavior"] == "any", card["summary"]
    deleted, created = [], []
    for suggestion in suggestions:
        for action in suggestion.get("actions") or []:
            if action["type"] == "delete":
                deleted.append(action["resourceId"])
            elif action["type"] == "create":
                resource = action["resource"]
                created.append(json.dumps(resource.get("medicationCodeableConcept") or resource.get("code"), sort_keys=True))
    # accepting every suggestion must not delete an order twice or create the same order twice
    assert len(deleted) == len(set(deleted)), card["summary"]
    assert len(created) == len(set(created)), card["summary"]


@pytest.mark.parametrize("scenario", [s for s in ALL if s.fires], ids=lambda s: s.id)
def test_every_card_works_for_a_client_that_only_knows_selection_behavior_any(cds, scenario):
    for card in cds.cards(scenario.hook, request_for(scenario)):
        _assert_any_and_disjoint(card)


def test_two_progesterone_drafts_to_replace_make_one_suggestion_that_prescribes_once(cds):
    from tests.builders import progesterone_order

    drafts = (progesterone_order(rid="p1", dose_mg=200), progesterone_order(rid="p2", dose_mg=100))
    body = hook_request("order-sign", losses(3), *pregnancy(), drafts=drafts)
    card = {rec_id: c for c in cds.cards("order-sign", body) for rec_id in reversed(carried_ids(c))}["E8.6b"]
    [suggestion] = card["suggestions"]
    kinds = sorted((a["type"], a.get("resourceId")) for a in suggestion["actions"])
    assert kinds == [("create", None), ("delete", "MedicationRequest/p1"), ("delete", "MedicationRequest/p2")]
    _assert_any_and_disjoint(card)


# -- every client's conventions: tokens, URLs, CORS, logs -------------------------------------
from tests.test_auth import DISCOVERY, ROOT, SERVICE, assert_refused, call, make_app, token  # noqa: E402,F401


def test_an_epic_style_rs384_token_with_sub_and_nbf_and_no_tenant_passes(make_app):
    client = make_app()
    now = int(__import__("time").time())
    for path in (DISCOVERY, SERVICE):
        epic = token(path, alg="RS384", kid="rsa-1", sub="epic-client-id", nbf=now - 5)  # no tenant claim
        assert call(client, path, epic).status_code == 200, path


def test_discovery_with_a_trailing_slash_and_its_preflight(make_app):
    client = make_app()
    r = client.get("/cds-services/", headers={"Authorization": f"Bearer {token('/cds-services/')}"})
    assert r.status_code == 200 and r.get_json()["services"]
    preflight = client.options("/cds-services/", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200 and "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_the_401_log_line_names_the_expected_and_the_received_audience(make_app, caplog):
    client = make_app()
    with caplog.at_level(logging.WARNING, logger="rpl_cds.auth"):
        assert_refused(call(client, DISCOVERY, token(aud="https://cds.example.org/cds-services")))
    [line] = [r.getMessage() for r in caplog.records if r.name == "rpl_cds.auth"]
    assert f"expected aud {ROOT}{DISCOVERY}" in line and "https://cds.example.org/cds-services" in line


def test_cors_preflights_are_not_audit_logged_as_calls(make_app, caplog):
    client = make_app()
    with caplog.at_level(logging.INFO, logger="rpl_cds.audit"):
        client.options(SERVICE, headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"})
        assert not [r for r in caplog.records if r.name == "rpl_cds.audit"]
        call(client, DISCOVERY, token())
    assert len([r for r in caplog.records if r.name == "rpl_cds.audit"]) == 1


def test_load_demo_output_honours_patient(tmp_path, capsys):
    from service.cli import main
    from service.demo_data import REFERENCE_DATE

    out = tmp_path / "demo"
    assert main(["load-demo", "--output", str(out), "--patient", "rpl-demo-ectopic", "--today", REFERENCE_DATE.isoformat()]) == 0
    assert sorted(p.name for p in out.glob("rpl-demo-*.json")) == ["rpl-demo-ectopic.json"]
    assert (out / "draft-progesterone.json").exists()  # the draft orders belong to every demo


@pytest.mark.parametrize("system,code,display,summary", [
    ("http://www.whocc.no/atc", "H02AB06", None, "Prednisolone is not advised"),  # the value set's display names it
    ("http://www.whocc.no/atc", "H02AB07", None, "Prednisone is not advised"),
    (RXNORM, "8640", "prednisone", "Prednisone is not advised"),
    ("http://example.org/g-standaard", "12345", "Prednisolon 5mg tablet", "Prednisolone is not advised"),
])
def test_e8_3_names_the_ingredient_whatever_the_coding(cds, system, code, display, summary):
    order = medication_request(system, code, display=display, rid="pred-1")
    card = cards_by_topic(cds, "order-sign", losses(2), drafts=(order,))["E8.3"]
    assert card["summary"].startswith(summary)
