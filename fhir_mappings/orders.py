"""Orders and medications: classified into the catalogue's drug and test classes,
with status, dose per day, routes and the reasons they cite.

The medication may be a CodeableConcept, a contained Medication or a reference
to a Medication elsewhere in the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .facts import OrderFact
from .fhir_values import Validate, coding_pairs, raw_reference
from .medications import ingredients_named
from .record import as_list
from .resources import InvalidResource, parse
from .valuesets import SNOMED, ValueSetIndex

log = logging.getLogger("rpl_cds.orders")

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


class UncheckableDraftOrder(ValueError):
    """A draft order of a catalogue class that the rules cannot read: the call is refused (400)
    with this message rather than answered without judging it."""


MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationStatement"})

# Elements FHIR R4 defines as arrays (0..*) in the order resources. Clients send some of them
# as one object (the CDS Hooks sandbox: reasonCode and category when "Treating" is picked);
# that is unambiguous - an array of one - and read so, with a warning naming the element.
ARRAY_ELEMENTS: dict[str, frozenset[str]] = {
    "MedicationRequest": frozenset({
        "identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "category", "reasonCode",
        "reasonReference", "insurance", "supportingInformation", "note", "dosageInstruction", "detectedIssue",
        "eventHistory", "contained",
    }),
    "MedicationStatement": frozenset({
        "identifier", "basedOn", "partOf", "statusReason", "derivedFrom", "reasonCode", "reasonReference", "note",
        "dosage", "contained",
    }),
    "ServiceRequest": frozenset({
        "identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "replaces", "category", "orderDetail",
        "performer", "locationCode", "locationReference", "reasonCode", "reasonReference", "insurance",
        "supportingInfo", "specimen", "bodySite", "note", "relevantHistory", "contained",
    }),
}
# CodeableConcepts the rules read, whose 'coding' (0..*) may come as one object too.
CONCEPT_ELEMENTS = ("medicationCodeableConcept", "code")
CONCEPT_ARRAYS = ("reasonCode", "category")


def _as_array(holder: dict[str, Any], key: str, where: str, fixed: list[str]) -> None:
    if isinstance(holder.get(key), dict):
        holder[key] = [holder[key]]
        fixed.append(where)


def _concept(value: Any, where: str, fixed: list[str]) -> Any:
    if isinstance(value, dict) and isinstance(value.get("coding"), dict):
        value = {**value, "coding": [value["coding"]]}
        fixed.append(f"{where}.coding")
    return value


def lenient_arrays(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The order with each R4 array that came as a single object read as an array of one.

    Returns the resource itself when nothing needed it (the usual case: no copy)."""
    rtype = raw.get("resourceType")
    arrays = ARRAY_ELEMENTS.get(rtype) if isinstance(rtype, str) else None
    if arrays is None:
        return raw
    needs = any(isinstance(raw.get(k), dict) for k in arrays) or any(
        isinstance(raw.get(k), dict) and isinstance(raw[k].get("coding"), dict) for k in CONCEPT_ELEMENTS
    ) or any(_dosage_needs(d) for k in ("dosageInstruction", "dosage") for d in _items(raw.get(k))) or any(
        isinstance(c, dict) and isinstance(c.get("coding"), dict) for k in CONCEPT_ARRAYS for c in _items(raw.get(k))
    )
    if not needs:
        return raw
    fixed: list[str] = []
    copy = dict(raw)
    for key in sorted(arrays):
        _as_array(copy, key, key, fixed)
    for key in CONCEPT_ELEMENTS:
        if key in copy:
            copy[key] = _concept(copy[key], key, fixed)
    for key in CONCEPT_ARRAYS:
        if isinstance(copy.get(key), list):
            copy[key] = [_concept(c, key, fixed) for c in copy[key]]
    for key in ("dosageInstruction", "dosage"):
        if isinstance(copy.get(key), list):
            copy[key] = [_dosage(d, key, fixed) for d in copy[key]]
    log.warning(
        "%s: %s sent as one object where FHIR R4 has an array; read as an array of one",
        raw_reference(raw)[:200], ", ".join(dict.fromkeys(fixed)),
        extra={"audit": {"resource": raw_reference(raw)[:200], "fields": list(dict.fromkeys(fixed))}},
    )
    return copy


