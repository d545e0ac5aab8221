"""Which rules run on which hook: an explicit list, no import scanning.

Suggest and counsel cards belong to patient-view, when the clinician opens the
chart; warn and stop rules judge orders on order-select and order-sign, and
active treatments on patient-view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fhir_mappings.facts import PatientFacts

from .d3_2_apl_screening import d3_2
from .d5_1_thyroid import d5_1a
from .discouraged_orders import TABLE as DISCOURAGED, discouraged_orders
from .e8_6_progesterone import e8_6_orders, e8_6b
from .model import INDICATOR_RANK, CardDraft, Hook, Rule, RuleContext

ALL_HOOKS = frozenset(Hook)
PATIENT_VIEW = frozenset({Hook.PATIENT_VIEW})


@dataclass(frozen=True)
class RuleSpec:
    rule: Rule
    ids: tuple[str, ...]  # catalogue IDs the rule can produce
    hooks: frozenset[Hook]


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(d3_2, ("D3.2",), PATIENT_VIEW),
    RuleSpec(d5_1a, ("D5.1a",), PATIENT_VIEW),
    RuleSpec(e8_6b, ("E8.6b",), PATIENT_VIEW),
    RuleSpec(e8_6_orders, ("E8.6a", "E8.6c"), ALL_HOOKS),
    RuleSpec(discouraged_orders, tuple(row.rec_id for row in DISCOURAGED), ALL_HOOKS),
)


def evaluate(facts: PatientFacts, ctx: RuleContext, rules: Iterable[RuleSpec] = RULES) -> list[CardDraft]:
    """All cards for this hook: at most one per catalogue ID, most urgent first."""
    by_id: dict[str, CardDraft] = {}
    for spec in rules:
        if ctx.hook not in spec.hooks:
            continue
        for draft in spec.rule(facts, ctx):
            current = by_id.get(draft.rec_id)
            if current is None or INDICATOR_RANK[draft.indicator] < INDICATOR_RANK[current.indicator]:
                by_id[draft.rec_id] = draft
    return sorted(by_id.values(), key=lambda d: (INDICATOR_RANK[d.indicator], d.rec_id))
