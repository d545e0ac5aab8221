"""E1 - Prognosis (with D1: base the prognosis on obstetric history and age).

NVOG 2022 part E, module 1: base the prognosis on the number of losses and
the woman's age; tools: Lund, Brigham, Kolte & Westergaard.
When: RPL, not pregnant (version 2), within 12 months of the last loss
(cards/timing.py). Then: a counsel card with the estimated chance that the next
pregnancy succeeds for this age and number of losses (Brigham 1999), the
Freya 2016 recurrence figures and the Lund 2012 cumulative live birth rates.

Only the cells of the Brigham table that the catalogue marks as checked are
used; for any other age/loss combination the nearest checked cell is shown,
and the card says which cell that is. On a tie the lower (more cautious)
estimate is taken.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts

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
AGE_ROWS = (20, 25, 30, 35, 40, 45)
LOSS_COLUMNS = (2, 3, 4, 5)


def brigham_estimate(age: int, losses: int) -> tuple[int, int, int, bool]:
    """(chance %, table age, table losses, exact) for the nearest checked cell."""
    row = min(AGE_ROWS, key=lambda a: (abs(a - age), a))
    column = min(max(losses, LOSS_COLUMNS[0]), LOSS_COLUMNS[-1])
    if (row, column) in BRIGHAM_CHECKED and row == age and column == losses:
        return BRIGHAM_CHECKED[(row, column)], row, column, True
    cell = min(
        BRIGHAM_CHECKED,
        key=lambda c: (abs(c[0] - age) / 5 + abs(c[1] - losses), BRIGHAM_CHECKED[c]),
    )
    return BRIGHAM_CHECKED[cell], cell[0], cell[1], False


def e1(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.pregnancy.current:
        return  # the prognosis is for the next pregnancy, counselled before it
    losses = max(facts.losses, 2)
    lines: list[Text] = []
    fact_lines = [loss_fact(facts)]
    age = facts.age_years
    if age is not None:
        fact_lines.append(Text(_("Age: %(age)s years"), {"age": age}))
        chance, table_age, table_losses, exact = brigham_estimate(age, losses)
        summary = Text(_("Estimated chance that the next pregnancy succeeds: about %(chance)s%% (age %(age)s, %(losses)s losses)"),
                       {"chance": chance, "age": age, "losses": losses})
        lines.append(Text(_("Brigham 1999 (unexplained recurrent miscarriage): about %(chance)s%% chance that the next pregnancy succeeds."), {"chance": chance}))
        if not exact:
            lines.append(Text(_("Taken from the nearest checked cell of the table: age %(age)s with %(losses)s losses."),
                              {"age": table_age, "losses": table_losses}))
    else:
        summary = Text(_("Prognosis after recurrent pregnancy loss: most women still have a live birth"))
        lines.append(Text(_("Age unknown: no personal estimate from the Brigham table.")))
    lines += [
        Text(_("Freya 2016: after 2 losses the chance of another miscarriage is about 25%%, after 3 about 35%%; a next pregnancy still ends well in 65-70%%.")),
        Text(_("Lund 2012: 66.7%% have a live birth within 5 years of the first consultation, 71.1%% within 15 years; lower with higher age and more losses.")),
        Text(_("D1: use the medical and family history to tailor the work-up; base the prognosis on obstetric history and age.")),
    ]
    if not facts.unexplained_rpl:
        lines.append(Text(_("These figures come from women with unexplained recurrent miscarriage; a known cause changes the prognosis.")))
    yield CardDraft(rec_id="E1", indicator=Indicator.INFO, summary=summary, facts=tuple(fact_lines), advice=tuple(lines))
