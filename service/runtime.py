"""Everything a request needs, built once per app in create_app (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from babel.support import NullTranslations

from cards.model import DepartmentSettings
from cards.orders import OrderTemplates
from fhir_mappings.facts_cache import FactsCache
from fhir_mappings.json_limits import JsonLimits
from fhir_mappings.valuesets import ValueSetIndex

from .config import Settings
from .feedback import FeedbackStore
from .fhir_client import FhirClients
from .governance import Governance
from .metrics import Metrics
from .registry import ServiceDef


@dataclass
class Runtime:
    settings: Settings
    valuesets: ValueSetIndex
    services: dict[str, ServiceDef]
    fhir_clients: FhirClients
    feedback: FeedbackStore
    translations: dict[str, NullTranslations]
    today: Callable[[], date]
    new_uuid: Callable[[], str]
    facts: FactsCache  # gather + extract, remembering the facts of records seen before
    json_limits: JsonLimits
    order_templates: OrderTemplates  # medication orders for the configured region
    department: DepartmentSettings  # region and protocol texts the rules use
    governance: Governance  # records every card; holds back silent and suppressed ones
    metrics: Metrics

    def close(self) -> None:
        self.fhir_clients.close()
        self.feedback.close()
