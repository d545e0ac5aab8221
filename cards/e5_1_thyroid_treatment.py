"""E5.1 - Thyroid treatment in RPL (NVOG 2022 part E, module 5.1).

E5.1a: overt hypothyroidism -> levothyroxine. When: RPL, the latest TSH (last
  12 months) above range with its free T4 below range, no levothyroxine ordered
  or active. Then: suggest levothyroxine. Version 2: a hypothyroidism diagnosis
  alone never starts treatment: with no TSH in the last 12 months the card
  suggests TSH + free T4 (tests, not treatment); with a TSH of the last 12
  months in range, no card (a stale code against normal labs).
E5.1b: subclinical hypothyroidism (TSH high, free T4 normal) is not treated
  routinely: TSH > 10 mIU/L -> levothyroxine recommended (suggest); TSH above
  4.0 and up to 10 -> may be considered, shared decision (counsel). Needs a
  free T4 known to be normal: without it, D5.1c asks for one first.
E5.1c: euthyroid with TPO antibodies -> no levothyroxine. When: a NEW
  levothyroxine order (order-select/order-sign; never patient-view, where it
  would be a treatment the patient already takes) for a woman with RPL who has
  taken none before (no levothyroxine MedicationStatement, no MedicationRequest
  on record other than this call's drafts: catalogue "Treated condition"), the
  latest TSH (last 12 months, so measured off treatment) in range, TPO
  antibodies positive, no hypothyroidism diagnosis. Then: warning with a
  suggestion removing the draft; override reason "treated hypothyroidism".
  Reading: a levothyroxine taken at any time before (also stopped) makes the
  TSH possibly one measured on treatment: no card.
Lab values count only from a TSH of the last 12 months (current_tsh).
The levothyroxine dose is left to the prescriber: the catalogue gives none.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import Interpretation, OrderFact, PatientFacts

from .common import lab_fact, loss_fact, order_fact, orders_to_check, override, remove_draft
from .d5_1_thyroid import FT4, TSH, TSH_SCREENING_VALID, current_tsh, paired_ft4
from .i18n import Text, _
from .model import Action, CardDraft, Hook, Indicator, RuleContext, Suggestion
from .orders import order_description

LEVOTHYROXINE_CLASS = "levothyroxine"

SUBCLINICAL_TREAT_ABOVE = 10.0  # mIU/L
SUBCLINICAL_CONSIDER_ABOVE = 4.0  # mIU/L


def _prescribe(ctx: RuleContext) -> Suggestion:
    order = ctx.orders.medication_order("levothyroxine")
    return Suggestion(Text(_("Prescribe levothyroxine")), (Action("create", order_description(order), resource=order.resource),), recommended=True)


def _lab_facts(facts: PatientFacts) -> list[Text]:
    lines = [loss_fact(facts)]
    if current_tsh(facts) is not None:
        lines.append(lab_fact(TSH, current_tsh(facts)))
    ft4 = paired_ft4(facts)
    if ft4 is not None:
        lines.append(lab_fact(FT4, ft4))
    return lines


def _order_tests(facts: PatientFacts, ctx: RuleContext) -> Suggestion | None:
    """TSH and free T4 for a hypothyroidism diagnosis without recent labs (those not ordered)."""
    cutoff = facts.today - TSH_SCREENING_VALID
    recent_ft4 = [r for r in facts.results("free-t4") if r.date is not None and r.date >= cutoff]
    wanted = [("tsh", TSH)]
    if not recent_ft4:
        wanted.append(("free-t4", FT4))
    actions = tuple(
        Action("create", Text(_("Order %(test)s"), {"test": Text(name)}), resource=ctx.orders.service_request(concept, Text(name)))
        for concept, name in wanted
        if facts.has_order(concept) is None
    )
    if not actions:
        return None
    return Suggestion(Text(_("Order TSH and free T4")), actions, recommended=True)


def e5_1(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.has_order(LEVOTHYROXINE_CLASS) is not None:
        return
    tsh, ft4 = current_tsh(facts), paired_ft4(facts)
    diagnosis = facts.active_condition("hypothyroidism")
    tsh_high = tsh is not None and tsh.interpretation is Interpretation.HIGH
    if diagnosis is not None and tsh is None:
        # Version 2: a code alone (often stale) is no basis to treat: ask for the labs first.
        suggestion = _order_tests(facts, ctx)
        if suggestion is None:
            return
        yield CardDraft(
            rec_id="E5.1a",
            indicator=Indicator.INFO,
            summary=Text(_("Hypothyroidism on record without TSH in the last 12 months: check TSH and free T4")),
            facts=(
                loss_fact(facts),
                Text(_("Hypothyroidism on record (%(source)s)"), {"source": diagnosis.source}),
                Text(_("No TSH in the last 12 months")),
            ),
            advice=(
                Text(_("Treat overt hypothyroidism with levothyroxine; confirm it with a current TSH and free T4 before starting treatment.")),
            ),
            suggestions=(suggestion,),
        )
        return
    if tsh_high and ft4 is not None and ft4.interpretation is Interpretation.LOW:
        lines = _lab_facts(facts)
        if diagnosis is not None:
            lines.append(Text(_("Hypothyroidism on record (%(source)s)"), {"source": diagnosis.source}))
        yield CardDraft(
            rec_id="E5.1a",
            indicator=Indicator.INFO,
            summary=Text(_("Overt hypothyroidism without levothyroxine: start treatment")),
            facts=tuple(lines),
            advice=(Text(_("Treat overt hypothyroidism in women with recurrent pregnancy loss with levothyroxine.")),),
            suggestions=(_prescribe(ctx),),
        )
        return
    if tsh is None or tsh.value is None or ft4 is None or ft4.interpretation is not Interpretation.NORMAL:
        return
    if tsh.value > SUBCLINICAL_TREAT_ABOVE:
        yield CardDraft(
            rec_id="E5.1b",
            indicator=Indicator.INFO,
            summary=Text(_("Subclinical hypothyroidism with TSH above 10 mIU/L: levothyroxine is recommended")),
            facts=tuple(_lab_facts(facts)),
            advice=(Text(_("Subclinical hypothyroidism is not treated routinely, but with TSH above 10 mIU/L levothyroxine is recommended.")),),
            suggestions=(_prescribe(ctx),),
        )
    elif tsh.value > SUBCLINICAL_CONSIDER_ABOVE:
        yield CardDraft(
            rec_id="E5.1b",
            indicator=Indicator.INFO,
            summary=Text(_("Subclinical hypothyroidism, TSH 4-10 mIU/L: levothyroxine may be considered together")),
            facts=tuple(_lab_facts(facts)),
            advice=(Text(_("With TSH between 4 and 10 mIU/L and a normal free T4, levothyroxine may be considered; decide together with the patient.")),),
        )


# -- E5.1c -------------------------------------------------------------------------
def taken_before(facts: PatientFacts) -> OrderFact | None:
    """A levothyroxine the patient takes or took, other than this call's draft orders."""
    drafts = {o.reference for o in facts.draft_orders}
    for medication in facts.medication_history:
        if LEVOTHYROXINE_CLASS in medication.classes and medication.reference not in drafts:
            return medication
    return None


