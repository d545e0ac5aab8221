"""Reading raw FHIR values: dates, codings, texts, Observation values and flags.

Shared by the parts of the facts extraction; nothing here knows a rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from .facts import Interpretation
from .valuesets import SNOMED

SEVERE = "24484000"  # SNOMED CT: Severe (severity)
POSITIVE_CODES = frozenset({"10828004", "260373001", "52101004"})  # positive, detected, present
NEGATIVE_CODES = frozenset({"260385009", "260415000", "2667000"})  # negative, not detected, absent
PREGNANT_CODES = frozenset({"77386006"})  # SNOMED CT: Pregnant
NOT_PREGNANT_CODES = frozenset({"60001007"})  # SNOMED CT: Not pregnant

INTERPRETATION_CODES = {
    "H": Interpretation.HIGH, "HH": Interpretation.HIGH, "HU": Interpretation.HIGH, ">": Interpretation.HIGH,
    "L": Interpretation.LOW, "LL": Interpretation.LOW, "LU": Interpretation.LOW, "<": Interpretation.LOW,
    "N": Interpretation.NORMAL,
    "A": Interpretation.ABNORMAL, "AA": Interpretation.ABNORMAL,
    "POS": Interpretation.POSITIVE, "DET": Interpretation.POSITIVE,
    "NEG": Interpretation.NEGATIVE, "ND": Interpretation.NEGATIVE,
}
POSITIVE_WORDS = frozenset({"pos", "positive", "positief", "detected", "aangetoond", "present", "aanwezig"})
NEGATIVE_WORDS = frozenset(
    {"neg", "negative", "negatief", "not detected", "niet aangetoond", "absent", "afwezig", "no", "nee"}
)
# The validation of one raw resource: its model, or None when invalid where a rule reads it.
Validate = Callable[[Mapping[str, Any]], Any]

_NUMBER = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*(\d+(?:[.,]\d+)?)\s*(.*?)\s*$")


def raw_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def reference_of(resource: Any) -> str:
    return f"{resource.get_resource_type()}/{resource.id}" if resource.id else resource.get_resource_type()


def raw_reference(raw: Mapping[str, Any]) -> str:
    rid = raw.get("id")
    return f"{raw.get('resourceType')}/{rid}" if rid else str(raw.get("resourceType"))


def as_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant (also partial '2024' or '2024-03') -> date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return _date_of_text(value[:10])
    return None


@lru_cache(maxsize=4096)  # a lab history repeats the same dates at every call
def _date_of_text(text: str) -> date | None:
    parts = text.split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else 1
        day = int(parts[2]) if len(parts) > 2 else 1
        return date(year, month, day)
    except (ValueError, IndexError):
        return None


def coding_pairs(concept: Any) -> set[tuple[str | None, str | None]]:
    if concept is None:
        return set()
    return {(c.system, c.code) for c in (concept.coding or [])}


def concept_text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return concept.text
    for coding in concept.coding or []:
        if coding.display:
            return coding.display
    for coding in concept.coding or []:
        if coding.code:
            return coding.code
    return None



def observation_date(obs: Any) -> date | None:
    if obs.effectiveDateTime is not None:
        return as_date(obs.effectiveDateTime)
    if obs.effectivePeriod is not None:
        return as_date(obs.effectivePeriod.start or obs.effectivePeriod.end)
    if obs.effectiveInstant is not None:
        return as_date(obs.effectiveInstant)
    return as_date(obs.issued)


def interpretation_flag(obs: Any) -> Interpretation | None:
    for concept in obs.interpretation or []:
        for coding in concept.coding or []:
            found = INTERPRETATION_CODES.get((coding.code or "").upper())
            if found is not None:
                return found
    return None


def numeric_value(obs: Any) -> tuple[float | None, str | None, str | None, str | None]:
    """(value, unit, comparator, text) from valueQuantity, valueInteger or valueString."""
    if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        q = obs.valueQuantity
        if not math.isfinite(q.value):
            return None, None, None, None
        comparator = {"≤": "<=", "≥": ">="}.get(q.comparator or "", q.comparator)
        return float(q.value), (q.unit or q.code), comparator, None
    if obs.valueInteger is not None:
        return float(obs.valueInteger), None, None, None
    if obs.valueString:
        match = _NUMBER.match(obs.valueString)
        if match:
            comparator = {"≤": "<=", "≥": ">="}.get(match.group(1) or "", match.group(1))
            number = float(match.group(2).replace(",", "."))
            return number, (match.group(3) or None), comparator, obs.valueString
        return None, None, None, obs.valueString
    return None, None, None, None


def qualitative_value(obs: Any) -> Interpretation | None:
    concept = obs.valueCodeableConcept
    if concept is not None:
        codes = {code for system, code in coding_pairs(concept) if system == SNOMED}
        if codes & POSITIVE_CODES:
            return Interpretation.POSITIVE
        if codes & NEGATIVE_CODES:
            return Interpretation.NEGATIVE
        words = (concept_text(concept) or "").strip().lower()
    elif obs.valueBoolean is not None:
        return Interpretation.POSITIVE if obs.valueBoolean else Interpretation.NEGATIVE
    else:
        words = (obs.valueString or "").strip().lower()
    if words in POSITIVE_WORDS:
        return Interpretation.POSITIVE
    if words in NEGATIVE_WORDS:
        return Interpretation.NEGATIVE
    return None

