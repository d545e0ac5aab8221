"""D5.1a: suggest TSH when RPL and no TSH in the last 12 months."""

from __future__ import annotations

from fhir_mappings.resources import validate_create
from tests.builders import LOINC, apl_panel, carried_ids, hook_request, losses, procedure, rpl_diagnosis, service_request, tsh


# The rest of the work-up on record, so that the D5.1a card is not merged into the work-up card.
OTHER_WORKUP_DONE = (*apl_panel("2026-05-01"), procedure(LOINC, "24677-7"))


def card(cds, *resources):
    cards = cds.cards("patient-view", hook_request("patient-view", *resources, *OTHER_WORKUP_DONE))
    return next((c for c in cards if "D5.1a" in carried_ids(c)), None)


def test_fires_without_any_tsh_and_orders_tsh(cds):
    found = card(cds, rpl_diagnosis())
    order = found["suggestions"][0]["actions"][0]["resource"]
    validate_create(order)
    assert order["resourceType"] == "ServiceRequest"
    assert order["code"]["coding"][0] == {"system": LOINC, "code": "3016-3", "display": order["code"]["coding"][0]["display"]}
    assert "No TSH result on record" in found["detail"]


def test_fires_when_the_last_tsh_is_older_than_12_months(cds):
    found = card(cds, losses(2), tsh(2.0, date="2025-11-22"))
    assert found is not None
    assert "22 Nov 2025" in found["detail"] and "2 mIU/L" in found["detail"]


def test_silent_with_a_tsh_exactly_12_months_old(cds):
    assert card(cds, losses(2), tsh(2.0, date="2025-11-23")) is None


def test_silent_with_a_recent_tsh(cds):
    assert card(cds, losses(2), tsh(7.5, date="2026-03-01")) is None


def test_silent_without_rpl(cds):
    assert card(cds, losses(1)) is None


def test_silent_when_tsh_is_already_ordered(cds):
    assert card(cds, losses(2), service_request(LOINC, "3016-3", status="active")) is None


def test_recent_tsh_in_an_unknown_unit_is_not_used_and_the_card_says_so(cds):
    found = card(cds, losses(2), tsh(2.0, date="2026-10-01", unit="furlongs"))
    assert found is not None
    assert "unknown unit" in found["detail"] and "furlongs" in found["detail"]


def test_cancelled_tsh_is_ignored(cds):
    assert card(cds, losses(2), tsh(2.0, date="2026-10-01", status="cancelled")) is not None


def test_dutch_card(cds):
    cards = cds.cards("patient-view", hook_request("patient-view", rpl_diagnosis()), language="nl")
    found = next(c for c in cards if "D5.1a" in carried_ids(c))
    assert "TSH" in found["summary"]
