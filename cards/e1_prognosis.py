"""E1 - Prognosis (with D1: base the prognosis on obstetric history and age).

NVOG 2022 part E, module 1: base the prognosis on the number of losses and
the woman's age; tools: Lund, Brigham, Kolte & Westergaard.
When: RPL, not pregnant (version 2), within 12 months of the last loss
(cards/timing.py). Then: a counsel card with an estimate of the chance that the next
pregnancy succeeds, whose summary names what the figure is.

Version 2 of the catalogue, "E1 prognosis figures":
- the Brigham 1999 figure only for **unexplained** RPL (the study's
  population: 325 women with idiopathic recurrent miscarriage);
- only from the column of the patient's **own** number of losses (5 or more
  use the 5 column), never from another loss count;
- only from **checked** cells of that column, interpolated linearly by age
  between the two checked cells around her age;
- where her age is not between two checked cells of the column (or exactly
  on one), the Freya 2016 range (65-70 %) instead.

Cells marked ``*`` in the catalogue were searched for on 2026-12-02 (the
``search`` tool, pages and code corpora): secondary sources (miscarriagemd.com
on Brigham 1999; GPnotebook "recurrent miscarriage") confirm only the cells
already marked checked (2 losses at 20/25/30/35/40; 3 losses at 20, 30, 45;
5 losses at 30). No source gave the starred cells, so they are not used.

Reading of "near": a checked cell is near when the age lies between two
checked cells of the column (interpolation) or equals a checked cell's age.
No extrapolation beyond the column's checked ages: at 43 with 2 losses the
45 cell is unverified, and holding the 40 figure would overstate the chance.
With this table: 38 with 3 losses -> 80 + (54 - 80) * 8/15 = 66 %; 35 with
3 losses -> 71 %; any age with 4 losses -> Freya (no checked cell).

The loss count must be a number from the record (obstetric history or
distinct miscarriages): "RPL diagnosis, at least 2" is not her own number,
so it gets the Freya range too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fhir_mappings.facts import LossCountSource, PatientFacts

from .common import loss_fact
from .i18n import Text, _
from .model import CardDraft, Indicator, RuleContext

IDS = ("E1", "D1")

# Brigham, Conlon & Farquharson, Hum Reprod 1999;14:2868: chance (%) that the next
# pregnancy succeeds, by age and previous miscarriages; checked cells only.
BRIGHAM_CHECKED: dict[tuple[int, int], int] = {
    (20, 2): 92, (20, 3): 90,
    (25, 2): 89,
    (30, 2): 84, (30, 3): 80, (30, 5): 71,
    (35, 2): 77,
    (40, 2): 69,
    (45, 3): 54,
}
LOSS_COLUMNS = (2, 3, 4, 5)  # 5 stands for "5 or more"
FREYA_RANGE = (65, 70)


@dataclass(frozen=True)
class BrighamFigure:
    chance: int  # %, rounded
    column: int  # the loss column used (the patient's own count; 5 for 5 or more)
    cells: tuple[int, ...]  # ages of the checked cells the figure comes from (one: exact, two: interpolated)


def brigham_column(losses: int) -> int | None:
    if losses < LOSS_COLUMNS[0]:
        return None
    return min(losses, LOSS_COLUMNS[-1])


def brigham_estimate(age: int, losses: int) -> BrighamFigure | None:
    """The Brigham figure for this age and loss count from checked cells, or None (use Freya)."""
    column = brigham_column(losses)
    if column is None:
        return None
    ages = sorted(a for (a, c) in BRIGHAM_CHECKED if c == column)
    if age in ages:
        return BrighamFigure(BRIGHAM_CHECKED[(age, column)], column, (age,))
    below = [a for a in ages if a < age]
    above = [a for a in ages if a > age]
    if not below or not above:
        return None
    low, high = below[-1], above[0]
    low_value, high_value = BRIGHAM_CHECKED[(low, column)], BRIGHAM_CHECKED[(high, column)]
    chance = low_value + (high_value - low_value) * (age - low) / (high - low)
    # Round half down: of two equally near whole numbers, the more cautious one.
    rounded = int(chance) if chance - int(chance) <= 0.5 else int(chance) + 1
    return BrighamFigure(rounded, column, (low, high))


def _own_loss_count(facts: PatientFacts) -> int | None:
    """The patient's own number of losses, when the record gives one."""
    loss = facts.loss_count
    if loss is None or loss.provenance is LossCountSource.RPL_DIAGNOSIS:
        return None
    return loss.count


def e1(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.pregnancy.current:
        return  # the prognosis is for the next pregnancy, counselled before it
    fact_lines = [loss_fact(facts)]
    age = facts.age_years
    if age is not None:
        fact_lines.append(Text(_("Age: %(age)s years"), {"age": age}))
    losses = _own_loss_count(facts)
    figure = None
    lines: list[Text] = []
    if not facts.unexplained_rpl:
        lines.append(Text(_("No Brigham 1999 figure: it comes from women with unexplained recurrent miscarriage, and a known cause (APS, thyroid, chromosomal) changes the prognosis.")))
    elif age is None:
        lines.append(Text(_("Age unknown: no personal estimate from the Brigham table.")))
    elif losses is None:
        lines.append(Text(_("The number of losses is not recorded: no personal estimate from the Brigham table.")))
    else:
        figure = brigham_estimate(age, losses)
        if figure is None:
            lines.append(Text(_("The Brigham 1999 table has no checked figure near age %(age)s with %(losses)s losses; the Freya range is given instead."),
                              {"age": age, "losses": losses}))
    if figure is not None:
        params = {"chance": figure.chance, "age": age, "losses": losses}
        if figure.column == LOSS_COLUMNS[-1] and losses > figure.column:
            summary = Text(_("Brigham 1999: about %(chance)s%% chance that the next pregnancy succeeds at %(age)s with 5 or more losses"), params)
        else:
            summary = Text(_("Brigham 1999: about %(chance)s%% chance that the next pregnancy succeeds at %(age)s with %(losses)s losses"), params)
        # The figure itself is the summary (and the line that names E1 in a merged card).
        if len(figure.cells) == 2:
            lines.append(Text(_("Interpolated by age between the checked cells at %(low)s and %(high)s years in the column of %(column)s losses."),
                              {"low": figure.cells[0], "high": figure.cells[1], "column": figure.column}))
    else:
        summary = Text(_("Prognosis after recurrent pregnancy loss: a next pregnancy still ends well in 65-70%% (Freya)"))
    lines += [
        Text(_("Freya 2016: after 2 losses the chance of another miscarriage is about 25%%, after 3 about 35%%; a next pregnancy still ends well in 65-70%%.")),
        Text(_("Lund 2012: 66.7%% have a live birth within 5 years of the first consultation, 71.1%% within 15 years; lower with higher age and more losses.")),
        Text(_("D1: use the medical and family history to tailor the work-up; base the prognosis on obstetric history and age.")),
    ]
    short = (Text(_("prognosis about %(chance)s%% (Brigham 1999)"), {"chance": figure.chance}) if figure is not None
             else Text(_("prognosis 65-70%% (Freya)")))
    yield CardDraft(rec_id="E1", indicator=Indicator.INFO, summary=summary, facts=tuple(fact_lines), advice=tuple(lines),
                    short=short, carried_ids=IDS)
