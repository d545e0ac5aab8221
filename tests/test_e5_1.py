"""E5.1a and E5.1c, catalogue version 2: a code alone never starts levothyroxine (E5.1a asks
for TSH + free T4), and E5.1c judges only a new levothyroxine start, never a treatment the
patient already takes."""

from __future__ import annotations

from fhir_mappings.resources import validate_create
from tests.builders import ICD10, RXNORM, SNOMED, carried_ids, condition, ft4, hook_request, losses, observation, tsh
from tests.scenarios import order_of

RPL = losses(2)
TPO_POSITIVE = observation("8099-4", value=120, unit="IU/mL", high=35, date="2026-10-01")
E03_9 = condition(ICD10, "E03.9", onset="2019-03-01")  # stale code: hypothyroidism, unspecified


def cards(cds, hook, *resources, drafts=()):
    return {rec_id: c for c in cds.cards(hook, hook_request(hook, *resources, drafts=drafts)) for rec_id in reversed(carried_ids(c))}


def levothyroxine_statement(status: str = "active") -> dict:
    return {
        "resourceType": "MedicationStatement", "id": "levo-ms", "status": status,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "10582", "display": "levothyroxine"}]},
        "subject": {"reference": "Patient/pat-1"}, "effectivePeriod": {"start": "2018-01-01"},
    }


# -- E5.1c -------------------------------------------------------------------------
def test_e5_1c_fires_for_a_new_levothyroxine_start_with_normal_tsh_and_tpo(cds):
    card = cards(cds, "order-sign", RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE,
                 drafts=(order_of("levothyroxine", rid="levo-new"),))["E5.1c"]
    assert card["indicator"] == "warning"
    assert "MedicationRequest/levo-new" in card["detail"]
    assert "treated-hypothyroidism" in {r["code"] for r in card["overrideReasons"]}
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/levo-new"


def test_e5_1c_silent_on_patient_view_for_an_active_treatment(cds):
    # The reviewer's case: levothyroxine for years, hypothyroidism not on the problem list.
    assert "E5.1c" not in cards(cds, "patient-view", RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE,
                                order_of("levothyroxine", status="active", rid="levo-old"))
    assert "E5.1c" not in cards(cds, "patient-view", RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE,
                                levothyroxine_statement())


def test_e5_1c_silent_for_the_repeat_prescription_of_a_treatment_taken(cds):
    record = (RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE)
    repeat = order_of("levothyroxine", rid="levo-repeat")
    assert "E5.1c" not in cards(cds, "order-sign", *record, levothyroxine_statement(), drafts=(repeat,))
    assert "E5.1c" not in cards(cds, "order-sign", *record, order_of("levothyroxine", status="active", rid="levo-old"),
                                drafts=(repeat,))
    assert "E5.1c" not in cards(cds, "order-sign", *record, order_of("levothyroxine", status="stopped", rid="levo-old"),
                                drafts=(repeat,))


def test_e5_1c_fires_when_the_only_levothyroxine_on_record_is_this_draft(cds):
    # The EHR's own search may return the draft being signed: it is no treatment taken before.
    draft = order_of("levothyroxine", rid="levo-new")
    assert "E5.1c" in cards(cds, "order-sign", RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE, draft, drafts=(draft,))


def test_e5_1c_fires_when_an_earlier_statement_was_entered_in_error(cds):
    record = (RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE, levothyroxine_statement("entered-in-error"))
    assert "E5.1c" in cards(cds, "order-sign", *record, drafts=(order_of("levothyroxine"),))


def test_e5_1c_silent_with_a_hypothyroidism_diagnosis_or_without_tpo(cds):
    draft = (order_of("levothyroxine"),)
    assert "E5.1c" not in cards(cds, "order-sign", RPL, tsh(2.1, date="2026-10-01"), TPO_POSITIVE, E03_9, drafts=draft)
    assert "E5.1c" not in cards(cds, "order-sign", RPL, tsh(2.1, date="2026-10-01"), drafts=draft)
    assert "E5.1c" not in cards(cds, "order-sign", RPL, TPO_POSITIVE, drafts=draft)  # no TSH to judge by


# -- E5.1a -------------------------------------------------------------------------
def test_e5_1a_suggests_tsh_and_ft4_for_a_diagnosis_without_labs_in_12_months(cds):
    card = cards(cds, "patient-view", RPL, E03_9)["E5.1a"]
    resources = [a["resource"] for s in card["suggestions"] for a in s["actions"]]
    assert {r["resourceType"] for r in resources} == {"ServiceRequest"}  # tests, not treatment
    assert {r["code"]["coding"][0]["code"] for r in resources} == {"3016-3", "14920-3"}
    for resource in resources:
        validate_create(resource)
    assert "D5.1a" not in cards(cds, "patient-view", RPL, E03_9)  # E5.1a carries the TSH


def test_e5_1a_suggests_only_tsh_when_a_recent_ft4_exists(cds):
    card = cards(cds, "patient-view", RPL, E03_9, ft4(16.0, date="2026-11-01", low=12, high=22))["E5.1a"]
    codes = [a["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"] for a in s["actions"]]
    assert codes == ["3016-3"]


def test_e5_1a_silent_for_a_stale_code_with_normal_labs(cds):
    # The reviewer's case: stale E03.9, TSH 1.8 and FT4 16 this month.
    found = cards(cds, "patient-view", RPL, E03_9, tsh(1.8, date="2026-11-10"), ft4(16.0, date="2026-11-10", low=12, high=22))
    assert "E5.1a" not in found


def test_e5_1a_silent_with_a_normal_tsh_without_ft4(cds):
    assert "E5.1a" not in cards(cds, "patient-view", RPL, E03_9, tsh(1.8, date="2026-11-10"))


def test_e5_1a_still_prescribes_for_overt_hypothyroidism_in_the_labs(cds):
    card = cards(cds, "patient-view", RPL, E03_9, tsh(12.0), ft4(8.0, low=12, high=22))["E5.1a"]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["resourceType"] == "MedicationRequest"


def test_e5_1a_silent_when_levothyroxine_is_taken(cds):
    assert "E5.1a" not in cards(cds, "patient-view", RPL, E03_9, levothyroxine_statement())
    # then D5.1a asks for the TSH as for every woman with RPL
    assert "D5.1a" in cards(cds, "patient-view", RPL, E03_9, levothyroxine_statement())


def test_e5_1a_silent_when_the_tests_are_ordered(cds):
    orders = (order_of("tsh", status="active", rid="tsh-o"), order_of("free-t4", status="active", rid="ft4-o"))
    assert "E5.1a" not in cards(cds, "patient-view", RPL, E03_9, *orders)


def test_e5_1a_hypothyroidism_in_snomed_too(cds):
    assert "E5.1a" in cards(cds, "patient-view", RPL, condition(SNOMED, "40930008"))
