"""Definitions "Timing" and "Whose chart" (catalogue version 2) at the edges the scenarios
(tests/scenarios.py, VERSION_2_SCENARIOS) do not reach: which date is the last loss, which
record is a scan of this pregnancy, and the window's boundary."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fhir_mappings.extract import extract
from fhir_mappings.record import gather
from fhir_mappings.valuesets import ValueSetIndex
from tests.builders import PID, SNOMED, bundle, condition, hook_request, losses, miscarriage, observation, patient, prefetch
from tests.conftest import TODAY


@pytest.fixture(scope="module")
def valuesets():
    return ValueSetIndex.load()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def facts_of(valuesets, *resources, gender="female"):
    return extract(gather(PID, [patient(gender=gender), bundle(*resources)]), valuesets, TODAY)


@pytest.mark.version2("Timing")
def test_the_last_loss_is_the_latest_dated_loss_condition(valuesets):
    missed = condition(SNOMED, "16607004", onset=day(-20), clinical="resolved")
    facts = facts_of(valuesets, miscarriage(day(-400)), missed, losses(3, date=day(-1)))
    assert facts.last_loss.source == f"Condition/{missed['id']}"


@pytest.mark.version2("Timing")
def test_the_last_loss_falls_back_to_the_recorded_date_and_ignores_future_dates(valuesets):
    undated = {**miscarriage(day(-30)), "recordedDate": day(-300)}
    del undated["onsetDateTime"]
    future = miscarriage(day(10))
    assert facts_of(valuesets, undated, future).last_loss.recorded.isoformat() == day(-300)


@pytest.mark.version2("Timing")
def test_an_ectopic_pregnancy_is_no_loss_for_the_window(valuesets):
    ectopic = condition(SNOMED, "34801009", onset=day(-10), clinical="resolved")
    assert facts_of(valuesets, ectopic).last_loss is None


@pytest.mark.version2("Timing")
@pytest.mark.parametrize("days_ago,fires", [(365, True), (366, False)])
def test_counselling_window_is_12_months(cds, days_ago, fires):
    body = hook_request("patient-view", miscarriage(day(-days_ago - 200)), miscarriage(day(-days_ago)))
    assert ("C" in cds.topics("patient-view", body)) is fires


@pytest.mark.version2("Timing")
def test_a_confirmed_intrauterine_pregnancy_or_a_crl_is_a_scan_a_gestational_age_is_not(valuesets):
    pregnant = (condition(SNOMED, "77386006", onset=day(-40)), observation("11884-4", value=9, unit="wk", date=day(0)))
    assert facts_of(valuesets, *pregnant).pregnancy.ultrasound_source is None
    crl = observation("11957-8", value=20, unit="mm", date=day(-2))
    assert facts_of(valuesets, *pregnant, crl).pregnancy.ultrasound_source == f"Observation/{crl['id']}"
    older = observation("11957-8", value=20, unit="mm", date=day(-200))  # a scan of an earlier pregnancy
    assert facts_of(valuesets, *pregnant, older).pregnancy.ultrasound_source is None


@pytest.mark.version2("Whose chart")
@pytest.mark.parametrize("gender,male", [("male", True), ("female", False), ("unknown", False), (None, False)])
def test_only_a_male_gender_is_the_partners_chart(valuesets, gender, male):
    record = patient(gender=gender or "female")
    if gender is None:
        del record["gender"]
    facts = extract(gather(PID, [record, bundle(losses(2))]), valuesets, TODAY)
    assert facts.male_chart is male


@pytest.mark.version2("Whose chart")
@pytest.mark.parametrize("hook", ["patient-view", "order-select", "order-sign"])
def test_a_mans_chart_with_rpl_gets_no_card_of_hers_on_any_hook(cds, hook):
    from tests.scenarios import order_of

    drafts = (order_of("progesterone"), order_of("immunoglobulin-iv"), order_of("tsh"))
    body = hook_request(hook, drafts=drafts, data=prefetch(losses(3), gender="male"))
    assert cds.topics(hook, body) == []
    body = hook_request(hook, drafts=drafts, data=prefetch(losses(3)))
    assert cds.topics(hook, body)  # the same record on a woman's chart does get cards
