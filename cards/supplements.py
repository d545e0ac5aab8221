"""Supplements before conception: folic acid (E8.5 counsel, S3) and vitamin D (E5.6).

E8.5 (NVOG 2022 part E, module 8.5): folic acid 0.4-0.5 mg a day before
  conception to prevent neural-tube defects, not as a treatment for RPL.
  When: RPL, not on folic acid, not pregnant beyond 12 weeks -> counsel.
  (Its warning half, high-dose folic acid ordered for RPL, is a row of the
  discouraged-order table.)
S3 (AZ Turnhout 2024, Freya 2016): folic acid 0.4 mg a day for every woman who
  wants to conceive. The catalogue lets S3 join E8.5: with RPL the E8.5 card
  carries it; after a single miscarriage the card's topic is S3.
E5.6 (NVOG 2022 part E, module 5.6): advise vitamin D before conception, as for
  all pregnant women. When: RPL and no vitamin D on record -> counsel.
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
    ga = facts.pregnancy.gestational_age_days
    if facts.pregnancy.current and (ga is None or ga >= FOLIC_ACID_UNTIL_DAYS):
        return  # beyond 12 weeks (or unknown) folic acid no longer serves its purpose
    rec_id = "E8.5" if facts.has_rpl else "S3"
    yield CardDraft(
        rec_id=rec_id,
        carried_ids=("E8.5", "S3") if rec_id == "E8.5" else (),  # with RPL the E8.5 card carries S3
        indicator=Indicator.INFO,
        summary=Text(_("Advise folic acid 0.4 mg a day when trying to conceive")),
        facts=(loss_fact(facts), Text(_("No folic acid on record"))),
        advice=(
            Text(_("Folic acid 0.4-0.5 mg a day from before conception until 12 weeks prevents neural-tube defects.")),
            Text(_("It does not prevent miscarriage and is no treatment for recurrent pregnancy loss.")),
        ),
    )


def e5_6(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.has_order("vitamin-d") is not None:
        return
    yield CardDraft(
        rec_id="E5.6",
        indicator=Indicator.INFO,
        summary=Text(_("Advise vitamin D supplementation before conception")),
        facts=(loss_fact(facts), Text(_("No vitamin D supplement on record"))),
        advice=(Text(_("Advise vitamin D supplementation before conception, as for every woman who wants to become pregnant.")),),
    )
