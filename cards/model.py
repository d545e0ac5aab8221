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


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know besides the facts: the hook and how to build orders."""

    hook: Hook
    orders: Any  # cards.orders.OrderBuilder


Rule = Callable[[PatientFacts, RuleContext], Iterable[CardDraft]]
