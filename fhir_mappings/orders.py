"""Orders and medications: classified into the catalogue's drug and test classes,
with status, dose per day, routes and the reasons they cite.

The medication may be a CodeableConcept, a contained Medication or a reference
to a Medication elsewhere in the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .facts import OrderFact
from .fhir_values import Validate, coding_pairs, raw_reference
from .record import as_list
from .valuesets import SNOMED, ValueSetIndex

ORDER_STATUS_ON_RECORD = frozenset({"active", "on-hold", "draft"})
STATEMENT_STATUS_ACTIVE = frozenset({"active", "intended"})
# Catalogue "Treated condition": a medication taken now or before (medication_history).
REQUEST_STATUS_TAKEN = frozenset({"active", "on-hold", "completed", "stopped"})
STATEMENT_STATUS_NOT_TAKEN = frozenset({"entered-in-error", "not-taken"})


@dataclass(frozen=True)
class OrderLookup:
    """What the facts of an order read from the rest of the data."""

    medications: Mapping[str, Mapping[str, Any]]  # "Medication/id" -> Medication (medicationReference)
    cited: Mapping[str, frozenset[str]]  # "Type/id" -> value sets of that resource's code (reasonReference)
    selections: frozenset[str] = frozenset()  # order-select: the newly selected drafts


def order_on_record(raw: Mapping[str, Any], order: OrderFact) -> bool:
    if raw.get("resourceType") == "MedicationStatement":
        return order.status in STATEMENT_STATUS_ACTIVE
    return order.status in ORDER_STATUS_ON_RECORD


def medication_taken(raw: Mapping[str, Any], order: OrderFact) -> bool:
    """A medication the patient takes or took: part of PatientFacts.medication_history."""
    rtype = raw.get("resourceType")
    if rtype == "MedicationStatement":
        return order.status not in STATEMENT_STATUS_NOT_TAKEN
    return rtype == "MedicationRequest" and order.status in REQUEST_STATUS_TAKEN


def _medication_concept(raw: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    if "medicationCodeableConcept" in raw:
        return raw.get("medicationCodeableConcept")
    reference = raw.get("medicationReference")
    if not isinstance(reference, Mapping):
        return None
    ref = reference.get("reference")
    if isinstance(ref, str) and ref.startswith("#"):
        for contained in as_list(raw.get("contained")):
            if isinstance(contained, Mapping) and contained.get("id") == ref[1:]:
                return contained.get("code")
        return None
    if isinstance(ref, str):
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        medication = medications.get("/".join(parts[-2:]))
        if medication is not None:
            return medication.get("code")
    return None


def order_fact(
    raw: Mapping[str, Any],
    lookup: OrderLookup,
    valuesets: ValueSetIndex,
    validated: Validate,
    draft: bool,
) -> OrderFact | None:
    rtype = raw.get("resourceType")
    concept = raw.get("code") if rtype == "ServiceRequest" else _medication_concept(raw, lookup.medications)
    classes = valuesets.classify(concept)
    if not classes:
        return None
    model = validated(raw)
    if model is None:
        return None
    reference = raw_reference(raw)
    reasons: set[str] = set()
    for reason in getattr(model, "reasonCode", None) or []:
        for system, code in coding_pairs(reason):
            reasons |= valuesets.names_for(system, code)
    # reasonReference: the Condition or Observation the order cites, when it is in the data.
    for reason in getattr(model, "reasonReference", None) or []:
        reasons |= lookup.cited.get(reason.reference or "", frozenset())
    display = _display(concept) or reference
    return OrderFact(
        reference=reference,
        classes=classes,
        display=display,
        status=str(raw.get("status") or "unknown"),
        draft=draft,
        selected=draft and reference in lookup.selections,
        daily_dose_mg=_daily_dose_mg(model),
        routes=_routes(model),
        reason=frozenset(reasons),
        resource=raw if not draft and rtype == "MedicationRequest" else None,
    )


def _display(concept: Mapping[str, Any] | None) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    if isinstance(concept.get("text"), str) and concept["text"]:
        return concept["text"]
    for coding in as_list(concept.get("coding")):
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            return coding["display"]
    return None


_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "µg": 0.001, "mcg": 0.001}
_PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0}


def _routes(model: Any) -> frozenset[str]:
    # MedicationRequest.dosageInstruction, MedicationStatement.dosage
    dosages = getattr(model, "dosageInstruction", None) or getattr(model, "dosage", None) or []
    return frozenset(code for d in dosages for system, code in coding_pairs(d.route) if system == SNOMED and code)


def _daily_dose_mg(model: Any) -> float | None:
    """Dose per day in mg from the first structured dosage, when it is in a mass unit."""
    dosages = getattr(model, "dosageInstruction", None) or getattr(model, "dosage", None) or []
    for dosage in dosages:
        for dose_rate in dosage.doseAndRate or []:
            q = dose_rate.doseQuantity
            if q is None or q.value is None:
                continue
            factor = _MASS_TO_MG.get((q.code or q.unit or "").lower())
            if factor is None:
                return None
            per_day = 1.0
            repeat = dosage.timing.repeat if dosage.timing else None
            if repeat is not None and repeat.frequency:
                period_days = float(repeat.period or 1) * _PERIOD_DAYS.get(repeat.periodUnit or "d", 0)
                if not period_days:
                    return None
                per_day = float(repeat.frequency) / float(period_days)
            return float(q.value) * factor * per_day
    return None

