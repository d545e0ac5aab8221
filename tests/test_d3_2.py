"""D3.2: suggest the missing antiphospholipid antibody tests in RPL."""

from __future__ import annotations

from fhir_mappings.resources import validate_create
from tests.builders import (
    APL_LOINC, LOINC, apl_panel, carried_ids, hook_request, losses, observation, procedure, rpl_diagnosis, service_request,
    tsh,
)


# The rest of the work-up on record, so that the D3.2 card is not merged into the work-up card.
OTHER_WORKUP_DONE = (tsh(2.0, date="2026-10-01"), procedure(LOINC, "24677-7"))


def card(cds, *resources, hook="patient-view"):
    cards = [c for c in cds.cards(hook, hook_request(hook, *resources, *OTHER_WORKUP_DONE)) if "D3.2" in carried_ids(c)]
    return cards[0] if cards else None


def created(card):
    return [a["resource"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "create"]


def test_fires_for_rpl_without_any_result_and_orders_all_five(cds):
    found = card(cds, rpl_diagnosis())
    assert found is not None and found["indicator"] == "info"
    orders = created(found)
    assert len(orders) == 5
    for order in orders:
        validate_create(order)  # valid FHIR R4 ServiceRequest
        assert order["status"] == "draft" and order["subject"] == {"reference": "Patient/pat-1"}
    assert "5 of 5" in found["summary"]
    assert found["source"]["topic"]["system"] == "http://rpl-cds.org/fhir/CodeSystem/recommendation"


def test_orders_only_the_missing_tests(cds):
    panel = apl_panel("2026-05-01")[:3]  # LA, aCL IgG, aCL IgM resulted
    found = card(cds, losses(2), *panel)
    codes = {o["code"]["coding"][0]["code"] for o in created(found)}
    assert len(codes) == 2
    assert "2 of 5" in found["summary"]
    assert "Lupus anticoagulant" in found["detail"]  # the results it saw are listed


def test_silent_when_all_five_are_resulted(cds):
    assert card(cds, losses(3), *apl_panel("2026-05-01")) is None


def test_silent_after_a_single_miscarriage(cds):
    assert card(cds, losses(1)) is None


def test_silent_when_rpl_diagnosis_is_refuted_or_entered_in_error(cds):
    assert card(cds, rpl_diagnosis(verification="refuted")) is None
    assert card(cds, rpl_diagnosis(verification="entered-in-error", clinical=None)) is None


def test_result_entered_in_error_does_not_count(cds):
    panel = apl_panel("2026-05-01")
    panel[0]["status"] = "entered-in-error"
    found = card(cds, losses(2), *panel)
    assert found is not None and "1 of 5" in found["summary"]


def test_results_of_another_patient_are_ignored(cds):
    panel = apl_panel("2026-05-01")
    for obs in panel:
        obs["subject"] = {"reference": "Patient/someone-else"}
    assert "5 of 5" in card(cds, losses(2), *panel)["summary"]


def test_test_already_ordered_is_not_suggested_again(cds):
    ordered = service_request(LOINC, APL_LOINC["anticardiolipin-igg"], status="active")
    found = card(cds, rpl_diagnosis(), ordered)
    codes = {o["code"]["coding"][0]["code"] for o in created(found)}
    assert len(codes) == 4 and APL_LOINC["anticardiolipin-igg"] not in codes


def test_not_on_order_hooks(cds):
    assert card(cds, rpl_diagnosis(), hook="order-sign") is None


def test_lupus_anticoagulant_without_interpretation_still_counts_as_a_result(cds):
    la = observation("3284-7", value=1.1, unit="{ratio}", date="2026-05-01")
    found = card(cds, losses(2), la)
    assert "4 of 5" in found["summary"]


# -- version 2: the 12-week repeat of a positive test -----------------------------------
def repeats(card):
    return [a["resource"] for s in card["suggestions"] for a in s["actions"]
            if a["type"] == "create" and "occurrencePeriod" in a["resource"]]


def test_d3_2_suggests_the_repeat_of_a_positive_test_from_12_weeks_after_it(cds):
    found = card(cds, losses(2), *apl_panel("2026-09-01", positive=("anticardiolipin-igg",)))
    [repeat] = repeats(found)
    validate_create(repeat)
    assert repeat["code"]["coding"][0]["code"] == APL_LOINC["anticardiolipin-igg"]
    assert repeat["occurrencePeriod"] == {"start": "2026-11-24"}  # 2026-09-01 + 84 days
    assert "24 Nov 2026" in found["detail"]  # dates in the card language (English: 24 Nov 2026)
    assert "repeat" in found["summary"]


def test_d3_2_repeat_date_may_lie_in_the_past(cds):
    found = card(cds, losses(2), *apl_panel("2026-03-02", positive=("lupus-anticoagulant",)))
    assert [r["occurrencePeriod"]["start"] for r in repeats(found)] == ["2026-05-25"]


def test_d3_2_silent_with_two_positives_12_weeks_apart(cds):
    first = apl_panel("2026-01-05", positive=("anticardiolipin-igg",))
    second = apl_panel("2026-03-30", positive=("anticardiolipin-igg",))  # 84 days later
    assert card(cds, losses(2), *first, *second) is None


def test_d3_2_repeats_when_the_second_positive_came_too_early(cds):
    first = apl_panel("2026-01-05", positive=("anticardiolipin-igg",))
    second = apl_panel("2026-03-29", positive=("anticardiolipin-igg",))  # 83 days later
    found = card(cds, losses(2), *first, *second)
    assert [r["occurrencePeriod"]["start"] for r in repeats(found)] == ["2026-03-30"]


def test_d3_2_silent_when_a_negative_result_came_12_weeks_after_the_positive(cds):
    first = apl_panel("2026-01-05", positive=("anticardiolipin-igg",))
    assert card(cds, losses(2), *first, *apl_panel("2026-04-15")) is None


def test_d3_2_silent_when_the_repeat_is_ordered(cds):
    ordered = service_request(LOINC, APL_LOINC["anticardiolipin-igg"], status="active")
    assert card(cds, losses(2), *apl_panel("2026-09-01", positive=("anticardiolipin-igg",)), ordered) is None


def test_d3_2_missing_and_repeat_tests_in_one_card(cds):
    panel = apl_panel("2026-09-01", positive=("lupus-anticoagulant",))[:3]
    found = card(cds, losses(2), *panel)
    assert len(found["suggestions"]) == 2 and found["selectionBehavior"] == "any"
    assert len(repeats(found)) == 1 and len(created(found)) == 3
    assert "2 of 5" in found["summary"]


def test_d3_2_no_repeat_without_rpl(cds):
    assert card(cds, losses(1), *apl_panel("2026-09-01", positive=("anticardiolipin-igg",))) is None
