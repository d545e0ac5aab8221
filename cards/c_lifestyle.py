"""C - Risk factors and healthy behaviour: one lifestyle card (topic "C").

The catalogue allows C1.1-C2.6 to share one card; the male partner's
lifestyle (D7, E7) joins it. When: RPL. Then: a counsel card whose detail
lists each point with its module number; personalised lines first: current
smoker (C2.1, stronger wording), BMI outside 18.5-25 (C2.2), age 40 or over
(C1.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fhir_mappings.facts import PatientFacts

from .common import lab_value, loss_fact, when
from .i18n import Text, _
from .model import CardDraft, Indicator, RuleContext

IDS = ("C", "C1.1", "C1.2", "C1.3", "C2.1", "C2.2", "C2.3", "C2.4", "C2.5", "C2.6")
# The card also carries the partner's lifestyle of D7 and E7 (its last line starts with them).
CARRIED = (*IDS, "D7", "E7")
HEALTHY_BMI = (18.5, 25.0)
LOW_RISK_AGE = (20, 35)
HIGH_RISK_AGE = 40

POINTS = (
    _("C1.1 Age: the risk of miscarriage is lowest between 20 and 35 and rises quickly from 40."),
    _("C1.2 Stress is associated with recurrent pregnancy loss, but there is no evidence that it causes it."),
    _("C1.3 Avoid exposure to pesticides, heavy metals and similar agents at work or at home; make sure an occupational physician is available."),
    _("C2.1 Advise both partners to stop smoking."),
    _("C2.2 Aim for a healthy body weight."),
    _("C2.3 In pregnancy, at most 200 mg caffeine a day."),
    _("C2.4 Physical activity is good for overall health; its effect on the chance of a live birth is unknown."),
    _("C2.5 Limit alcohol before conception; no alcohol in pregnancy."),
    _("C2.6 No (soft) drugs before conception or in pregnancy; refer to specialist mental-health care when needed."),
    _("D7/E7 Male partner: stop smoking, healthy weight, limit alcohol, normal physical activity."),
)


PERSONAL_DATA_VALID = timedelta(days=365)


def _recent(facts: PatientFacts, fact):
    """A smoking status or BMI counts for the personal lines only when from the last 12 months."""
    if fact is None or fact.date is None or facts.today - fact.date > PERSONAL_DATA_VALID:
        return None
    return fact


def _age_band(age: int) -> Text:
    """C1.1: the patient's age band against the risk curve (lowest 20-35, rising fast from 40)."""
    if age >= HIGH_RISK_AGE:
        return Text(_("C1.1 At %(age)s the risk of a new miscarriage is higher: it rises quickly from 40."), {"age": age})
    if age > LOW_RISK_AGE[1]:
        return Text(_("C1.1 At %(age)s she is past the age band of lowest risk (20-35); the risk rises quickly from 40."), {"age": age})
    if age >= LOW_RISK_AGE[0]:
        return Text(_("C1.1 At %(age)s she is in the age band with the lowest risk of miscarriage (20-35)."), {"age": age})
    return Text(_("C1.1 At %(age)s she is below the age band with the lowest risk of miscarriage (20-35)."), {"age": age})


def c_lifestyle(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl:
        return
    personal: list[Text] = []
    fact_lines: list[Text] = [loss_fact(facts)]
    smoker = _recent(facts, facts.smoking_current)
    if smoker is not None:
        personal.append(Text(_("C2.1 She smokes: advise her and her partner firmly to stop, and offer support to quit.")))
        fact_lines.append(Text(_("Smoking status: %(status)s on %(date)s (%(source)s)"), {
            # The record's display (a SNOMED CT term in English) is not shown: the rule knows what it means.
            "status": Text(_("current smoker")), "date": when(smoker.date), "source": smoker.source}))
    bmi = _recent(facts, facts.bmi)
    if bmi is not None and bmi.value is not None and not (HEALTHY_BMI[0] <= bmi.value <= HEALTHY_BMI[1]):
        personal.append(Text(_("C2.2 BMI %(bmi)s is outside 18.5-25: discuss reaching a healthy weight."), {"bmi": float(bmi.value)}))
        fact_lines.append(Text(_("BMI: %(value)s on %(date)s (%(source)s)"), {
            "value": lab_value(bmi), "date": when(bmi.date), "source": bmi.source}))
    age = facts.age_years
    if age is not None:
        fact_lines.append(Text(_("Age: %(age)s years"), {"age": age}))
        personal.append(_age_band(age))
    summary = (
        Text(_("Recurrent pregnancy loss: advise both partners to stop smoking, and discuss healthy behaviour"))
        if smoker is not None
        else Text(_("Recurrent pregnancy loss: discuss healthy behaviour with both partners"))
    )
    yield CardDraft(
        rec_id="C",
        indicator=Indicator.INFO,
        summary=summary,
        facts=tuple(fact_lines),
        advice=tuple(Text(p) for p in POINTS),
        personal=tuple(personal),
        short=Text(_("stop smoking")) if smoker is not None else Text(_("healthy behaviour")),
        carried_ids=CARRIED,
    )
