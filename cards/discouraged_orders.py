"""'Do not order X' recommendations: one rule over a table.

Each row names the catalogue ID, the value sets of the discouraged orders,
the patients it applies to, the card texts and the override reasons that fit
the row. The rule warns about orders in scope (selected drafts on
order-select, all drafts on order-sign, active treatments on patient-view)
and offers to remove each draft order.

Reading of the catalogue: these rows advise against an order *in RPL care*;
the same drug or test can be right for another indication (IVIg in immune
thrombocytopenia, HLA typing before a transplant), so a row fires only when
RPL is recorded, and rows the catalogue restricts to unexplained RPL only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fhir_mappings.facts import PatientFacts

from .common import loss_fact, order_fact, orders_to_check, override, remove_draft
from .i18n import Text, _
from .model import CardDraft, Indicator, OverrideReason, RuleContext


def rpl(facts: PatientFacts) -> bool:
    return facts.has_rpl


def unexplained_rpl(facts: PatientFacts) -> bool:
    return facts.unexplained_rpl


@dataclass(frozen=True)
class DiscouragedOrder:
    rec_id: str
    concepts: tuple[str, ...]  # value-set names of the discouraged orders
    applies: Callable[[PatientFacts], bool]
    summary: str  # msgid
    advice: str  # msgid
    override_reasons: tuple[OverrideReason, ...] = ()


OTHER_INDICATION = override("other-indication", _("Ordered for another indication than recurrent pregnancy loss"))

TABLE: tuple[DiscouragedOrder, ...] = (
    DiscouragedOrder(
        "E8.2",
        ("immunoglobulin-iv",),
        unexplained_rpl,
        _("Intravenous immunoglobulin is not advised for unexplained recurrent pregnancy loss"),
        _("Do not treat unexplained recurrent pregnancy loss with intravenous immunoglobulin (IVIg): it does not improve the live birth rate."),
        (OTHER_INDICATION,),
    ),
)


def _explained_fact(row: DiscouragedOrder, facts: PatientFacts) -> tuple[Text, ...]:
    if row.applies is unexplained_rpl:
        return (Text(_("No antiphospholipid syndrome, thyroid disorder or chromosomal cause on record")),)
    return ()


def discouraged_orders(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    for row in TABLE:
        orders = orders_to_check(facts, ctx, row.concepts)
        if not orders or not row.applies(facts):
            continue
        yield CardDraft(
            rec_id=row.rec_id,
            indicator=Indicator.WARNING,
            summary=Text(row.summary),
            facts=(*(order_fact(o) for o in orders), loss_fact(facts), *_explained_fact(row, facts)),
            advice=(Text(row.advice),),
            suggestions=tuple(s for o in orders if (s := remove_draft(o)) is not None),
            selection_behavior="any",
            override_reasons=row.override_reasons or (OTHER_INDICATION,),
        )
