"""E - Draft medication orders the rules could not check (issue 15, item 2: never silence).

A draft MedicationRequest/MedicationStatement whose Medication could not be read
(not in the request, not found or not readable on the FHIR server) or that names
no medicine at all cannot be judged by any treatment row of NVOG 2022 part E:
it may be the progesterone, IVIg or heparin a row warns about. Rather than
answer as if it were not there, the service says which order it could not check.

Reading: the card carries topic ``E`` (the guideline's treatment part as a
whole, as ``D`` stands for the investigations part): it implements no single
row, but tells which rows could not be applied. It is information, not a
warning: nothing is known to be wrong with the order. It comes only on the
order hooks (order-select: the newly selected drafts; order-sign: every draft)
and only where a treatment row could apply: RPL, or a current pregnancy or
pregnancy finding (E8.6b/E8.6c judge progesterone there).
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts, UncheckedOrder

from .i18n import Text, _
from .model import CardDraft, Hook, Indicator, RuleContext

ORDER_HOOKS = frozenset({Hook.ORDER_SELECT, Hook.ORDER_SIGN})


def _treatment_rows_apply(facts: PatientFacts) -> bool:
    return facts.has_rpl or facts.pregnancy.current or bool(facts.pregnancy.contraindications)


def _fact(order: UncheckedOrder) -> Text:
    if order.medication is None:
        return Text(_("A draft medication order names no medicine: no code and no name (%(ref)s)"),
                    {"ref": order.reference})
    return Text(_("A draft medication order refers to a medicine that could not be read from the record (%(ref)s)"),
                {"ref": f"{order.reference}, {order.medication}"})


def unchecked_orders(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if ctx.hook not in ORDER_HOOKS or not _treatment_rows_apply(facts):
        return
    orders = [o for o in facts.unchecked_drafts if ctx.hook is Hook.ORDER_SIGN or o.selected]
    if not orders:
        return
    summary = (Text(_("A draft medication order was not checked against the miscarriage guideline"))
               if len(orders) == 1 else
               Text(_("%(count)s draft medication orders were not checked against the miscarriage guideline"),
                    {"count": len(orders)}))
    yield CardDraft(
        rec_id="E",
        indicator=Indicator.INFO,
        summary=summary,
        facts=tuple(_fact(o) for o in orders),
        advice=(Text(_("Which medicine it is could not be told, so the guideline's treatment warnings (such as progesterone, heparin, aspirin, prednisolone or IVIg) were not applied to it. Check it against the guideline yourself, or have the EHR send the medicine's details with the order.")),),
    )
