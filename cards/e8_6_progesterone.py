"""E8.6 - Progesterone in RPL (NVOG 2022 part E, module 8.6), catalogue version 2.

Which orders: a progesterone order selected on order-select, any progesterone
draft on order-sign, progesterone active on record on patient-view. E8.6a and
E8.6b leave alone an order that names another indication (luteal support in
assisted reproduction: catalogue "Order indication"); an order without reason
is judged as an RPL order. E8.6c judges every progesterone, whatever its reason.

E8.6a: do not prescribe progesterone to prevent a new miscarriage in RPL.
  When: such an order in RPL, unless E8.6b applies or the course is complete
  (below). Then: warning that names the E8.6b facts the record does not show
  (fewer than 3 losses, no bleeding before 12 weeks / not in the last 14 days,
  no intra-uterine pregnancy on record, 12 or 16 weeks or more), suggestion
  removing the draft, override reasons.
E8.6b: progesterone 400 mg vaginally twice daily for a woman in a new pregnancy
  with >= 3 previous miscarriages, bleeding before 12 weeks and an intra-uterine
  pregnancy; continue to 16 weeks. When (version 2): those facts, the bleeding
  began in this pregnancy before 12 weeks and within the last 14 days, the
  pregnancy is under 16 weeks, no E8.6c finding. Then:
  - patient-view, no progesterone on record: suggest the MedicationRequest; the
    card shows the bleeding date and the gestational age;
  - patient-view, progesterone active at another dose or route (known to
    differ; an unstructured dose is not judged): info card whose suggestion
    stops the running MedicationRequest (update to 'stopped') and creates the
    endorsed one;
  - order hooks: a draft at another dose or route is replaced (delete + create);
    no warning.
  Course complete: progesterone active (or ordered again) at 16 weeks or later
  after an E8.6b course (>= 3 losses, a bleeding of this pregnancy before 12
  weeks, intra-uterine pregnancy): counsel "course complete: stop progesterone",
  never the E8.6a warning. Under 16 weeks, progesterone already running in such
  a pregnancy is a course that continues: no E8.6a, also when the bleeding is
  more than 14 days ago (the window is about starting it).
E8.6c: never start progesterone with CRL > 7 mm without heart activity, a
  gestational sac > 25 mm without fetal parts, an ectopic pregnancy or a
  life-threatening bleeding. When: a progesterone order or active progesterone
  and any such finding (whether or not RPL is recorded). Then: critical card.
  For a draft: "do not start", suggestion removing it. Version 2, for progesterone
  already running: "stop progesterone"; an active MedicationRequest gets a
  suggestion whose update action sets its status to 'stopped'; a
  MedicationStatement gets the instruction in the card, no action.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fhir_mappings.facts import Finding, OrderFact, PatientFacts

from .common import (
    indication_overrides, loss_fact, names_other_indication, order_fact, orders_to_check, override, remove_draft, when,
)
from .i18n import Text, _
from .model import Action, CardDraft, Hook, Indicator, RuleContext, Suggestion
from .orders import order_description

PROGESTERONE = "progesterone"
MIN_LOSSES = 3
BLEEDING_BEFORE_DAYS = 12 * 7
CONTINUE_UNTIL_DAYS = 16 * 7
RECENT_BLEEDING_DAYS = 14

CONTRAINDICATION_TEXT = {
    "crl-without-heart-activity": _("crown-rump length above 7 mm without heart activity"),
    "sac-without-embryo": _("gestational sac above 25 mm without fetal parts"),
    "ectopic-pregnancy": _("ectopic pregnancy"),
    "life-threatening-bleeding": _("life-threatening bleeding"),
    "non-viable-pregnancy": _("non-viable pregnancy (missed miscarriage)"),
}


def _recent_bleeding(facts: PatientFacts) -> bool:
    day = facts.pregnancy.bleeding_date
    return day is not None and 0 <= (facts.today - day).days <= RECENT_BLEEDING_DAYS


def missing_facts(facts: PatientFacts) -> list[Text]:
    """The E8.6b facts the record does not show; empty when all of them are there."""
    p = facts.pregnancy
    missing: list[Text] = []
    if not p.current:
        missing.append(Text(_("no current pregnancy on record")))
    if facts.losses < MIN_LOSSES:
        missing.append(Text(_("fewer than 3 miscarriages (%(count)s on record)"), {"count": facts.losses}))
    if not p.current:
        return missing
    ga = p.gestational_age_days
    if ga is None:
        missing.append(Text(_("gestational age unknown")))
    elif ga >= CONTINUE_UNTIL_DAYS:
        missing.append(Text(_("16 weeks or more")))
    if not p.bleeding_before_12_weeks:
        if ga is not None and ga >= BLEEDING_BEFORE_DAYS:
            missing.append(Text(_("12 weeks or more, without a bleeding before 12 weeks")))
        else:
            missing.append(Text(_("no bleeding in this pregnancy")))
    elif not _recent_bleeding(facts):
        missing.append(Text(_("no bleeding in the last 14 days")))
    if not p.intrauterine_confirmed:
        missing.append(Text(_("no intra-uterine pregnancy on record")))
    return missing


def endorsed(facts: PatientFacts) -> bool:
    """E8.6b applies: its facts, within the treatment window, without E8.6c findings."""
    return facts.pregnancy.current and not facts.pregnancy.contraindications and not missing_facts(facts)


def _e8_6b_pregnancy(facts: PatientFacts) -> bool:
    """A pregnancy in which E8.6b applied at some time: >= 3 losses, a bleeding of this
    pregnancy before 12 weeks (not necessarily recent), intra-uterine, no E8.6c finding."""
    p = facts.pregnancy
    return (
        p.current
        and not p.contraindications
        and facts.losses >= MIN_LOSSES
        and p.bleeding_before_12_weeks
        and p.intrauterine_confirmed
        and p.gestational_age_days is not None
    )


def course_complete(facts: PatientFacts) -> bool:
    """16 weeks or later in a pregnancy in which E8.6b applied: the course has ended."""
    return _e8_6b_pregnancy(facts) and facts.pregnancy.gestational_age_days >= CONTINUE_UNTIL_DAYS


def course_running(facts: PatientFacts) -> bool:
    """Progesterone already running, under 16 weeks, in a pregnancy in which E8.6b applied:
    the course continues to 16 weeks even when the bleeding is more than 14 days ago
    (reading: the 14-day window is about starting, not about continuing)."""
    return (
        _e8_6b_pregnancy(facts)
        and facts.pregnancy.gestational_age_days < CONTINUE_UNTIL_DAYS
        and any(
            PROGESTERONE in o.classes and o.status == "active" and not names_other_indication(o)
            for o in facts.orders
        )
    )


def _ga_text(days: int) -> str:
    return f"{days // 7}+{days % 7}"


def _pregnancy_facts(facts: PatientFacts) -> list[Text]:
    p = facts.pregnancy
    if not p.current:
        return [loss_fact(facts)]
    lines = [
        loss_fact(facts),
        Text(_("Current pregnancy (%(sources)s)"), {"sources": ", ".join(p.sources)}),
    ]
    if p.gestational_age_text:
        lines.append(Text(_("Gestational age today: %(ga)s weeks (%(source)s)"), {"ga": p.gestational_age_text, "source": p.gestational_age_source}))
    if p.bleeding_before_12_weeks and p.bleeding_date is not None:
        lines.append(Text(_("Bleeding began on %(date)s, at %(ga)s weeks (%(source)s)"),
                          {"date": when(p.bleeding_date), "ga": _ga_text(p.bleeding_ga_days), "source": p.bleeding_source}))
    elif p.bleeding_before_12_weeks:
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


def _known_to_differ(order: OrderFact) -> bool:
    """A running progesterone whose structured dose or route is not the endorsed one."""
    return (order.daily_dose_mg is not None and order.daily_dose_mg != ENDORSED_DAILY_MG) or (
        bool(order.routes) and VAGINAL not in order.routes
    )


def _stop_action(order: OrderFact, why: Text) -> Action | None:
    """An update that sets an active MedicationRequest on record to 'stopped'."""
    if order.resource is None or order.draft:
        return None
    stopped = {**order.resource, "status": "stopped", "statusReason": {"text": why}}
    return Action("update", Text(_("Stop %(order)s (%(ref)s)"), {"order": order.display, "ref": order.reference}),
                  resource=stopped)


def _rpl_orders(facts: PatientFacts, ctx: RuleContext) -> list[OrderFact]:
    return [o for o in orders_to_check(facts, ctx, (PROGESTERONE,)) if not names_other_indication(o)]


def e8_6b(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if course_complete(facts):
        yield from _course_complete(facts, ctx)
        return
    if not endorsed(facts):
        return
    judged = _rpl_orders(facts, ctx)
    order, dose_text = _endorsed_order(facts, ctx)
    summary = Text(_("Bleeding before 12 weeks after 3 or more miscarriages: start vaginal progesterone 400 mg twice daily"))
    if ctx.hook is Hook.PATIENT_VIEW and judged:
        yield from _running_at_another_dose(facts, judged, order, dose_text)
        return
    if ctx.hook is Hook.PATIENT_VIEW:
        if facts.has_order(PROGESTERONE) is not None:
            return  # ordered already (a draft, on hold, or for another indication)
        suggestions: tuple[Suggestion, ...] = (
            Suggestion(
                Text(_("Prescribe progesterone 400 mg vaginally twice daily until 16 weeks")),
                (Action("create", dose_text, resource=order),),
                recommended=True,
            ),
        )
        facts_used = tuple(_pregnancy_facts(facts))
    else:
        drafts_to_replace = [o for o in judged if not _as_endorsed(o)]
        if not drafts_to_replace:
            return
        suggestions = _replace_all(drafts_to_replace, order, dose_text)
        facts_used = (*(order_fact(o) for o in drafts_to_replace),
                      Text(_("The draft's dose or route differs from the endorsed 400 mg vaginally twice daily")),
                      *_pregnancy_facts(facts))
    yield CardDraft(
        rec_id="E8.6b",
        indicator=Indicator.INFO,
        summary=summary,
        facts=facts_used,
        advice=(
            Text(_("In a new intra-uterine pregnancy with bleeding before 12 weeks and three or more previous miscarriages, prescribe progesterone 400 mg vaginally twice daily and continue until 16 weeks.")),
        ),
        suggestions=suggestions,
        selection_behavior="any",
    )


def _running_at_another_dose(facts: PatientFacts, running: list[OrderFact], order: dict, dose_text: Text) -> Iterator[CardDraft]:
    differing = [o for o in running if _known_to_differ(o)]
    if not differing:
        return  # as endorsed, or a dose the record does not structure: not judged
    why = Text(_("Replaced by the endorsed dose (E8.6b): 400 mg vaginally twice daily"))
    actions = [a for o in differing if (a := _stop_action(o, why)) is not None]
    actions.append(Action("create", dose_text, resource=order))
    yield CardDraft(
        rec_id="E8.6b",
        indicator=Indicator.INFO,
        summary=Text(_("Progesterone runs at another dose or route than the endorsed 400 mg vaginally twice daily")),
        facts=(*(order_fact(o) for o in differing), *_pregnancy_facts(facts)),
        advice=(
            Text(_("In a new intra-uterine pregnancy with bleeding before 12 weeks and three or more previous miscarriages, prescribe progesterone 400 mg vaginally twice daily and continue until 16 weeks.")),
            Text(_("Change the running progesterone to the endorsed dose; a medication the patient reports taking is changed with her.")),
        ),
        suggestions=(Suggestion(Text(_("Change to progesterone 400 mg vaginally twice daily until 16 weeks")), tuple(actions), recommended=True),),
    )


def _course_complete(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    running = _rpl_orders(facts, ctx)
    if not running:
        return
    yield CardDraft(
        rec_id="E8.6b",
        indicator=Indicator.INFO,
        summary=Text(_("Progesterone course complete at 16 weeks: stop progesterone")),
        facts=(*(order_fact(o) for o in running), *_pregnancy_facts(facts)),
        advice=(
            Text(_("Progesterone for bleeding before 12 weeks after three or more miscarriages is continued until 16 weeks of pregnancy; from 16 weeks it can be stopped.")),
        ),
    )


def _replace_all(drafts: list[OrderFact], order: dict, dose_text: Text) -> tuple[Suggestion, ...]:
    """One suggestion that removes every draft to replace and creates the endorsed order once:
    suggestions must not overlap for a client that only knows selectionBehavior 'any' (Epic),
    which may accept them all - one create per draft would prescribe it twice."""
    removable = [o for o in drafts if o.draft and "/" in o.reference]
    if len(removable) <= 1:
        return tuple(s for o in removable if (s := remove_draft(o, replacement=order, replacement_label=dose_text)))
    names = ", ".join(o.display for o in removable)
    actions = tuple(
        Action("delete", Text(_("Remove the draft order: %(order)s"), {"order": o.display}), resource_id=o.reference)
        for o in removable
    )
    return (Suggestion(Text(_("Replace %(order)s"), {"order": names}), (*actions, Action("create", dose_text, resource=order)),
                       recommended=True),)


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


def _e8_6c(facts: PatientFacts, orders: list[OrderFact]) -> CardDraft:
    contraindications = facts.pregnancy.contraindications
    finding = Text(CONTRAINDICATION_TEXT[contraindications[0].what])
    running = [o for o in orders if not o.draft]
    advice = [
        Text(_("Never start progesterone with a crown-rump length above 7 mm without heart activity, a gestational sac above 25 mm without fetal parts, an ectopic pregnancy or a life-threatening bleeding.")),
    ]
    if running:
        summary = Text(_("Stop progesterone: %(finding)s"), {"finding": finding})
        why = Text(_("Stopped (E8.6c): %(finding)s"), {"finding": finding})
        suggestions = tuple(
            Suggestion(Text(_("Stop %(order)s"), {"order": o.display}), (action,), recommended=True)
            for o in running
            if (action := _stop_action(o, why)) is not None
        )
        advice.append(Text(_("Progesterone already running is stopped now: it must not continue with this finding.")))
        advice += [
            Text(_("Stop %(order)s (%(ref)s) now: tell the patient to stop taking it."), {"order": o.display, "ref": o.reference})
            for o in running
            if o.resource is None
        ]
    else:
        summary = Text(_("Do not start progesterone: %(finding)s"), {"finding": finding})
        suggestions = tuple(s for o in orders if (s := remove_draft(o)) is not None)
    return CardDraft(
        rec_id="E8.6c",
        indicator=Indicator.CRITICAL,
        summary=summary,
        facts=(*(order_fact(o) for o in orders), *(_contraindication_fact(f) for f in contraindications)),
        advice=tuple(advice),
        suggestions=suggestions,
        selection_behavior="any",
        override_reasons=(
            override("finding-outdated", _("Finding no longer current (new ultrasound)")),
            override("finding-incorrect", _("Finding recorded in error")),
        ),
    )


def e8_6_orders(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    """E8.6c (critical) or E8.6a (warning) for progesterone; nothing when E8.6b endorses it
    or its course is complete (the E8.6b rule speaks then)."""
    orders = orders_to_check(facts, ctx, (PROGESTERONE,))
    if not orders:
        return
    if facts.pregnancy.contraindications:
        yield _e8_6c(facts, orders)
        return
    orders = [o for o in orders if not names_other_indication(o)]
    if not orders or not facts.has_rpl or endorsed(facts) or course_complete(facts) or course_running(facts):
        return
    missing = missing_facts(facts)
    yield CardDraft(
        rec_id="E8.6a",
        indicator=Indicator.WARNING,
        summary=Text(_("Progesterone does not prevent a new miscarriage in recurrent pregnancy loss")),
        facts=(
            *(order_fact(o) for o in orders),
            *_pregnancy_facts(facts),
            Text(_("Not shown in the record for the exception (E8.6b): %(missing)s"), {"missing": tuple(missing)}),
        ),
        advice=(
            Text(_("Do not prescribe progesterone to prevent miscarriage in women with recurrent pregnancy loss.")),
            Text(_("Exception (E8.6b): a new intra-uterine pregnancy with bleeding before 12 weeks (in the last 14 days, under 16 weeks) after three or more miscarriages.")),
        ),
        suggestions=tuple(s for o in orders if (s := remove_draft(o)) is not None),
        selection_behavior="any",
        override_reasons=(
            override("e8-6b-applies", _("Bleeding before 12 weeks in an intra-uterine pregnancy after 3 or more miscarriages")),
            *indication_overrides("indication-assisted-reproduction"),
            override("other-indication", _("Prescribed for another indication")),
        ),
    )
