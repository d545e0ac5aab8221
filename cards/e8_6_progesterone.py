"""E8.6 - Progesterone in RPL (NVOG 2022 part E, module 8.6).

E8.6a: do not prescribe progesterone to women with RPL to prevent a new
  miscarriage. When: a progesterone order (selected on order-select, any draft
  on order-sign, active on patient-view) in RPL, unless E8.6b applies.
  Then: warning, suggestion removing the draft, override reasons.
E8.6b: progesterone 400 mg vaginally twice daily for a woman in a new
  pregnancy with >= 3 previous miscarriages, bleeding before 12 weeks and an
  intra-uterine pregnancy; continue to 16 weeks. When: all four facts are
  recorded, gestational age is under 16 weeks, no E8.6c finding. Then, on
  patient-view when no progesterone is ordered: a suggestion card with the
  MedicationRequest. On order-select/order-sign a progesterone draft in that
  situation gets no warning; when its dose or route differs from the endorsed
  one, an info card offers to replace it (delete + create in one suggestion).
E8.6c: never start progesterone with CRL > 7 mm without heart activity, a
  gestational sac > 25 mm without fetal parts, an ectopic pregnancy or a
  life-threatening bleeding. When: a progesterone order and any such finding
  (whether or not RPL is recorded). Then: critical card; E8.6a is not shown
  for the same order, the critical card says more.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fhir_mappings.facts import Finding, OrderFact, PatientFacts

from .common import loss_fact, order_fact, orders_to_check, override, remove_draft, when
from .i18n import Text, _
from .model import Action, CardDraft, Hook, Indicator, RuleContext, Suggestion
from .orders import order_description

PROGESTERONE = "progesterone"
MIN_LOSSES = 3
BLEEDING_BEFORE_DAYS = 12 * 7
CONTINUE_UNTIL_DAYS = 16 * 7

CONTRAINDICATION_TEXT = {
    "crl-without-heart-activity": _("crown-rump length above 7 mm without heart activity"),
    "sac-without-embryo": _("gestational sac above 25 mm without fetal parts"),
    "ectopic-pregnancy": _("ectopic pregnancy"),
    "life-threatening-bleeding": _("life-threatening bleeding"),
    "non-viable-pregnancy": _("non-viable pregnancy (missed miscarriage)"),
}


def endorsed(facts: PatientFacts) -> bool:
    """The four facts of E8.6b, within the treatment window, without E8.6c findings."""
    pregnancy = facts.pregnancy
    return (
        pregnancy.current
        and facts.losses >= MIN_LOSSES
        and pregnancy.bleeding_before_12_weeks
        and pregnancy.intrauterine_confirmed
        and pregnancy.gestational_age_days is not None
        and pregnancy.gestational_age_days < CONTINUE_UNTIL_DAYS
        and not pregnancy.contraindications
    )


def _pregnancy_facts(facts: PatientFacts) -> list[Text]:
    p = facts.pregnancy
    lines = [
        loss_fact(facts),
        Text(_("Current pregnancy (%(sources)s)"), {"sources": ", ".join(p.sources)}),
    ]
    if p.gestational_age_text:
        lines.append(Text(_("Gestational age today: %(ga)s weeks (%(source)s)"), {"ga": p.gestational_age_text, "source": p.gestational_age_source}))
    if p.bleeding_before_12_weeks:
        lines.append(Text(_("Bleeding before 12 weeks (%(source)s)"), {"source": p.bleeding_source}))
    if p.intrauterine_confirmed:
        lines.append(Text(_("Intra-uterine pregnancy confirmed (%(source)s)"), {"source": p.intrauterine_source}))
    return lines


VAGINAL = "16857009"  # SNOMED CT: vaginal route
ENDORSED_DAILY_MG = 800  # 400 mg twice daily


def _endorsed_order(facts: PatientFacts, ctx: RuleContext) -> tuple[dict, Text]:
    ga_days = facts.pregnancy.gestational_age_days
    until = facts.today + timedelta(days=CONTINUE_UNTIL_DAYS - ga_days)  # the day she reaches 16 weeks
    order = ctx.orders.medication_order("progesterone-vaginal", until=until)
    return order.resource, order_description(order)


def _as_endorsed(order: OrderFact) -> bool:
    return order.daily_dose_mg == ENDORSED_DAILY_MG and VAGINAL in order.routes


def e8_6b(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    """Patient-view: suggest the endorsed prescription when none is on record.
    Order hooks: a progesterone draft in the endorsed situation gets no warning;
    when its dose or route differs from the endorsed one, the card offers to
    replace it."""
    if not endorsed(facts):
        return
    if ctx.hook is Hook.PATIENT_VIEW:
        if facts.has_order(PROGESTERONE) is not None:
            return
        drafts_to_replace: list[OrderFact] = []
    else:
        drafts_to_replace = [o for o in orders_to_check(facts, ctx, (PROGESTERONE,)) if not _as_endorsed(o)]
        if not drafts_to_replace:
            return
    order, dose_text = _endorsed_order(facts, ctx)
    if drafts_to_replace:
        suggestions = tuple(
            remove_draft(o, replacement=order, replacement_label=dose_text) for o in drafts_to_replace
        )
        facts_used = (*(order_fact(o) for o in drafts_to_replace),
                      Text(_("The draft's dose or route differs from the endorsed 400 mg vaginally twice daily")),
                      *_pregnancy_facts(facts))
    else:
        suggestions = (
            Suggestion(
                Text(_("Prescribe progesterone 400 mg vaginally twice daily until 16 weeks")),
                (Action("create", dose_text, resource=order),),
                recommended=True,
            ),
        )
        facts_used = tuple(_pregnancy_facts(facts))
    yield CardDraft(
        rec_id="E8.6b",
        indicator=Indicator.INFO,
        summary=Text(_("Bleeding before 12 weeks after 3 or more miscarriages: start vaginal progesterone 400 mg twice daily")),
        facts=facts_used,
        advice=(
            Text(_("In a new intra-uterine pregnancy with bleeding before 12 weeks and three or more previous miscarriages, prescribe progesterone 400 mg vaginally twice daily and continue until 16 weeks.")),
        ),
        suggestions=suggestions,
        selection_behavior="any",
    )


def _contraindication_fact(finding: Finding) -> Text:
    return Text(
        _("%(finding)s%(value)s on %(date)s (%(source)s)"),
        {
            "finding": Text(CONTRAINDICATION_TEXT[finding.what]),
            "value": f" ({finding.value})" if finding.value else "",
            "date": when(finding.date),
            "source": finding.source,
        },
    )


def e8_6_orders(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    """E8.6c (critical) or E8.6a (warning) for progesterone orders; nothing when E8.6b endorses them."""
    orders = orders_to_check(facts, ctx, (PROGESTERONE,))
    if not orders:
        return
    contraindications = facts.pregnancy.contraindications
    if contraindications:
        yield CardDraft(
            rec_id="E8.6c",
            indicator=Indicator.CRITICAL,
            summary=Text(_("Do not start progesterone: %(finding)s"), {"finding": Text(CONTRAINDICATION_TEXT[contraindications[0].what])}),
            facts=(*(order_fact(o) for o in orders), *(_contraindication_fact(f) for f in contraindications)),
            advice=(
                Text(_("Never start progesterone with a crown-rump length above 7 mm without heart activity, a gestational sac above 25 mm without fetal parts, an ectopic pregnancy or a life-threatening bleeding.")),
            ),
            suggestions=tuple(s for o in orders if (s := remove_draft(o)) is not None),
            selection_behavior="any",
            override_reasons=(
                override("finding-outdated", _("Finding no longer current (new ultrasound)")),
                override("finding-incorrect", _("Finding recorded in error")),
            ),
        )
        return
    if not facts.has_rpl or endorsed(facts):
        return
    yield CardDraft(
        rec_id="E8.6a",
        indicator=Indicator.WARNING,
        summary=Text(_("Progesterone does not prevent a new miscarriage in recurrent pregnancy loss")),
        facts=(*(order_fact(o) for o in orders), loss_fact(facts)),
        advice=(
            Text(_("Do not prescribe progesterone to prevent miscarriage in women with recurrent pregnancy loss.")),
            Text(_("Exception (E8.6b): a new intra-uterine pregnancy with bleeding before 12 weeks after three or more miscarriages; the record does not show all of these.")),
        ),
        suggestions=tuple(s for o in orders if (s := remove_draft(o)) is not None),
        selection_behavior="any",
        override_reasons=(
            override("e8-6b-applies", _("Bleeding before 12 weeks in an intra-uterine pregnancy after 3 or more miscarriages")),
            override("other-indication", _("Prescribed for another indication")),
        ),
    )