def _items(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value
    elif isinstance(value, dict):
        yield value


def _dosage_needs(dosage: Any) -> bool:
    return isinstance(dosage, dict) and (
        isinstance(dosage.get("doseAndRate"), dict)
        or (isinstance(dosage.get("route"), dict) and isinstance(dosage["route"].get("coding"), dict))
    )


def _dosage(dosage: Any, where: str, fixed: list[str]) -> Any:
    if not _dosage_needs(dosage):
        return dosage
    dosage = dict(dosage)
    _as_array(dosage, "doseAndRate", f"{where}.doseAndRate", fixed)
    if "route" in dosage:
        dosage["route"] = _concept(dosage["route"], f"{where}.route", fixed)
    return dosage


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


def medication_key(reference: Any) -> str | None:
    """'Medication/id' of a medicationReference to a Medication outside the resource (a relative,
    absolute or versioned reference); None for a contained one ('#id') or no reference."""
    if not isinstance(reference, Mapping):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or ref.startswith("#"):
        return None
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or parts[-2] != "Medication" or not parts[-1]:
        return None
    return "/".join(parts[-2:])


def _contained_medication(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    reference = raw.get("medicationReference")
    ref = reference.get("reference") if isinstance(reference, Mapping) else None
    if isinstance(ref, str) and ref.startswith("#"):
        for contained in as_list(raw.get("contained")):
            if isinstance(contained, Mapping) and contained.get("id") == ref[1:]:
                return contained
    return None


def _medication_concept(raw: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    if "medicationCodeableConcept" in raw:
        return raw.get("medicationCodeableConcept")
    contained = _contained_medication(raw)
    if contained is not None:
        return contained.get("code")
    key = medication_key(raw.get("medicationReference"))
    medication = medications.get(key) if key else None
    return medication.get("code") if isinstance(medication, Mapping) else None


def unresolved_medication(raw: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The medicationReference of a MedicationRequest/MedicationStatement whose Medication is in
    neither the resource (contained) nor the data; what the order is, is then unknown."""
    if raw.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
        return None
    if "medicationCodeableConcept" in raw or "medicationReference" not in raw:
        return None
    if _contained_medication(raw) is not None:
        return None
    reference = raw.get("medicationReference")
    key = medication_key(reference)
    if key is not None and key in medications:
        return None
    ref = reference.get("reference") if isinstance(reference, Mapping) else None
    return ref if isinstance(ref, str) else "(no reference)"


def names_no_medication(raw: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]) -> bool:
    """A MedicationRequest/MedicationStatement whose medication (its CodeableConcept, or the
    contained or referenced Medication that could be read) has neither a code nor a text: no
    rule can tell what it is. For an order whose reference was read (``unresolved_medication``
    is None): an unread reference is that function's case."""
    raw = lenient_arrays(raw)
    if raw.get("resourceType") not in MEDICATION_TYPES:
        return False
    concept = _medication_concept(raw, medications)
    if not isinstance(concept, Mapping):
        return True
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return False
    return not any(isinstance(c, Mapping) and isinstance(c.get("code"), str) and c["code"].strip()
                   for c in as_list(concept.get("coding")))


def order_fact(
    raw: Mapping[str, Any],
    lookup: OrderLookup,
    valuesets: ValueSetIndex,
    validated: Validate,
    draft: bool,
) -> OrderFact | None:
    raw = lenient_arrays(raw)
    rtype = raw.get("resourceType")
    concept = raw.get("code") if rtype == "ServiceRequest" else _medication_concept(raw, lookup.medications)
    classes = valuesets.classify(concept)
    # Medications only: a test is never recognised by a drug's name (a progesterone *test*).
    named = ingredients_named(_names(concept, valuesets)) if rtype in MEDICATION_TYPES else ()
    by_name = False
    if not classes and named:
        classes = frozenset(m.valueset for m in named)
        by_name = True
    if not classes:
        return None
    reference = raw_reference(raw)
    model = validated(raw)
    if model is None:
        if draft:  # never answer as if a draft of a catalogue class were not there
            raise UncheckableDraftOrder(_why_unreadable(raw, reference, classes, valuesets))
        return None
    named = tuple(m for m in named if m.valueset in classes)
    strengths = {m.strength_mg for m in named if m.strength_mg is not None}
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
        daily_dose_mg=_daily_dose_mg(model, strengths.pop() if len(strengths) == 1 else None),
        routes=_routes(model),
        reason=frozenset(reasons),
        resource=raw if not draft and rtype == "MedicationRequest" else None,
        ingredients=frozenset(m.ingredient for m in named),
        recognised_by_name=by_name,
    )


def _why_unreadable(raw: Mapping[str, Any], reference: str, classes: frozenset[str], valuesets: ValueSetIndex) -> str:
    try:
        parse(raw)
        why = "it could not be read"
    except InvalidResource as exc:
        why = str(exc)
    what = ", ".join(sorted(valuesets.title(c) for c in classes if c in valuesets.names) or sorted(classes))
    return (f"draft order {reference} ({what}) could not be checked: {why}. "
            "It is not valid FHIR R4 where the rules read it; correct it and call again")


def _names(concept: Any, valuesets: ValueSetIndex) -> list[str]:
    """The names a medication concept gives: its text, its codings' displays and the displays
    the value sets give its codes."""
    if not isinstance(concept, Mapping):
        return []
    names = [concept.get("text")]
    for coding in as_list(concept.get("coding")):
        if isinstance(coding, Mapping):
            names.append(coding.get("display"))
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                names.append(valuesets.display_of(system, code))
    return [n for n in names if isinstance(n, str) and n]


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
# Doses in units of the product (UCUM annotations such as the sandbox's "{pill}", or words):
# mg only when the product's strength per unit is known.
_UNIT_DOSES = frozenset({
    "{pill}", "{pills}", "pill", "pills", "{tablet}", "{tablets}", "{tbl}", "tablet", "tablets", "tab", "tabs",
    "{capsule}", "{capsules}", "{cap}", "capsule", "capsules", "cap", "caps", "{count}",
})
_PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0}


def _routes(model: Any) -> frozenset[str]:
    # MedicationRequest.dosageInstruction, MedicationStatement.dosage
    dosages = getattr(model, "dosageInstruction", None) or getattr(model, "dosage", None) or []
    return frozenset(code for d in dosages for system, code in coding_pairs(d.route) if system == SNOMED and code)


def _daily_dose_mg(model: Any, unit_strength_mg: float | None = None) -> float | None:
    """Dose per day in mg from the first structured dosage, when it is in a mass unit, or in
    tablets/capsules of a product whose strength is known."""
    dosages = getattr(model, "dosageInstruction", None) or getattr(model, "dosage", None) or []
    for dosage in dosages:
        for dose_rate in dosage.doseAndRate or []:
            q = dose_rate.doseQuantity
            if q is None or q.value is None:
                continue
            unit = (q.code or q.unit or "").lower()
            factor = _MASS_TO_MG.get(unit)
            if factor is None and unit in _UNIT_DOSES:
                factor = unit_strength_mg
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

