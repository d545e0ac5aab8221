"""Every recommendation of the catalogue: fires when it should, stays silent when
it must, in Dutch and English, with valid orders and traceable to its row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cards.catalog import CATALOGUE
from cards.rules import RULES
from fhir_mappings.resources import validate_create
from tests.builders import carried_ids, hook_request, prefetch
from tests.scenarios import ALL, SCENARIOS, Scenario

CATALOGUE_FILE = Path(__file__).resolve().parents[2] / "shared" / "guideline" / "recommendations.md"


def catalogue_ids() -> set[str]:
    assert CATALOGUE_FILE.exists(), f"the catalogue is expected at {CATALOGUE_FILE} (shared/ beside the checkout)"
    return set(re.findall(r"^\| ([CDES][0-9]+(?:\.[0-9]+)?[a-z]?) \|", CATALOGUE_FILE.read_text(), re.M))


def request_for(s: Scenario) -> dict:
    body = hook_request(s.hook, drafts=s.drafts, selections=s.selections,
                        data=prefetch(*s.resources, birth=s.birth))
    return body


@pytest.mark.parametrize("scenario", ALL, ids=lambda s: s.id)
def test_scenario(cds, scenario):
    cards: dict[str, dict] = {}
    for c in cds.cards(scenario.hook, request_for(scenario)):  # a merged card answers for every row it carries
        for rec_id in carried_ids(c):
            cards.setdefault(rec_id, c)
    topic = scenario.extra.get("topic", scenario.rec_id)
    assert (topic in cards) is scenario.fires, sorted(cards)
    if not scenario.fires:
        return
    card = cards[topic]
    if topic != scenario.rec_id:  # a row carried by another card says so in the detail
        assert scenario.rec_id in card["detail"]
    drafts = {f"{d['resourceType']}/{d['id']}" for d in scenario.drafts}
    for suggestion in card.get("suggestions", []):
        for action in suggestion["actions"]:
            if action["type"] == "create":
                validate_create(action["resource"])  # a valid FHIR R4 resource
                assert action["resource"]["status"] == "draft"
                assert action["resource"]["subject"] == {"reference": "Patient/pat-1"}
            elif action["type"] == "update":  # an order on record, changed (E8.6: stopped)
                validate_create(action["resource"])
                on_record = {f"{r['resourceType']}/{r['id']}" for r in scenario.resources}
                assert f"{action['resource']['resourceType']}/{action['resource']['id']}" in on_record
                assert action["resource"]["status"] == "stopped"
            else:
                assert action["type"] == "delete" and action["resourceId"] in drafts
    if card["indicator"] in ("warning", "critical"):
        assert card["overrideReasons"] and all(r["display"] for r in card["overrideReasons"])
        named = [d for d in (drafts or {f"{r['resourceType']}/{r['id']}" for r in scenario.resources}) if d in card["detail"]]
        assert named, "a warning names the order it is about"


def test_every_catalogue_id_has_a_rule():
    covered = {rec_id for spec in RULES for rec_id in spec.ids}
    assert catalogue_ids() - covered == set()
    assert covered <= set(CATALOGUE)


def test_every_catalogue_id_has_a_firing_and_a_silent_case():
    for rec_id in catalogue_ids():
        if rec_id.startswith("C") and rec_id != "C":
            rec_id = "C"  # C1.1-C2.6 share the lifestyle card
        cases = SCENARIOS.get(rec_id, [])
        assert any(s.fires for s in cases), f"{rec_id}: no case where it fires"
        assert any(not s.fires for s in cases), f"{rec_id}: no case where it must stay silent"


def test_catalogue_module_knows_exactly_the_catalogue_ids():
    assert set(CATALOGUE) - {"C", "D"} == catalogue_ids()  # C and D: the merged cards of several rows
