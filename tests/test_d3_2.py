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
