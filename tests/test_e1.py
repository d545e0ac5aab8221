"""E1 prognosis (version 2): the patient's own loss column, checked cells only,
interpolated by age; Brigham only for unexplained RPL; the summary names the basis."""

from __future__ import annotations

import pytest

from cards.e1_prognosis import BRIGHAM_CHECKED, brigham_estimate
from tests.builders import SNOMED, apl_panel, carried_ids, condition, hook_request, losses, miscarriage, prefetch, rpl_diagnosis

TODAY_YEAR = 2026


def e1_card(cds, *resources, age: int, language: str = "en"):
    """The E1 row as shown: its summary (its own card's, or its line in the counselling card that carries it)."""
    birth = f"{TODAY_YEAR - age}-01-01"  # the tests' today is 2026-11-23: she has had this year's birthday
    body = hook_request("patient-view", data=prefetch(*resources, birth=birth))
    card = next(c for c in cds.cards("patient-view", body, language) if "E1" in carried_ids(c))
    if card["source"]["topic"]["code"] == "E1":
        return card
    line = next(x for x in card["detail"].splitlines() if x.startswith("- E1 ("))
    return {**card, "summary": line.split("): ", 1)[1]}


@pytest.mark.parametrize("age,count,chance", [
    (38, 3, 66),  # between the checked 30 (80 %) and 45 (54 %) cells of the 3 column, not the age-45 cell
    (35, 3, 71),  # the 3 column, not the 2-loss 77 %
    (30, 3, 80),  # a checked cell exactly
    (37, 2, 74),  # 77 at 35, 69 at 40: 73.8
    (30, 5, 71),
    (30, 7, 71),  # 5 or more: the 5 column
])
def test_figure_from_her_own_column_between_checked_cells(age, count, chance):
    figure = brigham_estimate(age, count)
    assert figure is not None and figure.chance == chance


@pytest.mark.parametrize("age,count", [
    (30, 4),  # the 4 column has no checked cell
    (35, 5),  # the 5 column is checked at 30 only
    (43, 2),  # the 45 cell of the 2 column is not checked: no extrapolation
    (18, 2),  # below the table
])
def test_no_checked_cell_near_the_age_gives_no_brigham_figure(age, count):
    assert brigham_estimate(age, count) is None


def test_never_a_figure_from_another_column():
    for age in range(18, 50):
        for count in (2, 3, 4, 5, 6):
            figure = brigham_estimate(age, count)
            if figure is not None:
                assert figure.column == min(count, 5)
                assert all((cell, figure.column) in BRIGHAM_CHECKED for cell in figure.cells)


def test_card_38_with_3_losses_names_brigham_and_her_numbers(cds):
    card = e1_card(cds, losses(3), age=38)
    assert card["summary"].startswith("Brigham 1999: about 66% chance")
    assert "at 38 with 3 losses" in card["summary"]
    assert "between the checked cells at 30 and 45 years" in card["detail"]
    assert "54%" not in card["summary"]


def test_card_35_with_3_losses_is_not_the_two_loss_figure(cds):
    card = e1_card(cds, losses(3), age=35)
    assert "about 71%" in card["summary"] and "77" not in card["summary"]


def test_card_in_dutch_names_the_basis(cds):
    card = e1_card(cds, losses(3), age=38, language="nl")
    assert card["summary"].startswith("Brigham 1999: ca. 66%") and "38 jaar en 3 miskramen" in card["summary"]


def test_four_losses_gets_the_freya_range(cds):
    card = e1_card(cds, losses(4), age=32)
    assert "65-70% (Freya)" in card["summary"] and "Brigham 1999: about" not in card["summary"]
    assert "no checked figure near age 32 with 4 losses" in card["detail"]


def test_explained_rpl_gets_no_brigham_figure(cds):
    aps = condition(SNOMED, "26843008", display="Antiphospholipid syndrome")
    card = e1_card(cds, losses(3), aps, age=30)
    assert "(Freya)" in card["summary"]
    assert "No Brigham 1999 figure" in card["detail"]


def test_persistent_apl_is_explained_too(cds):
    card = e1_card(cds, losses(3), *apl_panel("2026-01-05", ("anticardiolipin-igg",)),
                   *apl_panel("2026-05-01", ("anticardiolipin-igg",)), age=30)
    assert "(Freya)" in card["summary"]


def test_an_rpl_diagnosis_without_a_count_is_not_her_own_number(cds):
    card = e1_card(cds, rpl_diagnosis(), age=30)
    assert "(Freya)" in card["summary"]
    assert "number of losses is not recorded" in card["detail"]


def test_distinct_miscarriages_are_her_own_number(cds):
    card = e1_card(cds, miscarriage("2025-01-01"), miscarriage("2025-06-01"), miscarriage("2026-02-01"), age=30)
    assert card["summary"].startswith("Brigham 1999: about 80%")
