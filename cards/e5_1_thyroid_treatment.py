"""E5.1 - Thyroid treatment in RPL (NVOG 2022 part E, module 5.1).

E5.1a: overt hypothyroidism -> levothyroxine. When: RPL and (TSH above range
  with its free T4 below range, or an active hypothyroidism diagnosis), no
  levothyroxine ordered or active. Then: suggest levothyroxine.
E5.1b: subclinical hypothyroidism (TSH high, free T4 normal) is not treated
  routinely: TSH > 10 mIU/L -> levothyroxine recommended (suggest); TSH above
  4.0 and up to 10 -> may be considered, shared decision (counsel). Needs a
  free T4 known to be normal: without it, D5.1c asks for one first.
E5.1c (no levothyroxine for TPO antibodies with normal TSH) is a row of the
  discouraged-order table.
Lab values count only from a TSH of the last 12 months (current_tsh).
The levothyroxine dose is left to the prescriber: the catalogue gives none.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import Interpretation, PatientFacts

from .common import lab_fact, loss_fact
from .d5_1_thyroid import FT4, TSH, current_tsh, paired_ft4
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion
from .orders import order_description

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


def e5_1(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.has_order("levothyroxine") is not None:
        return
    tsh, ft4 = current_tsh(facts), paired_ft4(facts)
    diagnosis = facts.active_condition("hypothyroidism")
    tsh_high = tsh is not None and tsh.interpretation is Interpretation.HIGH
    if diagnosis is not None or (tsh_high and ft4 is not None and ft4.interpretation is Interpretation.LOW):
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
