"""How many cards, in which order (catalogue version 2; issue 16 items 1-2): one counselling
card C and one work-up card D on patient-view, one card for several discouraged tests on
order-sign, every carried ID at the start of its own line, ordered by what to act on."""

from __future__ import annotations

from datetime import date

import pytest

from cards.merge import merge, order_key
from cards.model import Action, CardDraft, Hook, Indicator, Suggestion
from cards.i18n import Text
from fhir_mappings.resources import validate_create
from service.demo_data import PATIENTS
from tests.builders import (
    SNOMED, carried_ids, condition, hook_request, losses, miscarriage, observation, prefetch, progesterone_order,
)
from tests.scenarios import order_of
from tests.test_demo_patients import _call, demo_client  # noqa: F401  (fixture)

pytestmark = pytest.mark.version2("How many cards")

RANK = {"critical": 0, "warning": 1}


def rank(card: dict) -> int:
    if card["indicator"] in RANK:
        return RANK[card["indicator"]]
    creates = any(a["type"] == "create" for s in card.get("suggestions", []) for a in s["actions"])
    return 2 if creates else 3


def patient_view(cds, *resources, language="en"):
    return cds.cards("patient-view", hook_request("patient-view", data=prefetch(*resources)), language)


def recommendation_lines(card: dict) -> list[str]:
    detail = card["detail"]
    section = detail.split("**Recommendation**", 1)[1].split("\n\n*", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_a_new_unexplained_rpl_patient_gets_two_cards(cds):
    cards = patient_view(cds, losses(2))
    assert [c["source"]["topic"]["code"] for c in cards] == ["D", "C"]  # the orders first, counselling last
    work_up, counsel = cards
    assert set(carried_ids(work_up)) == {"D", "D3.2", "D5.1a", "D6"}
    assert {"C", "E1", "D1", "E5.6", "E8.5", "S3", "S1", "C1.1", "C2.6"} <= set(carried_ids(counsel))


def test_every_carried_id_starts_its_own_line_with_its_module(cds):
    work_up, counsel = patient_view(cds, losses(2))
    lines = recommendation_lines(counsel)
    for rec_id, module in (("E1", "NVOG 2022 E 1"), ("S1", "Flouria 2025"), ("E8.5", "NVOG 2022 E 8.5"), ("E5.6", "NVOG 2022 E 5.6")):
        assert any(line.startswith(f"{rec_id} ({module}): ") for line in lines), rec_id
    assert any(line.startswith("C2.1 ") for line in lines)
    work_lines = recommendation_lines(work_up)
    for rec_id in ("D3.2", "D5.1a", "D6"):
        assert any(line.startswith(f"{rec_id} (NVOG 2022 D ") for line in work_lines), rec_id


def test_personal_lines_come_first(cds):
    smoker = observation("72166-2", concept=(SNOMED, "449868002"), date="2026-10-01")
    counsel = next(c for c in patient_view(cds, losses(2), smoker) if c["source"]["topic"]["code"] == "C")
    lines = recommendation_lines(counsel)
    assert lines[0].startswith("C2.1 She smokes")
    assert lines.index(next(x for x in lines if x.startswith("E1 ("))) < lines.index(next(x for x in lines if x.startswith("C1.2 ")))
    assert "stop smoking" in counsel["summary"]


def test_the_counselling_summary_names_the_prognosis_and_fits(cds):
    for language in ("en", "nl"):
        counsel = next(c for c in patient_view(cds, losses(3), language=language) if c["source"]["topic"]["code"] == "C")
        assert "Brigham 1999" in counsel["summary"] and len(counsel["summary"]) < 140


def test_work_up_card_one_recommended_suggestion_per_missing_test(cds):
    work_up = patient_view(cds, losses(2))[0]
    each = work_up["suggestions"]
    assert work_up["selectionBehavior"] == "any"
    # all recommended, so a client pre-selects the set; no "order all" that would repeat them
    assert len(each) == 7 and all(len(s["actions"]) == 1 and s["isRecommended"] is True for s in each)
    codes = [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in each]
    assert len(codes) == len(set(codes))
    for suggestion in each:
        validate_create(suggestion["actions"][0]["resource"])


@pytest.mark.parametrize("settings", [{"workup_order_all": True}], indirect=True)
def test_work_up_card_order_all_when_the_deployment_turns_it_on(cds):
    work_up = patient_view(cds, losses(2))[0]
    order_all, *each = work_up["suggestions"]
    # at-most-one: the whole set or one test, so no test is ordered twice
    assert work_up["selectionBehavior"] == "at-most-one"
    assert order_all["label"] == "Order all 7 tests" and order_all["isRecommended"] is True
    assert len(each) == 7 and all(len(s["actions"]) == 1 and not s.get("isRecommended") for s in each)
    assert [a["resource"] for a in order_all["actions"]] == [s["actions"][0]["resource"] for s in each]
    dutch = patient_view(cds, losses(2), language="nl")[0]
    assert dutch["suggestions"][0]["label"] == "Alle 7 onderzoeken aanvragen"


@pytest.mark.parametrize("settings", [{"workup_order_all": True}], indirect=True)
def test_order_all_is_not_offered_for_a_single_suggestion_or_outside_the_work_up_card(cds):
    from tests.builders import LOINC, apl_panel, procedure
    # D3.2 and D6 done: D5.1a alone keeps its own card with its own single suggestion
    cards = patient_view(cds, losses(2), *apl_panel("2026-05-01"), procedure(LOINC, "24677-7"))
    for card in cards:
        assert card.get("selectionBehavior", "any") == "any", card["summary"]
        assert not any(s["label"].startswith("Order all") for s in card.get("suggestions", []))


def test_one_missing_test_keeps_its_own_card(cds):
    from tests.builders import LOINC, apl_panel, procedure
    cards = patient_view(cds, losses(2), *apl_panel("2026-05-01"), procedure(LOINC, "24677-7"))
    assert "D5.1a" in [c["source"]["topic"]["code"] for c in cards] and "D" not in [c["source"]["topic"]["code"] for c in cards]


def test_after_a_single_miscarriage_no_counselling_card_c(cds):
    topics = [c["source"]["topic"]["code"] for c in patient_view(cds, miscarriage("2026-09-01"))]
    assert sorted(topics) == ["S1", "S3"]


def test_several_discouraged_tests_on_order_sign_make_one_card(cds):
    drafts = (order_of("hla-typing", rid="hla"), order_of("nk-cell-tests", rid="nk"), progesterone_order(rid="prog"))
    body = hook_request("order-sign", drafts=drafts, data=prefetch(losses(3)))
    cards = cds.cards("order-sign", body)
    tests_card = next(c for c in cards if c["source"]["topic"]["code"] == "D")
    assert tests_card["indicator"] == "warning"
    assert {"D4.1", "D4.5"} <= set(carried_ids(tests_card))
    assert sorted(a["resourceId"] for s in tests_card["suggestions"] for a in s["actions"]) == \
        ["ServiceRequest/hla", "ServiceRequest/nk"]
    lines = recommendation_lines(tests_card)
    assert any(x.startswith("D4.1 (NVOG 2022 D 4.1): ") for x in lines) and any(x.startswith("D4.5 (NVOG 2022 D 4.5): ") for x in lines)
    codes = [r["code"] for r in tests_card["overrideReasons"]]
    assert len(codes) == len(set(codes))
    assert "E8.6a" in [c["source"]["topic"]["code"] for c in cards]  # a drug warning keeps its own card


def test_one_discouraged_test_keeps_its_own_card(cds):
    body = hook_request("order-sign", drafts=(order_of("hla-typing", rid="hla"),), data=prefetch(losses(3)))
    assert [c["source"]["topic"]["code"] for c in cds.cards("order-sign", body)] == ["D4.1"]


def test_order_critical_warning_orders_counselling(cds):
    active = progesterone_order(status="active")
    cards = patient_view(cds, losses(2), active)
    assert [c["indicator"] for c in cards][0] == "warning"
    ranks = [rank(c) for c in cards]
    assert ranks == sorted(ranks)


def _draft(rec_id, indicator=Indicator.INFO, orders=False):
    suggestions = (Suggestion(Text("x"), (Action("create", Text("x"), resource={"resourceType": "ServiceRequest"}),)),) if orders else ()
    return CardDraft(rec_id=rec_id, indicator=indicator, summary=Text(rec_id), facts=(), advice=(), suggestions=suggestions)


def test_order_key_ranks_by_what_to_act_on():
    drafts = [_draft("S2"), _draft("E3.2", orders=True), _draft("E8.2", Indicator.WARNING), _draft("E8.6c", Indicator.CRITICAL)]
    assert [d.rec_id for d in sorted(drafts, key=order_key)] == ["E8.6c", "E8.2", "E3.2", "S2"]
    assert [d.rec_id for d in merge(drafts, Hook.ORDER_SELECT)] == ["E8.6c", "E8.2", "E3.2", "S2"]


@pytest.mark.parametrize("demo_client", [date(2026, 11, 23)], indirect=True)
def test_demo_patients_target(demo_client):  # noqa: F811
    counts = {p.id: len(_call(demo_client, p, "patient-view")) for p in PATIENTS}
    assert counts["rpl-demo-unexplained"] <= 3
    assert sum(counts.values()) / len(counts) <= 3, counts
    for patient in PATIENTS:
        for hook in ("patient-view", "order-select", "order-sign"):
            ranks = [rank(c) for c in _call(demo_client, patient, hook)]
            assert ranks == sorted(ranks), (patient.id, hook)


def test_every_card_says_what_it_carries(cds):
    for card in patient_view(cds, losses(2), progesterone_order(status="active")):
        assert carried_ids(card)[0] == card["source"]["topic"]["code"]
        assert card["extension"]["org.rpl-cds.carried-ids"] == carried_ids(card)
