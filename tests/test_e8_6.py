"""E8.6a/b/c: progesterone in RPL - warn, endorse (and suggest), or stop."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from fhir_mappings.resources import validate_create
from tests.builders import (
    SNOMED, carried_ids, condition, hook_request, losses, observation, progesterone_order, rpl_diagnosis,
)
from tests.conftest import TODAY


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def pregnancy(ga_weeks_today: float = 9, bleeding_days_ago: int | None = 10, intrauterine: bool = True,
              extra: tuple = ()) -> list[dict]:
    """A current pregnancy with gestational age measured today, optional early bleeding."""
    data = [
        condition(SNOMED, "77386006", onset=day(-40), display="Pregnant"),
        observation("11884-4", value=ga_weeks_today, unit="wk", date=day(0)),
    ]
    if bleeding_days_ago is not None:
        data.append(condition(SNOMED, "54048003", onset=day(-bleeding_days_ago), display="Threatened abortion"))
    if intrauterine:
        data.append(condition(SNOMED, "65727000", onset=day(-14), display="Intrauterine pregnancy"))
    return [*data, *extra]


def topics(cds, hook, *resources, drafts=(), selections=None):
    body = hook_request(hook, *resources, drafts=drafts, selections=selections)
    return {rec_id: c for c in cds.cards(hook, body) for rec_id in reversed(carried_ids(c))}


# -- E8.6a -----------------------------------------------------------------------------
def test_e8_6a_warns_on_selected_progesterone_in_rpl(cds):
    cards = topics(cds, "order-select", losses(2), drafts=(progesterone_order(rid="prog-1"),))
    card = cards["E8.6a"]
    assert card["indicator"] == "warning"
    actions = card["suggestions"][0]["actions"]
    assert actions == [{"type": "delete", "description": actions[0]["description"], "resourceId": "MedicationRequest/prog-1"}]
    assert card["selectionBehavior"] == "any"
    assert all(r["display"] for r in card["overrideReasons"])
    assert "MedicationRequest/prog-1" in card["detail"] and "progesterone" in card["detail"]


def test_e8_6a_only_judges_the_selected_order_on_order_select(cds):
    drafts = (progesterone_order(rid="prog-1"), observation_free_order())
    cards = topics(cds, "order-select", losses(2), drafts=drafts, selections=("MedicationRequest/other-1",))
    assert "E8.6a" not in cards


def observation_free_order():
    from tests.builders import RXNORM, medication_request

    return medication_request(RXNORM, "161", rid="other-1", display="acetaminophen")


def test_e8_6a_judges_every_draft_on_order_sign(cds):
    assert "E8.6a" in topics(cds, "order-sign", losses(2), drafts=(progesterone_order(rid="prog-1"), observation_free_order()))


def test_e8_6a_silent_without_rpl(cds):
    assert topics(cds, "order-select", losses(1), drafts=(progesterone_order(rid="p"),)) == {}


def test_e8_6a_on_patient_view_for_active_progesterone_without_delete(cds):
    card = topics(cds, "patient-view", rpl_diagnosis(), progesterone_order(status="active"))["E8.6a"]
    assert "suggestions" not in card and card["overrideReasons"]


def test_e8_6a_recognises_dutch_atc_coded_dydrogesterone(cds):
    from tests.builders import ATC, medication_request

    order = medication_request(ATC, "G03DB01", rid="dydro", display="dydrogesteron")
    assert "E8.6a" in topics(cds, "order-sign", losses(2), drafts=(order,))


# -- E8.6b -----------------------------------------------------------------------------
def test_e8_6b_suggests_progesterone_400mg_twice_daily_until_16_weeks(cds):
    cards = topics(cds, "patient-view", losses(3), *pregnancy())
    card = cards["E8.6b"]
    order = card["suggestions"][0]["actions"][0]["resource"]
    validate_create(order)
    dosage = order["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 400
    assert dosage["timing"]["repeat"]["frequency"] == 2
    assert dosage["route"]["coding"][0]["code"] == "16857009"  # vaginal
    # 9+0 weeks today: 16+0 is 49 days away
    assert dosage["timing"]["repeat"]["boundsPeriod"]["end"] == (TODAY + timedelta(days=49)).isoformat()
    assert "E8.6a" not in cards


def test_e8_6b_endorsed_order_gets_no_warning_but_is_replaced_by_the_endorsed_dose(cds):
    cards = topics(cds, "order-select", losses(3), *pregnancy(), drafts=(progesterone_order(rid="p", dose_mg=200),))
    assert set(cards) == {"E8.6b"} and cards["E8.6b"]["indicator"] == "info"
    actions = cards["E8.6b"]["suggestions"][0]["actions"]
    assert [a["type"] for a in actions] == ["delete", "create"]
    assert actions[0]["resourceId"] == "MedicationRequest/p"
    validate_create(actions[1]["resource"])
    assert actions[1]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 400


def test_e8_6b_order_as_endorsed_gets_no_card(cds):
    order = progesterone_order(rid="p", dose_mg=400, per_day=2)
    order["dosageInstruction"][0]["route"] = {"coding": [{"system": SNOMED, "code": "16857009"}]}
    assert topics(cds, "order-select", losses(3), *pregnancy(), drafts=(order,)) == {}


def test_e8_6b_not_already_ordered(cds):
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *pregnancy(), progesterone_order(status="active"))


def test_two_losses_are_not_enough_for_e8_6b(cds):
    assert "E8.6b" not in topics(cds, "patient-view", losses(2), *pregnancy())
    assert "E8.6a" in topics(cds, "order-sign", losses(2), *pregnancy(), drafts=(progesterone_order(rid="p"),))


@pytest.mark.parametrize("bleeding_days_ago,endorsed", [(1, True), (0, False)])
def test_bleeding_at_11_6_counts_at_12_0_does_not(cds, bleeding_days_ago, endorsed):
    # Gestational age today is 12+0: bleeding yesterday was at 11+6.
    cards = topics(cds, "patient-view", losses(3), *pregnancy(ga_weeks_today=12, bleeding_days_ago=bleeding_days_ago))
    assert ("E8.6b" in cards) is endorsed


def test_no_e8_6b_without_confirmed_intrauterine_pregnancy(cds):
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *pregnancy(intrauterine=False))


def test_no_e8_6b_without_bleeding(cds):
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *pregnancy(bleeding_days_ago=None))


def test_no_e8_6b_from_16_weeks(cds):
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *pregnancy(ga_weeks_today=16, bleeding_days_ago=40))


def test_refuted_pregnancy_is_no_pregnancy(cds):
    data = pregnancy()
    data[0]["verificationStatus"]["coding"][0]["code"] = "refuted"
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *data)


# -- E8.6c -----------------------------------------------------------------------------
def scan(crl_mm=None, sac_mm=None, heart=None, when=-1):
    out = []
    if crl_mm is not None:
        out.append(observation("11957-8", value=crl_mm, unit="mm", date=day(when)))
    if sac_mm is not None:
        out.append(observation("11850-5", value=sac_mm, unit="mm", date=day(when)))
    if heart is not None:
        out.append(observation("11948-7", value=heart, unit="/min", date=day(when)))
    return out


@pytest.mark.parametrize(
    "findings,stop",
    [
        (lambda: [condition(SNOMED, "34801009", onset=day(-2), display="Ectopic pregnancy")], True),
        (lambda: scan(crl_mm=8, heart=0), True),
        (lambda: scan(crl_mm=7, heart=0), False),
        (lambda: scan(crl_mm=8, heart=150), False),
        (lambda: scan(sac_mm=26, heart=0), True),
        (lambda: scan(sac_mm=25, heart=0), False),
        (lambda: [condition(SNOMED, "54048003", onset=day(-1), severity="24484000")], True),
        (lambda: [condition(SNOMED, "16607004", onset=day(-2))], True),
        (lambda: [condition(SNOMED, "16607004", onset=day(-200))], False),
    ],
    ids=["ectopic", "crl-8-no-heart", "crl-7-no-heart", "crl-8-heart", "sac-26-empty", "sac-25-empty", "severe-bleeding",
         "missed-miscarriage-now", "missed-miscarriage-long-ago"],
)
def test_e8_6c_stops_progesterone(cds, findings, stop):
    cards = topics(cds, "order-sign", losses(3), *pregnancy(extra=tuple(findings())), drafts=(progesterone_order(rid="p"),))
    if stop:
        assert cards["E8.6c"]["indicator"] == "critical"
        assert "E8.6a" not in cards  # one card about the order, the most urgent
        assert cards["E8.6c"]["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/p"
    else:
        assert "E8.6c" not in cards


def test_e8_6c_needs_no_rpl(cds):
    ectopic = condition(SNOMED, "34801009", onset=day(-2))
    preg = condition(SNOMED, "77386006", onset=day(-40))
    assert "E8.6c" in topics(cds, "order-select", ectopic, preg, drafts=(progesterone_order(rid="p"),))


def test_resolved_ectopic_is_not_a_stop(cds):
    ectopic = condition(SNOMED, "34801009", onset=day(-400), clinical="resolved")
    assert "E8.6c" not in topics(cds, "order-select", losses(2), ectopic, drafts=(progesterone_order(rid="p"),))


def test_no_e8_6b_and_no_s2_after_a_missed_miscarriage(cds):
    cards = topics(cds, "patient-view", losses(3), *pregnancy(), condition(SNOMED, "16607004", onset=day(-1)))
    assert "E8.6b" not in cards and "S2" not in cards and "S4" in cards


# -- version 2 -------------------------------------------------------------------------
def progesterone_statement(rid: str = "prog-ms") -> dict:
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8727"}]},
        "subject": {"reference": "Patient/pat-1"},
    }


def vaginal(order: dict) -> dict:
    order["dosageInstruction"][0]["route"] = {"coding": [{"system": SNOMED, "code": "16857009"}]}
    return order


ECTOPIC = condition(SNOMED, "34801009", onset=day(-1), display="Ectopic pregnancy")
MISSED = condition(SNOMED, "16607004", onset=day(-1), display="Missed miscarriage")


@pytest.mark.parametrize("finding", [ECTOPIC, MISSED], ids=["ectopic", "missed-miscarriage"])
def test_e8_6c_says_stop_and_updates_the_running_medication_request_to_stopped(cds, finding):
    running = progesterone_order(rid="prog-1", status="active", dose_mg=200, per_day=2)
    card = topics(cds, "patient-view", losses(2), *pregnancy(bleeding_days_ago=None), finding, running)["E8.6c"]
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("Stop progesterone")
    [suggestion] = card["suggestions"]
    [action] = suggestion["actions"]
    assert action["type"] == "update"
    assert action["resource"]["id"] == "prog-1" and action["resource"]["status"] == "stopped"
    assert action["resource"]["dosageInstruction"] == running["dosageInstruction"]  # the rest as on record
    assert action["resource"]["statusReason"]["text"]
    validate_create({**action["resource"]})  # a valid FHIR R4 MedicationRequest


def test_e8_6c_for_a_medication_statement_gives_the_instruction_without_action(cds):
    card = topics(cds, "patient-view", losses(2), ECTOPIC, progesterone_statement())["E8.6c"]
    assert card["summary"].startswith("Stop progesterone")
    assert "suggestions" not in card
    assert "MedicationStatement/prog-ms" in card["detail"] and "stop taking it" in card["detail"]


def test_e8_6c_for_a_draft_still_says_do_not_start(cds):
    card = topics(cds, "order-sign", losses(2), ECTOPIC, drafts=(progesterone_order(rid="p"),))["E8.6c"]
    assert card["summary"].startswith("Do not start progesterone")
    assert card["suggestions"][0]["actions"][0]["type"] == "delete"


def test_e8_6c_silent_for_running_progesterone_without_a_finding(cds):
    assert "E8.6c" not in topics(cds, "patient-view", losses(2), *pregnancy(), progesterone_order(status="active"))


@pytest.mark.parametrize(
    "resources, missing",
    [
        ((losses(2), *pregnancy()), "fewer than 3 miscarriages (2 on record)"),
        ((losses(3), *pregnancy(bleeding_days_ago=None)), "no bleeding in this pregnancy"),
        ((losses(3), *pregnancy(intrauterine=False)), "no intra-uterine pregnancy on record"),
        ((losses(3), *pregnancy(ga_weeks_today=13, bleeding_days_ago=None)), "12 weeks or more, without a bleeding before 12 weeks"),
        ((losses(3), *pregnancy(bleeding_days_ago=20)), "no bleeding in the last 14 days"),
        ((losses(3),), "no current pregnancy on record"),
    ],
    ids=["two-losses", "no-bleeding", "not-intrauterine", "13-weeks", "bleeding-20-days-ago", "not-pregnant"],
)
def test_e8_6a_names_the_missing_e8_6b_fact(cds, resources, missing):
    card = topics(cds, "order-sign", *resources, drafts=(progesterone_order(rid="p"),))["E8.6a"]
    assert missing in card["detail"]


def test_e8_6a_in_dutch_names_the_missing_fact(cds):
    body = hook_request("order-sign", losses(2), *pregnancy(), drafts=(progesterone_order(rid="p"),))
    card = next(c for c in cds.cards("order-sign", body, language="nl") if c["source"]["topic"]["code"] == "E8.6a")
    assert "minder dan 3 miskramen" in card["detail"]


def test_e8_6b_needs_a_bleeding_within_the_last_14_days(cds):
    assert "E8.6b" in topics(cds, "patient-view", losses(3), *pregnancy(bleeding_days_ago=14))
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *pregnancy(bleeding_days_ago=15))


def test_e8_6b_shows_the_bleeding_date_and_the_gestational_age(cds):
    card = topics(cds, "patient-view", losses(3), *pregnancy(ga_weeks_today=10, bleeding_days_ago=3))["E8.6b"]
    began = date.fromisoformat(day(-3))
    assert f"Bleeding began on {began.day} {began:%b %Y}, at 9+4 weeks" in card["detail"]  # English date style
    assert "Gestational age today: 10+0 weeks" in card["detail"]


def test_e8_6b_needs_a_bleeding_of_this_pregnancy(cds):
    before = pregnancy(bleeding_days_ago=None, extra=(condition(SNOMED, "54048003", onset=day(-120)),))
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *before)


def test_e8_6b_undated_ongoing_bleeding_is_not_enough(cds):
    undated = pregnancy(bleeding_days_ago=None, extra=(condition(SNOMED, "54048003"),))
    assert "E8.6b" not in topics(cds, "patient-view", losses(3), *undated)


def test_e8_6b_course_complete_at_16_weeks_says_stop_never_e8_6a(cds):
    record = (losses(3), *pregnancy(ga_weeks_today=16, bleeding_days_ago=50))
    running = vaginal(progesterone_order(rid="prog-1", status="active", dose_mg=400, per_day=2))
    cards = topics(cds, "patient-view", *record, running)
    assert set(cards) >= {"E8.6b"} and "E8.6a" not in cards
    assert cards["E8.6b"]["summary"] == "Progesterone course complete at 16 weeks: stop progesterone"
    assert "MedicationRequest/prog-1" in cards["E8.6b"]["detail"]
    assert "E8.6a" not in topics(cds, "order-sign", *record, drafts=(progesterone_order(rid="p"),))


def test_e8_6b_course_not_complete_at_15_weeks_and_no_e8_6a_while_it_runs(cds):
    record = (losses(3), *pregnancy(ga_weeks_today=15, bleeding_days_ago=40))
    running = vaginal(progesterone_order(rid="prog-1", status="active", dose_mg=400, per_day=2))
    cards = topics(cds, "patient-view", *record, running)
    assert "E8.6b" not in cards and "E8.6a" not in cards
    assert "E8.6a" not in topics(cds, "order-sign", *record, running, drafts=(progesterone_order(rid="renewal"),))


def test_e8_6a_for_a_new_start_when_the_bleeding_is_more_than_14_days_ago(cds):
    record = (losses(3), *pregnancy(ga_weeks_today=15, bleeding_days_ago=40))
    assert "E8.6a" in topics(cds, "order-sign", *record, drafts=(progesterone_order(rid="p"),))


def test_e8_6b_no_course_complete_without_an_e8_6b_course(cds):
    # At 16 weeks after two losses the running progesterone is the E8.6a warning's business.
    record = (losses(2), *pregnancy(ga_weeks_today=16, bleeding_days_ago=50))
    cards = topics(cds, "patient-view", *record, progesterone_order(status="active"))
    assert "E8.6a" in cards and "E8.6b" not in cards


def test_e8_6b_running_at_another_dose_gets_the_endorsed_dose(cds):
    running = vaginal(progesterone_order(rid="prog-1", status="active", dose_mg=200, per_day=2))
    card = topics(cds, "patient-view", losses(3), *pregnancy(), running)["E8.6b"]
    assert card["indicator"] == "info"
    [suggestion] = card["suggestions"]
    update, create = suggestion["actions"]
    assert update["type"] == "update" and update["resource"]["status"] == "stopped" and update["resource"]["id"] == "prog-1"
    assert create["type"] == "create"
    validate_create(create["resource"])
    assert create["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 400


def test_e8_6b_running_statement_at_another_route_gets_only_the_new_order(cds):
    statement = {**progesterone_statement(), "dosage": [{"route": {"coding": [{"system": SNOMED, "code": "26643006"}]}}]}
    card = topics(cds, "patient-view", losses(3), *pregnancy(), statement)["E8.6b"]
    assert [a["type"] for a in card["suggestions"][0]["actions"]] == ["create"]


def test_e8_6b_running_as_endorsed_or_unstructured_gets_no_card(cds):
    as_endorsed = vaginal(progesterone_order(rid="prog-1", status="active", dose_mg=400, per_day=2))
    for running in (as_endorsed, progesterone_order(status="active")):
        cards = topics(cds, "patient-view", losses(3), *pregnancy(), running)
        assert "E8.6b" not in cards and "E8.6a" not in cards
