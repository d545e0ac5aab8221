"""Pieces several rules share: which orders a warning looks at, and fact lines."""

from __future__ import annotations

from collections.abc import Iterable

from fhir_mappings.facts import Interpretation, LabResult, LossCountSource, OrderFact, PatientFacts

from .i18n import Quantity, Text, _
from .model import Action, Hook, OverrideReason, RuleContext, Suggestion

ACTIVE_ON_RECORD = frozenset({"active"})


def orders_to_check(facts: PatientFacts, ctx: RuleContext, concepts: Iterable[str]) -> list[OrderFact]:
    """The orders a warn/stop rule judges in this hook.

    order-select: only the newly selected draft orders; order-sign: every
    draft order; patient-view: treatments already active on record.
    """
    wanted = frozenset(concepts)
    if ctx.hook is Hook.ORDER_SELECT:
        pool = [o for o in facts.draft_orders if o.selected]
    elif ctx.hook is Hook.ORDER_SIGN:
        pool = list(facts.draft_orders)
    else:
        pool = [o for o in facts.orders if o.status in ACTIVE_ON_RECORD]
    return [o for o in pool if o.classes & wanted]


def remove_draft(order: OrderFact, replacement: dict | None = None, replacement_label: Text | None = None) -> Suggestion | None:
    """A suggestion that deletes a draft order (and creates the alternative, if any)."""
    if not order.draft or "/" not in order.reference:
        return None  # an order on record is not deleted from a card; a draft without id cannot be
    actions = [Action("delete", Text(_("Remove the draft order: %(order)s"), {"order": order.display}), resource_id=order.reference)]
    label = Text(_("Remove %(order)s"), {"order": order.display})
    if replacement is not None:
        actions.append(Action("create", replacement_label or label, resource=replacement))
        label = Text(_("Replace %(order)s"), {"order": order.display})
    return Suggestion(label=label, actions=tuple(actions), recommended=True)


def override(code: str, display: str) -> OverrideReason:
    return OverrideReason(code=code, display=Text(display))


# Catalogue "Order indication" (version 2): the indications, other than preventing miscarriage,
# that an order may name (reasonCode, or the Condition its reasonReference cites), as value sets
# (fhir_mappings/valuesets/indication-*.json), each with the override reason that names it.
INDICATION_OVERRIDES: dict[str, OverrideReason] = {
    "indication-assisted-reproduction": override(
        "assisted-reproduction", _("Luteal support or ovulation induction in assisted reproduction (IVF, ICSI, embryo transfer, IUI)")),
    "indication-preeclampsia-prevention": override("preeclampsia-prevention", _("Pre-eclampsia prevention")),
    "indication-venous-thromboembolism": override("vte-indication", _("Prophylaxis or treatment of venous thromboembolism")),
    "indication-cardiovascular-prevention": override("cardiovascular-prevention", _("Cardiovascular prevention")),
    "indication-immune-thrombocytopenia": override("immune-thrombocytopenia", _("Immune thrombocytopenia")),
    "indication-autoimmune-disease": override("autoimmune-disease", _("Autoimmune disease")),
}
OTHER_INDICATIONS = frozenset(INDICATION_OVERRIDES)


def names_other_indication(order: OrderFact) -> bool:
    """The order says it is given for another indication than preventing miscarriage. An order
    without a reason, or citing RPL, is judged as an RPL order."""
    return bool(order.reason & OTHER_INDICATIONS)


def indication_overrides(*indications: str) -> tuple[OverrideReason, ...]:
    return tuple(INDICATION_OVERRIDES[name] for name in indications)


def when(day):
    """A date for a Text parameter: formatted for the card language at render time (12-11-2026)."""
    return day if day else "?"


# Lab interpretations in words of the card language (never the English code value in a Dutch card).
INTERPRETATION_TEXTS = {
    Interpretation.HIGH: _("high"),
    Interpretation.LOW: _("low"),
    Interpretation.NORMAL: _("normal"),
    Interpretation.POSITIVE: _("positive"),
    Interpretation.NEGATIVE: _("negative"),
    Interpretation.ABNORMAL: _("abnormal"),
}


def lab_value(result: LabResult):
    """The result as the card shows it: a number with its unit (Babel-formatted), else the
    lab's interpretation in words, else the text the lab recorded."""
    if result.value is not None:
        unit = result.unit if result.unit_known else (result.original_unit or "")
        return Quantity(result.value, unit or "", result.comparator or "")
    if result.interpretation is not None:
        return Text(INTERPRETATION_TEXTS[result.interpretation])
    return result.text or "?"


def loss_fact(facts: PatientFacts) -> Text:
    loss = facts.loss_count
    if loss is None:
        return Text(_("Recurrent pregnancy loss recorded (%(source)s)"), {"source": facts.rpl_diagnosis})
    provenance = {
        LossCountSource.OBSTETRIC_HISTORY: _("obstetric history"),
        LossCountSource.RPL_DIAGNOSIS: _("recurrent miscarriage diagnosis, at least 2"),
        LossCountSource.MISCARRIAGE_CONDITIONS: _("distinct miscarriage diagnoses"),
    }[loss.provenance]
    return Text(
        _("Pregnancy losses: %(count)s (from %(provenance)s: %(sources)s)"),
        {"count": loss.count, "provenance": Text(provenance), "sources": ", ".join(loss.sources)},
    )


def lab_fact(label: str, result: LabResult) -> Text:
    return Text(
        _("%(test)s: %(value)s on %(date)s (%(source)s)"),
        {"test": Text(label), "value": lab_value(result), "date": when(result.date), "source": result.source},
    )


def order_fact(order: OrderFact) -> Text:
    if order.draft:
        line = Text(_("Draft order: %(order)s (%(ref)s)"), {"order": order.display, "ref": order.reference})
    elif order.reference.startswith("MedicationStatement/"):
        # A MedicationStatement says what she takes, not what was ordered.
        line = Text(_("Takes: %(order)s (%(ref)s)"), {"order": order.display, "ref": order.reference})
    else:
        line = Text(_("Active order: %(order)s (%(ref)s)"), {"order": order.display, "ref": order.reference})
    if order.recognised_by_name:  # the clinician should know why: the code is one the service does not know
        return Text(_("%(order)s, recognised by its name: its code is in none of the service's value sets"),
                    {"order": line})
    return line
