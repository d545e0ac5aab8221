"""Whose chart, when, and what is known: which cards are in place at all (catalogue version 2).

Applied to every card a rule returns (cards.rules.evaluate), so that the rules
themselves stay about their recommendation.

Whose chart (definition): the rules are written for the woman. A chart whose
  Patient.gender is 'male' (the partner) gets only the rows about the man's own
  orders: D7 (sperm DNA tests) and E7 (sperm selection, antioxidants). No
  work-up, prognosis, pregnancy or counselling card. Reading: D7 and E7 keep
  their trigger (RPL), which his chart shows as hers would (an RPL diagnosis of
  the couple, a loss count); without it a sperm test is another matter.
Timing (definition): the counselling rows (C, E1 with D1, E5.6, E8.5, S1, S3)
  are in place only within 12 months of the last recorded loss: the latest
  dated loss Condition. When no loss has a date (only a count or an RPL
  diagnosis), they are. E8.5's other half, the warning on high-dose folic acid
  ordered for RPL, is no counselling and keeps its own trigger.
  On the day of an acute loss (a missed miscarriage or an ectopic pregnancy
  recorded today) patient-view shows only what that situation needs, S4 and
  E8.6c, and the work-up suggestions (D3.2, D5.1a, D5.1c, D6; 'D' when they share
  one card). Reading: the order hooks still judge the orders being signed that
  day, since those cards are about the clinician's own order.
  The pregnancy parts of Timing (no preconception card in a pregnancy; S2 before
  the first scan) are in the rules themselves (supplements, supportive_care,
  e1_prognosis), since they change a card's wording, not only whether it shows.
Unknown medications (issue 14, item 8): when an order on record or a draft
  references a Medication nobody could read, what the patient takes is not
  known; the cards that suggest starting a treatment (E3.2, E5.1a/b, E5.6,
  E8.5/S3 counselling, E8.6b) do not come, since she may already take it.
"""

from __future__ import annotations

from datetime import timedelta

from fhir_mappings.conditions import event_date
from fhir_mappings.facts import ConditionFact, PatientFacts

from .model import CardDraft, Hook, Indicator, RuleContext

MALE_CHART_IDS = frozenset({"D7", "E7"})
COUNSELLING_IDS = frozenset({"C", "E1", "D1", "E5.6", "E8.5", "S1", "S3"})
COUNSELLING_WINDOW = timedelta(days=365)  # "within 12 months of the last recorded loss"
ACUTE_LOSS_IDS = frozenset({"S4", "E8.6c", "D", "D3.2", "D5.1a", "D5.1c", "D6"})
ACUTE_LOSS_CONCEPTS = ("missed-miscarriage", "ectopic-pregnancy")
STARTS_TREATMENT_IDS = frozenset({"E3.2", "E5.1a", "E5.1b", "E5.6", "E8.5", "S3", "E8.6b"})


def within_counselling_window(facts: PatientFacts) -> bool:
    """Within 12 months of the last dated loss, or no loss with a date on record."""
    loss = facts.last_loss
    return loss is None or facts.today - event_date(loss) <= COUNSELLING_WINDOW


def acute_loss_today(facts: PatientFacts) -> ConditionFact | None:
    """An active missed miscarriage or ectopic pregnancy dated today."""
    for condition in facts.conditions:
        if condition.concept in ACUTE_LOSS_CONCEPTS and condition.active and event_date(condition) == facts.today:
            return condition
    return None


def in_place(draft: CardDraft, facts: PatientFacts, ctx: RuleContext) -> bool:
    """Whether a card a rule made belongs on this chart at this moment."""
    if facts.male_chart:
        return draft.rec_id in MALE_CHART_IDS
    if ctx.hook is Hook.PATIENT_VIEW and draft.rec_id not in ACUTE_LOSS_IDS and acute_loss_today(facts) is not None:
        return False
    if draft.indicator is Indicator.INFO and draft.rec_id in STARTS_TREATMENT_IDS and facts.unresolved_medications:
        return False
    if draft.rec_id in COUNSELLING_IDS and draft.indicator is Indicator.INFO:
        return within_counselling_window(facts)
    return True
