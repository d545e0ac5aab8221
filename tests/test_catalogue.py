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
# The clinical catalogue lives in the team's shared/ folder beside the checkout (CI has it);
# a clone of the repository alone does not, and then the comparisons with it are skipped.
needs_catalogue_file = pytest.mark.skipif(
    not CATALOGUE_FILE.exists(),
    reason=f"{CATALOGUE_FILE} is not here (shared/ is beside the team's checkouts, not in the repository)",
)


def catalogue_ids() -> set[str]:
    return set(re.findall(r"^\| ([CDES][0-9]+(?:\.[0-9]+)?[a-z]?) \|", CATALOGUE_FILE.read_text(), re.M))


def request_for(s: Scenario) -> dict:
    body = hook_request(s.hook, drafts=s.drafts, selections=s.selections,
                        data=prefetch(*s.resources, birth=s.birth, gender=s.gender))
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
    if "summary" in scenario.extra:
        assert scenario.extra["summary"] in (card["summary"] if topic == card["source"]["topic"]["code"] else card["detail"])
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
        active = {f"{r['resourceType']}/{r['id']}" for r in scenario.resources
                  if r["resourceType"] in ("MedicationRequest", "ServiceRequest") and r.get("status") == "active"}
        named = [d for d in drafts | active if d in card["detail"]]
        assert named, "a warning names the order it is about"


@needs_catalogue_file
def test_every_catalogue_id_has_a_rule():
    covered = {rec_id for spec in RULES for rec_id in spec.ids}
    assert catalogue_ids() - covered == set()
    assert covered <= set(CATALOGUE)


@needs_catalogue_file
def test_every_catalogue_id_has_a_firing_and_a_silent_case():
    for rec_id in catalogue_ids():
        if rec_id.startswith("C") and rec_id != "C":
            rec_id = "C"  # C1.1-C2.6 share the lifestyle card
        cases = SCENARIOS.get(rec_id, [])
        assert any(s.fires for s in cases), f"{rec_id}: no case where it fires"
        assert any(not s.fires for s in cases), f"{rec_id}: no case where it must stay silent"


@needs_catalogue_file
def test_catalogue_module_knows_exactly_the_catalogue_ids():
    # C and D: the merged cards of several rows; E: draft orders no treatment row could check
    assert set(CATALOGUE) - {"C", "D", "E"} == catalogue_ids()


def test_every_id_of_the_catalogue_module_has_a_rule_and_cases():
    """The same checks against the repository's own copy of the catalogue (cards.catalog), so
    that a clone without shared/ still checks that every row has a rule and test cases."""
    covered = {rec_id for spec in RULES for rec_id in spec.ids}
    for rec_id in set(CATALOGUE) - {"D"}:  # D: the merged work-up / tests card (cards/merge.py, tests/test_card_merging.py)
        assert rec_id in covered, f"{rec_id}: no rule"
        if rec_id.startswith("C") and rec_id != "C":
            rec_id = "C"
        cases = SCENARIOS.get(rec_id, [])
        assert any(s.fires for s in cases), f"{rec_id}: no case where it fires"
        assert any(not s.fires for s in cases), f"{rec_id}: no case where it must stay silent"
