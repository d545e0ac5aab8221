"""What a rule returns: a card draft in terms of the catalogue, not yet JSON.

Drafts hold translatable Texts; ``cards.render`` turns them into CDS Hooks
cards in the caller's language, with uuids and the source block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fhir_mappings.facts import PatientFacts

from .i18n import Text


class Hook(str, Enum):
    PATIENT_VIEW = "patient-view"
    ORDER_SELECT = "order-select"
    ORDER_SIGN = "order-sign"


class Indicator(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


INDICATOR_RANK = {Indicator.CRITICAL: 0, Indicator.WARNING: 1, Indicator.INFO: 2}


@dataclass(frozen=True)
class OverrideReason:
    code: str
    display: Text


@dataclass(frozen=True)
class Action:
    type: str  # "create" | "update" | "delete"
    description: Text
    resource: Mapping[str, Any] | None = None  # for create and update (the complete resource)
    resource_id: str | None = None  # for delete: "MedicationRequest/abc"


@dataclass(frozen=True)
class Suggestion:
    label: Text
    actions: tuple[Action, ...]
    recommended: bool = False


@dataclass(frozen=True)
class Link:
    label: Text
    url: str


@dataclass(frozen=True)
class CardDraft:
    rec_id: str  # catalogue ID, the card's source.topic.code
    indicator: Indicator
    summary: Text
    facts: tuple[Text, ...]  # the patient facts the card is based on (value, unit, date, source)
    advice: tuple[Text, ...]  # the recommendation, in short
    suggestions: tuple[Suggestion, ...] = ()
    # "any": the one value every client supports (Epic documents only this); a rule's suggestions
    # therefore never overlap (tests/test_real_clients.py checks every card).
    selection_behavior: str = "any"
    override_reasons: tuple[OverrideReason, ...] = ()
    links: tuple[Link, ...] = ()
    personal: tuple[Text, ...] = ()  # recommendation lines about this patient: shown first, also in a merged card
    short: Text | None = None  # a few words for the summary of a card that carries this one
    carried_ids: tuple[str, ...] = ()  # catalogue rows the card carries, its own first; empty: only rec_id

    @property
    def ids(self) -> tuple[str, ...]:
        """Every catalogue ID the card carries (feedback on the card counts for each)."""
        return self.carried_ids or (self.rec_id,)


@dataclass(frozen=True)
class DepartmentSettings:
    """What a deployment sets for its rules: its country, its own protocol texts."""

    region: str = "nl"  # nl | be | us: the support organisations linked (S1)
    # S4: the department's own management text for a missed miscarriage, one Text per line
    missed_miscarriage_protocol: tuple[Any, ...] | None = None
    # The work-up card also offers "order all" (selectionBehavior at-most-one): cards/merge.py
    workup_order_all: bool = False


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know besides the facts: the hook, how to build orders, the department's settings."""

    hook: Hook
    orders: Any  # cards.orders.OrderBuilder
    department: DepartmentSettings = DepartmentSettings()


Rule = Callable[[PatientFacts, RuleContext], Iterable[CardDraft]]
