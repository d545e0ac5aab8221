"""Supplements before conception: folic acid (E8.5 counsel, S3) and vitamin D (E5.6).

E8.5 (NVOG 2022 part E, module 8.5): folic acid 0.4-0.5 mg a day before
  conception to prevent neural-tube defects, not as a treatment for RPL.
  When (version 2, definition "Timing"): RPL, not on folic acid, and
  - not pregnant -> counsel before conception;
  - pregnant under 12 weeks, not ectopic, no sign of a non-viable pregnancy
    (E8.6c findings) -> "continue folic acid until 12 weeks";
  - pregnant from 12 weeks, at an unknown gestational age, or in an ectopic or
    non-viable pregnancy -> no card.
  Within 12 months of the last loss only (cards/timing.py).
  (Its warning half, high-dose folic acid ordered for RPL, is a row of the
  discouraged-order table.)
S3 (AZ Turnhout 2024, Freya 2016): folic acid 0.4 mg a day for every woman who
  wants to conceive. The catalogue lets S3 join E8.5: with RPL the E8.5 card
  carries it; after a single miscarriage the card's topic is S3.
E5.6 (NVOG 2022 part E, module 5.6): advise vitamin D before conception, as for
  all pregnant women. When: RPL, not pregnant (version 2: a preconception card
  stays away in a pregnancy), no vitamin D on record -> counsel; within 12
  months of the last loss only (cards/timing.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts

from .common import loss_fact
from .i18n import Text, _
from .model import CardDraft, Indicator, RuleContext

FOLIC_ACID_UNTIL_DAYS = 12 * 7


def folic_acid(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if facts.losses < 1 and not facts.has_rpl:
        return
    if facts.has_order("folic-acid") is not None:
        return
    rec_id = "E8.5" if facts.has_rpl else "S3"
    pregnancy = facts.pregnancy
    not_a_cure = Text(_("It does not prevent miscarriage and is no treatment for recurrent pregnancy loss."))
    carried = ("E8.5", "S3") if rec_id == "E8.5" else ()  # with RPL the E8.5 card carries S3
    if not pregnancy.current:
        yield CardDraft(
            rec_id=rec_id,
            carried_ids=carried,
            indicator=Indicator.INFO,
            summary=Text(_("Advise folic acid 0.4 mg a day when trying to conceive")),
            facts=(loss_fact(facts), Text(_("No folic acid on record"))),
            advice=(
                Text(_("Folic acid 0.4-0.5 mg a day from before conception until 12 weeks prevents neural-tube defects.")),
                not_a_cure,
            ),
        )
        return
    ga = pregnancy.gestational_age_days
    if not pregnancy.ongoing or pregnancy.contraindications or ga is None or ga >= FOLIC_ACID_UNTIL_DAYS:
        return  # from 12 weeks (or unknown) it no longer serves its purpose; none in a lost pregnancy
    yield CardDraft(
        rec_id=rec_id,
        carried_ids=carried,
        indicator=Indicator.INFO,
        summary=Text(_("Pregnant at %(ga)s weeks: folic acid 0.4 mg a day until 12 weeks"), {"ga": pregnancy.gestational_age_text}),
        facts=(
            loss_fact(facts),
            Text(_("Gestational age today: %(ga)s weeks (%(source)s)"), {"ga": pregnancy.gestational_age_text, "source": pregnancy.gestational_age_source}),
            Text(_("No folic acid on record")),
        ),
        advice=(
            Text(_("Continue (or start) folic acid 0.4-0.5 mg a day until 12 weeks of pregnancy: it prevents neural-tube defects.")),
            not_a_cure,
        ),
    )


def e5_6(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.pregnancy.current or facts.has_order("vitamin-d") is not None:
        return
    yield CardDraft(
        rec_id="E5.6",
        indicator=Indicator.INFO,
        summary=Text(_("Advise vitamin D supplementation before conception")),
        facts=(loss_fact(facts), Text(_("No vitamin D supplement on record"))),
        advice=(Text(_("Advise vitamin D supplementation before conception, as for every woman who wants to become pregnant.")),),
    )
