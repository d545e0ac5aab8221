"""Which rules run on which hook: an explicit list, no import scanning.

Suggest and counsel cards belong to patient-view, when the clinician opens the
chart; warn and stop rules judge orders on order-select and order-sign, and
active treatments on patient-view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fhir_mappings.facts import PatientFacts

from . import c_lifestyle, e1_prognosis
from .c_lifestyle import c_lifestyle as c_card
from .d3_2_apl_screening import d3_2
from .d5_1_thyroid import d5_1a, d5_1c
from .d6_uterine_imaging import d6
from .discouraged_orders import TABLE as DISCOURAGED, discouraged_orders
from .e1_prognosis import e1
from .e2_genetic_counselling import e2
from .e3_2_aps import e3_2
from .e5_1_thyroid_treatment import e5_1, e5_1c
from .e6_3_cervix import e6_3
from .e8_6_progesterone import e8_6_orders, e8_6b
from .merge import merge, order_key
from .model import INDICATOR_RANK, CardDraft, Hook, Rule, RuleContext
from .supplements import e5_6, folic_acid
from .supportive_care import s1, s2, s4
from .timing import in_place
from .unchecked_orders import ORDER_HOOKS, unchecked_orders

ALL_HOOKS = frozenset(Hook)
PATIENT_VIEW = frozenset({Hook.PATIENT_VIEW})


@dataclass(frozen=True)
class RuleSpec:
    rule: Rule
    ids: tuple[str, ...]  # catalogue IDs the rule covers (its cards' topics, or rows its card carries)
    hooks: frozenset[Hook]


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(c_card, c_lifestyle.IDS, PATIENT_VIEW),
    RuleSpec(d3_2, ("D3.2",), PATIENT_VIEW),
    RuleSpec(d5_1a, ("D5.1a",), PATIENT_VIEW),
    RuleSpec(d5_1c, ("D5.1c",), PATIENT_VIEW),
    RuleSpec(d6, ("D6",), PATIENT_VIEW),
    RuleSpec(e1, e1_prognosis.IDS, PATIENT_VIEW),
    RuleSpec(e2, ("E2",), PATIENT_VIEW),
    RuleSpec(e3_2, ("E3.2",), PATIENT_VIEW),
    RuleSpec(e5_1, ("E5.1a", "E5.1b"), PATIENT_VIEW),
    RuleSpec(e5_1c, ("E5.1c",), ALL_HOOKS),
    RuleSpec(e5_6, ("E5.6",), PATIENT_VIEW),
    RuleSpec(e6_3, ("E6.3",), PATIENT_VIEW),
    RuleSpec(folic_acid, ("E8.5", "S3"), PATIENT_VIEW),
    RuleSpec(e8_6b, ("E8.6b",), ALL_HOOKS),
    RuleSpec(s1, ("S1",), PATIENT_VIEW),
    RuleSpec(s2, ("S2",), PATIENT_VIEW),
    RuleSpec(s4, ("S4",), PATIENT_VIEW),
    RuleSpec(e8_6_orders, ("E8.6a", "E8.6c"), ALL_HOOKS),
    RuleSpec(discouraged_orders, (*(row.rec_id for row in DISCOURAGED), "E4"), ALL_HOOKS),
    RuleSpec(unchecked_orders, ("E",), ORDER_HOOKS),
)


def evaluate(facts: PatientFacts, ctx: RuleContext, rules: Iterable[RuleSpec] = RULES,
             merged: bool = True) -> list[CardDraft]:
    """All cards for this hook: at most one per catalogue ID, merged and ordered as the
    catalogue's "How many cards, in which order" says (cards/merge.py)."""
    by_id: dict[str, CardDraft] = {}
    for spec in rules:
        if ctx.hook not in spec.hooks:
            continue
        for draft in spec.rule(facts, ctx):
            if not in_place(draft, facts, ctx):  # whose chart, and timing (cards/timing.py)
                continue
            current = by_id.get(draft.rec_id)
            if current is None or INDICATOR_RANK[draft.indicator] < INDICATOR_RANK[current.indicator]:
                by_id[draft.rec_id] = draft
    if not merged:  # the caller merges (after holding back silent rows: service/api.py)
        return sorted(by_id.values(), key=order_key)
    return merge(by_id.values(), ctx.hook, ctx.department.workup_order_all)
