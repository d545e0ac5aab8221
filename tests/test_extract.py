"""fhir_mappings: messy real-world FHIR R4 data -> PatientFacts.

Each data-hygiene rule has a test that fails without it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from fhir_mappings.extract import ExtractionSettings, extract
from fhir_mappings.facts import Interpretation, LossCountSource
from fhir_mappings.record import gather
from fhir_mappings.valuesets import ValueSetIndex
from tests.builders import (
    ATC, ICD10, ICD10CM, LOINC, PID, RXNORM, SNOMED, bundle, condition, ft4, losses, medication_request,
    miscarriage, observation, patient, rpl_diagnosis, service_request, tsh,
)
from tests.conftest import TODAY


@pytest.fixture(scope="module")
def valuesets():
    return ValueSetIndex.load()


def facts_of(valuesets, *resources, drafts=(), selections=(), settings=ExtractionSettings(), pid=PID):
    record = gather(pid, [patient(pid), bundle(*resources)], draft_orders=bundle(*drafts), selections=selections)
    return extract(record, valuesets, TODAY, settings)


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


# -- loss count and its provenance ---------------------------------------------------
def test_obstetric_history_count(valuesets):
    facts = facts_of(valuesets, losses(3))
    assert facts.loss_count.count == 3 and facts.loss_count.provenance is LossCountSource.OBSTETRIC_HISTORY
    assert facts.has_rpl


def test_rpl_diagnosis_implies_two(valuesets):
    facts = facts_of(valuesets, rpl_diagnosis())
    assert facts.loss_count.count == 2 and facts.loss_count.provenance is LossCountSource.RPL_DIAGNOSIS


def test_highest_supported_count_wins(valuesets):
    facts = facts_of(valuesets, losses(1), miscarriage("2025-01-10"), miscarriage("2025-06-10"), miscarriage("2026-02-01"))
    assert facts.loss_count.count == 3
    assert facts.loss_count.provenance is LossCountSource.MISCARRIAGE_CONDITIONS
    assert len(facts.loss_count.sources) == 3


def test_one_event_recorded_twice_counts_once(valuesets):
    # Synthea: 'Miscarriage in first trimester' and 'Blighted ovum' with the same onset, plus
    # the same loss as an ICD-10 encounter diagnosis a week later.
    same = [
        condition(SNOMED, "19169002", onset="2025-03-01", clinical="resolved"),
        condition(SNOMED, "35999006", onset="2025-03-01", clinical="resolved"),
        condition(ICD10, "O03.9", onset="2025-03-08", clinical="resolved"),
    ]
    assert facts_of(valuesets, *same).losses == 1
    assert facts_of(valuesets, *same, miscarriage("2025-09-01")).losses == 2


def test_undated_miscarriages_are_not_counted_twice(valuesets):
    undated = [condition(SNOMED, "17369002", clinical="resolved"), condition(ICD10, "O03.4", clinical="resolved")]
    assert facts_of(valuesets, *undated).losses == 1


def test_ectopic_recorded_as_miscarriage_is_not_a_loss(valuesets):
    ectopic = [
        condition(SNOMED, "79586000", onset="2025-05-02", clinical="resolved"),  # tubal pregnancy
        condition(SNOMED, "19169002", onset="2025-05-02", clinical="resolved"),  # Synthea adds this too
    ]
    facts = facts_of(valuesets, *ectopic, miscarriage("2024-01-01"))
    assert facts.losses == 1 and not facts.has_rpl


def test_loss_beyond_the_week_limit_is_not_a_miscarriage(valuesets):
    late = [
        observation("11884-4", value=23, unit="wk", date="2025-08-01"),
        condition(SNOMED, "17369002", onset="2025-08-22", clinical="resolved"),  # 26 weeks by then
        miscarriage("2024-03-01"),
    ]
    assert facts_of(valuesets, *late).losses == 1
    assert facts_of(valuesets, *late, settings=ExtractionSettings(loss_week_limit=28)).losses == 2


def test_refuted_and_entered_in_error_diagnoses_are_ignored(valuesets):
    assert not facts_of(valuesets, rpl_diagnosis(verification="refuted")).has_rpl
    assert not facts_of(valuesets, rpl_diagnosis(verification="entered-in-error", clinical=None)).has_rpl
    assert not facts_of(valuesets, rpl_diagnosis(verification="provisional")).has_rpl


def test_inactive_or_statusless_rpl_diagnosis_is_not_active(valuesets):
    assert not facts_of(valuesets, rpl_diagnosis(clinical="resolved")).has_rpl
    assert not facts_of(valuesets, rpl_diagnosis(clinical=None)).has_rpl


def test_icd10cm_and_icd10_who_codes_with_or_without_dot(valuesets):
    assert facts_of(valuesets, condition(ICD10CM, "O26.21")).has_rpl
    assert facts_of(valuesets, condition(ICD10, "N96")).has_rpl
    assert facts_of(valuesets, condition(ICD10CM, "O2621")).has_rpl


# -- lab values, units, dates ------------------------------------------------------------
@pytest.mark.parametrize("unit", ["mIU/L", "mU/L", "uIU/mL", "µIU/mL", "μIU/mL", "m[IU]/L"])
def test_tsh_units_are_equal(valuesets, unit):
    result = facts_of(valuesets, tsh(6.5, unit=unit)).tsh
    assert result.value == 6.5 and result.unit == "mIU/L" and result.interpretation is Interpretation.HIGH


def test_tsh_in_unknown_unit_is_set_aside(valuesets):
    facts = facts_of(valuesets, tsh(6.5, unit="mg"))
    assert facts.tsh is None
    assert facts.unusable_results[0].original_unit == "mg" and not facts.unusable_results[0].unit_known


def test_ft4_ng_dl_is_converted_to_pmol_l(valuesets):
    result = facts_of(valuesets, ft4(1.0, unit="ng/dL")).ft4
    assert result.unit == "pmol/L" and result.value == pytest.approx(12.87)


def test_value_with_comparator_in_value_string(valuesets):
    obs = observation("3016-3", string="<0.01 mIU/L")
    result = facts_of(valuesets, obs).tsh
    assert result.value == 0.01 and result.comparator == "<" and result.interpretation is Interpretation.LOW


def test_value_with_comparator_in_quantity(valuesets):
    result = facts_of(valuesets, tsh(0.01, comparator="<")).tsh
    assert result.display_value() == "<0.01 mIU/L"


def test_lab_reference_range_wins_over_the_default(valuesets):
    assert facts_of(valuesets, tsh(3.8)).tsh.interpretation is Interpretation.NORMAL  # default 0.4-4.0
    assert facts_of(valuesets, tsh(3.8, low=0.3, high=3.5)).tsh.interpretation is Interpretation.HIGH
    assert facts_of(valuesets, tsh(4.0)).tsh.interpretation is Interpretation.NORMAL  # 4.0 is in range


def test_interpretation_code_when_no_range(valuesets):
    result = facts_of(valuesets, ft4(9.0, interpretation="L")).ft4
    assert result.interpretation is Interpretation.LOW
    assert facts_of(valuesets, ft4(9.0)).ft4.interpretation is None  # no FT4 default range is guessed


def test_most_recent_valid_result_is_used(valuesets):
    facts = facts_of(valuesets, tsh(2.0, date="2026-01-01"), tsh(7.0, date="2026-06-01"),
                     tsh(1.0, date="2026-09-01", status="entered-in-error"))
    assert facts.tsh.value == 7.0


def test_cancelled_registered_and_future_results_are_ignored(valuesets):
    facts = facts_of(valuesets, tsh(5.0, status="cancelled"), tsh(5.0, status="registered"), tsh(5.0, date=day(10)))
    assert facts.tsh is None


def test_preliminary_superseded_by_final(valuesets):
    facts = facts_of(valuesets, tsh(9.0, status="preliminary", date="2026-06-01"), tsh(6.0, date="2026-06-01"))
    assert [r.value for r in facts.results("tsh")] == [6.0]


def test_dates_from_effective_period_or_issued(valuesets):
    period = tsh(5.0)
    del period["effectiveDateTime"]
    period["effectivePeriod"] = {"start": "2026-04-02T08:00:00+02:00"}
    issued = tsh(6.0)
    del issued["effectiveDateTime"]
    issued["issued"] = "2026-05-03T10:00:00Z"
    assert str(facts_of(valuesets, period).tsh.date) == "2026-04-02"
    assert str(facts_of(valuesets, issued).tsh.date) == "2026-05-03"
    assert str(facts_of(valuesets, period, issued).tsh.date) == "2026-05-03"


def test_long_history_newest_result_in_unknown_unit_is_reported_older_usable_one_used(valuesets):
    history = [tsh(2.0 + i / 10, date=f"20{10 + i}-03-01") for i in range(10)]
    facts = facts_of(valuesets, *history, tsh(9.0, date="2026-10-01", unit="furlongs"))
    assert facts.tsh.value == 2.9 and str(facts.tsh.date) == "2019-03-01"
    assert [r.original_unit for r in facts.unusable_results] == ["furlongs"]


@pytest.mark.parametrize(
    "obs,positive",
    [
        (dict(value=60, unit="U/mL", high=20), True),  # above the lab's range
        (dict(value=15, unit="U/mL", high=20), False),
        (dict(value=45, unit="GPL"), True),  # no range, no interpretation: > 40 units
        (dict(value=40, unit="GPL"), False),
        (dict(value=12, unit="GPL", interpretation="H"), True),  # lab flag
        (dict(value=30, unit="furlongs"), None),  # unknown unit: set aside
    ],
)
def test_anticardiolipin_positive(valuesets, obs, positive):
    facts = facts_of(valuesets, observation("3181-5", **obs))
    latest = facts.antibody("anticardiolipin-igg").latest
    if positive is None:
        assert latest is None and facts.unusable_results
    else:
        assert (latest.interpretation is Interpretation.POSITIVE) is positive


def test_lupus_anticoagulant_qualitative_values(valuesets):
    coded = observation("3284-7", concept=(SNOMED, "10828004"))
    text = observation("3284-7", string="positief", date="2026-09-01")
    facts = facts_of(valuesets, coded, text)
    assert [r.interpretation for r in facts.antibody("lupus-anticoagulant").results] == [Interpretation.POSITIVE] * 2


def test_persistence_needs_12_weeks(valuesets):
    first = observation("3181-5", value=60, unit="U/mL", high=20, date="2026-01-05")
    assert not facts_of(valuesets, first, observation("3181-5", value=60, unit="U/mL", high=20, date="2026-03-29")).aps_criteria_met
    assert facts_of(valuesets, first, observation("3181-5", value=60, unit="U/mL", high=20, date="2026-03-30")).aps_criteria_met


def test_local_lab_code_through_an_extra_valueset(tmp_path):
    extra = {
        "resourceType": "ValueSet", "url": "http://rpl-cds.org/fhir/ValueSet/tsh", "status": "active",
        "compose": {"include": [{"system": "http://lab.example-hospital.nl/codes", "concept": [{"code": "TSH01"}]}]},
    }
    (tmp_path / "local-tsh.json").write_text(json.dumps(extra))
    local = observation("TSH01", system="http://lab.example-hospital.nl/codes", value=12.0, unit="mU/L")
    assert facts_of(ValueSetIndex.load(), local).tsh is None
    assert facts_of(ValueSetIndex.load(tmp_path), local).tsh.value == 12.0


def test_invalid_resource_is_ignored_not_fatal(valuesets):
    broken = tsh(5.0)
    broken["valueQuantity"]["value"] = "five"
    assert facts_of(valuesets, broken, tsh(2.0, date="2026-01-01")).tsh.value == 2.0


def test_resources_of_another_patient_or_unknown_type_are_set_aside(valuesets):
    record = gather(PID, [bundle(tsh(5.0, pid="other"), {"resourceType": "Basic", "id": "b"})])
    assert record.resources == () and len(record.ignored) == 2


def test_hapi_searchset_with_include_and_outcome_entries(valuesets):
    data = bundle(tsh(5.0))
    data["link"] = [{"relation": "self", "url": "http://hapi/fhir/Observation?patient=pat-1"}]
    data["meta"] = {"lastUpdated": "2026-11-01T00:00:00Z"}
    data["entry"].append({"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}})
    record = gather(PID, [data])
    assert [r["resourceType"] for r in record.resources] == ["Observation"]


# -- orders ---------------------------------------------------------------------------
def test_medication_as_codeable_concept_contained_or_referenced(valuesets):
    inline = medication_request(RXNORM, "8727", rid="a")
    contained = medication_request(RXNORM, "0", rid="b")
    del contained["medicationCodeableConcept"]
    contained["contained"] = [{"resourceType": "Medication", "id": "m1",
                               "code": {"coding": [{"system": ATC, "code": "G03DA04"}]}}]
    contained["medicationReference"] = {"reference": "#m1"}
    referenced = medication_request(RXNORM, "0", rid="c")
    del referenced["medicationCodeableConcept"]
    referenced["medicationReference"] = {"reference": "Medication/med-9"}
    medication = {"resourceType": "Medication", "id": "med-9", "code": {"coding": [{"system": ATC, "code": "J06BA02"}]}}
    record = gather(PID, [bundle(medication)], draft_orders=bundle(inline, contained, referenced))
    facts = extract(record, valuesets, TODAY)
    assert [sorted(o.classes) for o in facts.draft_orders] == [["progesterone"], ["progesterone"], ["immunoglobulin-iv"]]


def test_atc_group_and_dutch_codes(valuesets):
    enoxaparin = medication_request(ATC, "B01AB05", status="active")
    facts = facts_of(valuesets, enoxaparin)
    assert "heparins" in facts.orders[0].classes


def test_order_status_on_record(valuesets):
    stopped = medication_request(RXNORM, "8727", status="stopped")
    statement = {"resourceType": "MedicationStatement", "id": "ms1", "status": "active", "subject": {"reference": f"Patient/{PID}"},
                 "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "H03AA01"}]}}
    facts = facts_of(valuesets, stopped, statement)
    assert [o.reference for o in facts.orders] == ["MedicationStatement/ms1"]
    assert "levothyroxine" in facts.orders[0].classes


def test_service_request_classified_and_selected(valuesets):
    hla = service_request(LOINC, "13303-3", rid="hla")
    tsh_order = service_request(LOINC, "3016-3", rid="t")
    facts = facts_of(valuesets, drafts=(hla, tsh_order), selections=("ServiceRequest/hla",))
    by_ref = {o.reference: o for o in facts.draft_orders}
    assert "hla-typing" in by_ref["ServiceRequest/hla"].classes and by_ref["ServiceRequest/hla"].selected
    assert not by_ref["ServiceRequest/t"].selected


def test_daily_dose_in_mg(valuesets):
    order = medication_request(ATC, "B03BB01", dose_mg=5, per_day=1, status="active")
    assert facts_of(valuesets, order).orders[0].daily_dose_mg == 5
    order = medication_request(ATC, "G03DA04", dose_mg=400, per_day=2, status="active")
    assert facts_of(valuesets, order).orders[0].daily_dose_mg == 800


# -- pregnancy ----------------------------------------------------------------------------
def test_gestational_age_from_estimated_due_date(valuesets):
    preg = condition(SNOMED, "77386006", onset=day(-30))
    edd = observation("11778-8", date=day(-7), date_value=day(280 - 63))  # 9+0 weeks today
    facts = facts_of(valuesets, preg, edd)
    assert facts.pregnancy.current and facts.pregnancy.gestational_age_days == 63


def test_negative_test_after_positive_ends_pregnancy(valuesets):
    positive = observation("82810-3", date=day(-20), concept=(SNOMED, "77386006"))
    negative = observation("82810-3", date=day(-2), concept=(SNOMED, "60001007"))
    assert facts_of(valuesets, positive).pregnancy.current
    assert not facts_of(valuesets, positive, negative).pregnancy.current


def test_miscarriage_after_the_pregnancy_ends_it(valuesets):
    preg = condition(SNOMED, "77386006", onset=day(-50))
    assert not facts_of(valuesets, preg, miscarriage(day(-3))).pregnancy.current


def test_old_pregnancy_condition_is_not_current(valuesets):
    assert not facts_of(valuesets, condition(SNOMED, "77386006", onset=day(-400))).pregnancy.current


def test_smoking_status_current_smoker(valuesets):
    smoker = observation("72166-2", concept=(SNOMED, "449868002"))
    never = observation("72166-2", concept=(SNOMED, "266919005"), date="2026-10-01")
    assert facts_of(valuesets, smoker).smoking_current is not None
    assert facts_of(valuesets, smoker, never).smoking_current is None  # the latest status counts


def test_bmi(valuesets):
    assert facts_of(valuesets, observation("39156-5", value=31.2, unit="kg/m2")).bmi.value == 31.2


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["code"].update(coding=5),
        lambda r: r["code"].update(coding=True),
        lambda r: r.update(status={"x": 1}),
        lambda r: r.update(status=["final"]),
        lambda r: r.update(resourceType={"a": 1}),
        lambda r: r.update(verificationStatus={"coding": 7}),
    ],
)
def test_wrongly_shaped_json_is_ignored_not_fatal(valuesets, change):
    broken = tsh(5.0)
    change(broken)
    facts_of(valuesets, broken, rpl_diagnosis())  # no exception
    condition_broken = rpl_diagnosis()
    change(condition_broken)
    facts_of(valuesets, condition_broken)


@pytest.mark.parametrize("due_in_days", [400, -100])
def test_implausible_gestational_age_is_unknown(valuesets, due_in_days):
    preg = condition(SNOMED, "77386006", onset=day(-30))
    edd = observation("11778-8", date=day(-7), date_value=day(due_in_days))
    facts = facts_of(valuesets, preg, edd)
    assert facts.pregnancy.current and facts.pregnancy.gestational_age_days is None


@pytest.mark.parametrize("count", [1e300, 99999999999999999999999, 2.5, -3])
def test_implausible_obstetric_history_count_is_not_used(valuesets, count):
    assert facts_of(valuesets, observation("11614-5", value=count, unit="{#}")).loss_count is None
