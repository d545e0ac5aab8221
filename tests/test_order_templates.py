"""Order templates: every medication suggestion is a valid FHIR R4 MedicationRequest with ATC
and RxNorm codings, the product of the region, a dosage where the catalogue gives one, the
right reasonCode; a hospital replaces products and codes with its own files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cards.i18n import Translator, load_translations
from cards.orders import REGIONS, OrderBuilder, OrderTemplateError, OrderTemplates
from fhir_mappings.valuesets import ATC, RXNORM, SNOMED, ValueSetIndex
from service import create_app
from service.config import ConfigError
from tests.builders import hook_request
from tests.conftest import TODAY, make_settings
from tests.scenarios import SCENARIOS
from tests.test_catalogue import request_for

PRK = "urn:oid:2.16.840.1.113883.2.4.4.10"
MEDICATION_SUGGESTERS = ("E3.2", "E5.1a", "E5.1b", "E8.6b")


def builder(region="nl", folder=None) -> OrderBuilder:
    return OrderBuilder(ValueSetIndex.load(), "pat-1", OrderTemplates.load(region, folder))


def systems(resource) -> set[str]:
    return {c["system"] for c in resource["medicationCodeableConcept"]["coding"]}


def medication_suggestions(cards) -> list[dict]:
    return [a["resource"] for c in cards for s in c.get("suggestions", []) for a in s["actions"]
            if a["type"] == "create" and a["resource"]["resourceType"] == "MedicationRequest"]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("template_id", OrderTemplates.load().ids)
def test_every_template_is_valid_fhir_r4_with_atc_and_rxnorm(region, template_id):
    order = builder(region).medication_order(template_id, until=date(2027, 3, 12))
    resource = json.loads(json.dumps(order.resource, default=lambda t: Translator(load_translations()["nl"], "nl")(t)))
    MedicationRequest.model_validate(resource)
    assert {ATC, RXNORM} <= systems(resource)
    assert resource["reasonCode"] and resource["dosageInstruction"][0]["route"]["coding"][0]["system"] == SNOMED


@pytest.mark.parametrize("language", ["en", "nl"])
@pytest.mark.parametrize("region", REGIONS)
def test_every_medication_suggestion_of_the_service_is_valid_fhir(tmp_path, region, language):
    app = create_app(make_settings(tmp_path, region=region), today=lambda: TODAY)
    client = app.test_client()
    found = []
    for rec_id in MEDICATION_SUGGESTERS:
        for scenario in SCENARIOS[rec_id]:
            if not scenario.fires:
                continue
            response = client.post(f"/cds-services/rpl-{scenario.hook}", json=request_for(scenario),
                                   headers={"Accept-Language": language})
            found += medication_suggestions(response.get_json()["cards"])
    app.extensions["rpl"].close()
    atc = {c["code"] for r in found for c in r["medicationCodeableConcept"]["coding"] if c["system"] == ATC}
    assert atc >= {"B01AC06", "H03AA01", "G03DA04"}  # aspirin, levothyroxine, progesterone all suggested
    for resource in found:
        MedicationRequest.model_validate(resource)
        assert {ATC, RXNORM} <= systems(resource)
        assert resource["dosageInstruction"][0]["text"]


def test_region_chooses_the_product():
    nl = builder("nl").medication_order("low-dose-aspirin").resource
    us = builder("us").medication_order("low-dose-aspirin").resource
    assert nl["medicationCodeableConcept"]["text"] == "acetylsalicylzuur 80 mg tablet"
    assert nl["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 80
    assert us["medicationCodeableConcept"]["text"] == "aspirin 81 mg oral tablet"
    assert {"system": RXNORM, "code": "243670", "display": "aspirin 81 MG Oral Tablet"} in us["medicationCodeableConcept"]["coding"]


def test_aspirin_dose_is_within_the_catalogue_range_in_every_region():
    for region in REGIONS:
        dose = builder(region).medication_order("low-dose-aspirin").resource["dosageInstruction"][0]
        assert 75 <= dose["doseAndRate"][0]["doseQuantity"]["value"] <= 100  # E3.2: 75-100 mg a day
        assert dose["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "d"}


def test_progesterone_is_400_mg_vaginally_twice_daily_until_16_weeks():
    order = builder().medication_order("progesterone-vaginal", until=date(2027, 3, 12))
    dosage = order.resource["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 400, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    assert dosage["route"]["coding"][0]["code"] == "16857009"
    assert dosage["timing"]["repeat"]["frequency"] == 2 and dosage["timing"]["repeat"]["boundsPeriod"]["end"] == "2027-03-12"
    translations = load_translations()
    assert Translator(translations["nl"], "nl")(order.dosage) == "2 dd 400 mg vaginaal tot 12-03-2027"
    assert Translator(translations["en"], "en")(order.dosage) == "400 mg vaginally twice daily until 12 Mar 2027"


def test_lmwh_has_no_invented_dose_but_the_prophylactic_text():
    order = builder().medication_order("lmwh-prophylactic")
    dosage = order.resource["dosageInstruction"][0]
    assert "doseAndRate" not in dosage
    nl = Translator(load_translations()["nl"], "nl")(order.dosage)
    assert nl.startswith("1 dd profylactische dosis") and "subcutaan" in nl
    assert "laagmoleculaire heparine (LMWH)" in order.product


@pytest.mark.parametrize("template_id,reason", [
    ("low-dose-aspirin", "26843008"), ("lmwh-prophylactic", "26843008"),
    ("levothyroxine", "40930008"), ("progesterone-vaginal", "54048003"),
])
def test_each_order_has_its_own_reason(template_id, reason):
    resource = builder().medication_order(template_id, until=date(2027, 1, 1)).resource
    assert resource["reasonCode"][0]["coding"][0]["code"] == reason
    if template_id == "levothyroxine":
        assert "102878001" not in json.dumps(resource["reasonCode"])  # not "recurrent miscarriage"


def test_a_hospital_file_replaces_the_product_of_its_region(tmp_path):
    (tmp_path / "aspirin.json").write_text(json.dumps({"id": "low-dose-aspirin", "products": {"nl": {
        "text": "carbasalaatcalcium 100 mg sachet", "doseMg": 100,
        "coding": [{"system": PRK, "code": "12345"}, {"system": ATC, "code": "B01AC08"}]}}}))
    nl = builder("nl", tmp_path).medication_order("low-dose-aspirin").resource
    assert nl["medicationCodeableConcept"]["coding"][0] == {"system": PRK, "code": "12345"}
    assert nl["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 100
    assert nl["reasonCode"][0]["coding"][0]["code"] == "26843008"  # the shipped fields stay
    be = builder("be", tmp_path).medication_order("low-dose-aspirin").resource
    assert be["medicationCodeableConcept"]["text"] == "acetylsalicylzuur 80 mg tablet"


def test_the_readme_example_loads(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Order templates", 1)[1]
    examples = [block.split("```", 1)[0] for block in section.split("```json\n")[1:3]]
    for n, example in enumerate(examples):
        (tmp_path / f"{n}.json").write_text(example)
    templates = OrderTemplates.load("nl", tmp_path)
    assert templates.product("low-dose-aspirin").coding[0].system == PRK
    assert templates.product("lmwh-prophylactic").coding[1].code == "B01AB06"


@pytest.mark.parametrize("content,message", [
    ({"id": "unknown-drug", "products": {}}, "not a shipped order template"),
    ({"id": "low-dose-aspirin", "products": {"nl": {"text": "x", "coding": []}}}, "low-dose-aspirin"),
    ("not json", "t.json"),
])
def test_a_bad_hospital_file_stops_the_start(tmp_path, content, message):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "t.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(OrderTemplateError, match=message):
        OrderTemplates.load("nl", folder)
    with pytest.raises(ConfigError):
        create_app(make_settings(tmp_path, order_templates_dir=folder))


def test_the_suggested_progesterone_is_not_warned_against_when_signed(cds):
    scenario = next(s for s in SCENARIOS["E8.6b"] if s.hook == "patient-view" and s.fires)
    cards = cds.cards("patient-view", request_for(scenario))
    resource = medication_suggestions([c for c in cards if c["source"]["topic"]["code"] == "E8.6b"])[0]
    body = request_for(scenario)
    draft = {**resource, "id": "suggested-progesterone"}
    sign = hook_request("order-sign", drafts=(draft,), data=body["prefetch"])
    topics = [c["source"]["topic"]["code"] for c in cds.cards("order-sign", sign)]
    assert "E8.6a" not in topics and "E8.6b" not in topics and "E8.6c" not in topics


def test_a_genetic_counselling_referral_names_the_finding_it_is_for(cds):
    scenario = next(s for s in SCENARIOS["E2"] if s.fires)
    card = next(c for c in cds.cards(scenario.hook, request_for(scenario)) if c["source"]["topic"]["code"] == "E2")
    referral = card["suggestions"][0]["actions"][0]["resource"]
    refs = [r["reference"] for r in referral["reasonReference"]]
    assert refs and all(ref.split("/")[0] in ("Observation", "Condition", "DiagnosticReport") for ref in refs)
    assert all(ref in card["detail"] for ref in refs)


def test_a_free_t4_names_the_abnormal_tsh(cds):
    from tests.builders import losses, prefetch, tsh
    body = hook_request("patient-view", data=prefetch(losses(2), tsh(6.0, date="2026-11-01", high=4.0, low=0.4, rid="tsh-abn")))
    cards = cds.cards("patient-view", body)
    ft4 = next(a["resource"] for c in cards for s in c.get("suggestions", []) for a in s["actions"]
               if a["type"] == "create" and a["resource"]["code"].get("text") == "Free T4")
    assert ft4["reasonReference"] == [{"reference": "Observation/tsh-abn"}]