def e5_1c(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if ctx.hook is Hook.PATIENT_VIEW or not facts.has_rpl:
        return  # patient-view shows treatments already taken: never judged (version 2)
    orders = orders_to_check(facts, ctx, (LEVOTHYROXINE_CLASS,))
    if not orders or taken_before(facts) is not None:
        return
    tsh = current_tsh(facts)
    if tsh is None or tsh.interpretation is not Interpretation.NORMAL:
        return
    if facts.tpo is None or facts.tpo.interpretation is not Interpretation.POSITIVE:
        return
    if facts.active_condition("hypothyroidism") is not None:
        return
    yield CardDraft(
        rec_id="E5.1c",
        indicator=Indicator.WARNING,
        summary=Text(_("No levothyroxine for TPO antibodies with a normal TSH")),
        facts=(
            *(order_fact(o) for o in orders),
            loss_fact(facts),
            lab_fact(TSH, tsh),
            lab_fact(_("TPO antibodies"), facts.tpo),
            Text(_("No levothyroxine taken before and no hypothyroidism diagnosis on record")),
        ),
        advice=(Text(_("Do not treat euthyroid women with thyroid peroxidase antibodies with levothyroxine.")),),
        suggestions=tuple(s for o in orders if (s := remove_draft(o)) is not None),
        selection_behavior="any",
        override_reasons=(
            override("treated-hypothyroidism", _("Treated hypothyroidism (TSH normal on levothyroxine)")),
            override("other-indication", _("Ordered for another indication than recurrent pregnancy loss")),
        ),
    )
