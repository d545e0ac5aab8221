"""Discouraged orders (table rule): E8.2 IVIg in RPL; version 2 scope of E8.2, E8.3, E8.9 and E8.4."""

from __future__ import annotations

import pytest

from tests.builders import ICD10, SNOMED, apl_panel, carried_ids, condition, hook_request, ivig_order, losses, rpl_diagnosis
from tests.scenarios import order_of


def cards(cds, hook, *resources, drafts=(), selections=None):
    body = hook_request(hook, *resources, drafts=drafts, selections=selections)
    return {rec_id: c for c in cds.cards(hook, body) for rec_id in reversed(carried_ids(c))}


def test_e8_2_warns_on_selected_ivig_and_offers_to_remove_it(cds):
    card = cards(cds, "order-select", rpl_diagnosis(), drafts=(ivig_order(rid="ivig-1"),))["E8.2"]
    assert card["indicator"] == "warning"
    assert card["suggestions"][0]["actions"][0] == {
        "type": "delete", "description": card["suggestions"][0]["actions"][0]["description"],
        "resourceId": "MedicationRequest/ivig-1",
    }
    assert card["overrideReasons"][0]["display"]
    assert "MedicationRequest/ivig-1" in card["detail"]


def test_e8_2_on_order_sign(cds):
    assert "E8.2" in cards(cds, "order-sign", losses(2), drafts=(ivig_order(rid="ivig-1"),))


def test_e8_2_silent_without_rpl(cds):
    assert "E8.2" not in cards(cds, "order-sign", losses(1), drafts=(ivig_order(rid="ivig-1"),))


def test_e8_4_silent_when_rpl_is_explained_by_aps(cds):
    # Lupus anticoagulant positive twice, 12 weeks apart: APS criteria met.
    first = apl_panel("2026-01-05", positive=("lupus-anticoagulant",))
    second = apl_panel("2026-03-30", positive=("lupus-anticoagulant",))  # 84 days later
    assert "E8.4" not in cards(cds, "order-sign", losses(2), *first, *second, drafts=(order_of("heparins"),))


def test_e8_4_fires_when_antibodies_are_positive_less_than_12_weeks_apart(cds):
    first = apl_panel("2026-01-05", positive=("lupus-anticoagulant",))
    second = apl_panel("2026-03-29", positive=("lupus-anticoagulant",))  # 83 days later
    assert "E8.4" in cards(cds, "order-sign", losses(2), *first, *second, drafts=(order_of("heparins"),))


# Version 2: an explained RPL does not make IVIg, prednisolone or scratching useful.
EXPLAINED = {
    "aps": (losses(2), *apl_panel("2026-01-05", positive=("lupus-anticoagulant",)),
            *apl_panel("2026-03-30", positive=("lupus-anticoagulant",))),
    "thyroid": (losses(2), condition(SNOMED, "40930008")),
    "translocation": (losses(2), condition(ICD10, "Q95.0")),
}


@pytest.mark.parametrize("rec_id, concept", [
    ("E8.2", "immunoglobulin-iv"), ("E8.3", "prednisolone-prednisone"), ("E8.9", "endometrial-scratching"),
])
@pytest.mark.parametrize("cause", sorted(EXPLAINED))
def test_e8_2_e8_3_e8_9_warn_in_explained_rpl(cds, rec_id, concept, cause):
    assert rec_id in cards(cds, "order-sign", *EXPLAINED[cause], drafts=(order_of(concept),))


@pytest.mark.parametrize("rec_id, concept", [
    ("E8.2", "immunoglobulin-iv"), ("E8.3", "prednisolone-prednisone"), ("E8.9", "endometrial-scratching"),
])
def test_e8_2_e8_3_e8_9_silent_without_rpl(cds, rec_id, concept):
    assert rec_id not in cards(cds, "order-sign", losses(1), condition(ICD10, "Q95.0"), drafts=(order_of(concept),))


def test_e8_4_silent_in_explained_rpl(cds):
    for cause in ("thyroid", "translocation"):
        assert "E8.4" not in cards(cds, "order-sign", *EXPLAINED[cause], drafts=(order_of("heparins"),))


def test_e8_2_on_patient_view_for_active_ivig(cds):
    card = cards(cds, "patient-view", losses(2), ivig_order(status="active"))["E8.2"]
    assert "suggestions" not in card


def test_draft_order_of_another_patient_is_ignored(cds):
    other = ivig_order(rid="ivig-x", pid="someone-else")
    assert "E8.2" not in cards(cds, "order-sign", losses(2), drafts=(other,))
