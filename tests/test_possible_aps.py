"""Catalogue "Possible APS" (version 2): WHO ICD-10 D68.6 or another APS code on record makes
the RPL not unexplained: no E8.4, no E3.1; D3.2 still suggests the missing aPL tests; E8.4
offers the override reason "APS / persistent aPL"."""

from __future__ import annotations

import pytest

from tests.builders import ATC, ICD10, SNOMED, carried_ids, condition, hook_request, losses, medication_request
from tests.scenarios import order_of, pregnancy

pytestmark = pytest.mark.version2("Possible APS")  # listed in docs/coverage.md

D68_6 = condition(ICD10, "D68.6", display="Other thrombophilia")
NADROPARIN = medication_request(ATC, "B01AB06", rid="nadroparin", display="nadroparine")
ASPIRIN = medication_request(ATC, "B01AC06", rid="ascal", display="acetylsalicylzuur 80 mg", dose_mg=80)


def cards(cds, hook, *resources, drafts=()):
    return {rec_id: c for c in cds.cards(hook, hook_request(hook, *resources, drafts=drafts)) for rec_id in reversed(carried_ids(c))}


def test_e8_4_silent_with_who_d68_6_pregnant_on_nadroparin_and_aspirin(cds):
    # The reviewer's case: D68.6, pregnant, nadroparin and aspirin: no "remove nadroparin".
    record = (losses(3), D68_6, *pregnancy())
    assert "E8.4" not in cards(cds, "order-sign", *record, drafts=(NADROPARIN, ASPIRIN))
    active = ({**NADROPARIN, "status": "active"}, {**ASPIRIN, "status": "active"})
    assert "E8.4" not in cards(cds, "patient-view", *record, *active)


def test_e8_4_fires_without_the_d68_6_code(cds):
    assert "E8.4" in cards(cds, "order-sign", losses(3), *pregnancy(), drafts=(NADROPARIN, ASPIRIN))


def test_e8_4_silent_with_an_aps_diagnosis_without_antibodies(cds):
    assert "E8.4" not in cards(cds, "order-sign", losses(2), condition(SNOMED, "26843008"), drafts=(NADROPARIN,))


def test_e8_4_fires_when_d68_6_is_refuted(cds):
    refuted = condition(ICD10, "D68.6", verification="refuted")
    assert "E8.4" in cards(cds, "order-sign", losses(2), refuted, drafts=(NADROPARIN,))


def test_e8_4_offers_the_override_reason_aps_persistent_apl(cds):
    card = cards(cds, "order-sign", losses(2), drafts=(NADROPARIN,))["E8.4"]
    assert "aps-persistent-apl" in {r["code"] for r in card["overrideReasons"]}


def test_e3_1_silent_with_possible_aps(cds):
    thrombophilia = condition(ICD10, "D68.5")
    assert "E3.1" not in cards(cds, "order-sign", losses(2), thrombophilia, D68_6, drafts=(order_of("heparins"),))
    assert "E3.1" in cards(cds, "order-sign", losses(2), thrombophilia, drafts=(order_of("heparins"),))


def test_d3_2_still_suggests_the_missing_apl_tests_with_possible_aps(cds):
    card = cards(cds, "patient-view", losses(2), D68_6)["D3.2"]  # on the work-up card D (issue 16)
    assert "5 of 5" in card["detail"]


def test_e3_2_still_needs_the_criteria_with_possible_aps(cds):
    assert "E3.2" not in cards(cds, "patient-view", losses(3), D68_6)


def test_e8_4_silent_with_us_coded_lupus_anticoagulant_syndrome(cds):
    lupus_anticoagulant = condition("http://hl7.org/fhir/sid/icd-10-cm", "D68.62")
    assert "E8.4" not in cards(cds, "order-sign", losses(2), lupus_anticoagulant, drafts=(NADROPARIN,))
    assert "E8.4" in cards(cds, "order-sign", losses(2), condition("http://hl7.org/fhir/sid/icd-10-cm", "D68.69"),
                           drafts=(NADROPARIN,))
