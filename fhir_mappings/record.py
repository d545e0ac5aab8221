"""The patient's raw FHIR data for one hook call, gathered from prefetch or fetch.

Bundles (searchset or collection, as FHIR servers return them) are flattened;
resources that belong to another patient, or of types no rule reads, are set
aside and never reach the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CLINICAL_TYPES = frozenset(
    {"Condition", "Observation", "MedicationRequest", "MedicationStatement", "ServiceRequest", "Procedure",
     "DiagnosticReport"}
)
ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    patient: Mapping[str, Any] | None
    resources: tuple[Mapping[str, Any], ...]
    medications: Mapping[str, Mapping[str, Any]]  # "Medication/id" -> Medication
    draft_orders: tuple[Mapping[str, Any], ...] = ()
    selections: frozenset[str] = frozenset()
    ignored: tuple[str, ...] = ()  # why resources were set aside (for the log)


@dataclass(frozen=True)
class DraftOrders:
    """This call's draft orders (context.draftOrders), gathered apart from the record:
    they change from call to call while the record often stays the same
    (fhir_mappings.facts_cache)."""

    orders: tuple[Mapping[str, Any], ...] = ()
    medications: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # "Medication/id" -> Medication
    selections: frozenset[str] = frozenset()
    ignored: tuple[str, ...] = ()


NO_DRAFTS = DraftOrders()


# Raw data is parsed JSON: dicts and lists. Checked as such (isinstance, or type(x) is dict in
# the loops over every entry), not with the Mapping ABC, which is several times slower.
def as_list(value: Any) -> list:
    """A JSON array, or nothing: raw data is not trusted to have the FHIR shape."""
    return value if isinstance(value, list) else []


def resources_in(value: Any) -> list[dict[str, Any]]:
    """The resources in a prefetch value: a resource, a Bundle, or None.

    A list, not a generator: it runs for every entry of a long record (issue #7)."""
    if type(value) is not dict:
        return []
    rtype = value.get("resourceType")
    if rtype != "Bundle":
        return [value] if type(rtype) is str else []
    entries = value.get("entry")
    if type(entries) is not list:
        return []
    found = []
    for entry in entries:
        if type(entry) is dict:
            resource = entry.get("resource")
            if type(resource) is dict and type(resource.get("resourceType")) is str:
                # _include'd resources (search.mode 'include') are data too; an OperationOutcome
                # about the search (mode 'outcome') is not.
                search = entry.get("search")
                if type(search) is not dict or search.get("mode") != "outcome":
                    found.append(resource)
    return found


def _reference_id(reference: Any, resource_type: str) -> str | None:
    """'Patient/123' or 'https://x/fhir/Patient/123/_history/2' -> '123'."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    if ref.startswith(resource_type) and ref.count("/") == 1:  # the usual 'Patient/123'
        return ref[len(resource_type) + 1:] if ref[len(resource_type)] == "/" else None
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return None


def subject_id(resource: Mapping[str, Any]) -> str | None:
    """The patient a clinical resource is about (subject, or patient for some types)."""
    for key in ("subject", "patient"):
        if key in resource:
            return _reference_id(resource.get(key), "Patient")
    return None


def _label(rtype: str, rid: Any) -> str:
    """'Type/id' for the reasons resources were set aside; shortened, as neither was checked
    against the input limits (see json_limits.check_bundle_shell)."""
    if rid is None:
        return rtype[:64]
    return f"{rtype[:64]}/{rid[:64] if type(rid) is str else '(id not a string)'}"


def gather(
    patient_id: str,
    values: Iterable[Any],
    draft_orders: Any = None,
    selections: Iterable[str] = (),
) -> PatientRecord:
    """The record of one call: the prefetch values with the call's draft orders."""
    return gather_record(patient_id, values, gather_drafts(patient_id, draft_orders, selections))


def gather_record(patient_id: str, values: Iterable[Any], drafts: DraftOrders = NO_DRAFTS) -> PatientRecord:
    patient = None
    seen: set[tuple[str, str]] = set()
    resources: list[Mapping[str, Any]] = []
    medications: dict[str, Mapping[str, Any]] = {}
    ignored: list[str] = []
    own_reference = f"Patient/{patient_id}"
    for value in values:
        for resource in resources_in(value):
            rtype = resource["resourceType"]  # a str (resources_in)
            rid = resource.get("id")
            if rtype in CLINICAL_TYPES:  # nearly every resource: this branch first
                subject = resource.get("subject")
                # The usual exact 'Patient/id' first, before parsing the reference.
                if not (type(subject) is dict and subject.get("reference") == own_reference) \
                        and subject_id(resource) != patient_id:
                    ignored.append(f"{_label(rtype, rid)}: not about this patient")
                    continue
                key = (rtype, rid if type(rid) is str else f"#{len(resources)}")
                if key not in seen:  # else the same resource came from two prefetch keys
                    seen.add(key)
                    resources.append(resource)
            elif rtype == "Patient":
                if rid == patient_id:
                    patient = resource
                else:
                    ignored.append("Patient of another id")
            elif rtype == "Medication":
                if type(rid) is str:
                    medications[f"Medication/{rid}"] = resource
            else:
                ignored.append(f"{_label(rtype, None)}: not read by any rule")
    medications.update(drafts.medications)  # a draft's own Medication wins over the record's
    return PatientRecord(
        patient_id=patient_id,
        patient=patient,
        resources=tuple(resources),
        medications=medications,
        draft_orders=drafts.orders,
        selections=drafts.selections,
        ignored=(*ignored, *drafts.ignored),
    )


def gather_drafts(patient_id: str, draft_orders: Any, selections: Iterable[str] = ()) -> DraftOrders:
    """context.draftOrders: the orders about this patient (or no one), and the Bundle's Medications."""
    drafts: list[Mapping[str, Any]] = []
    medications: dict[str, Mapping[str, Any]] = {}
    ignored: list[str] = []
    for resource in resources_in(draft_orders):
        rtype = resource.get("resourceType")
        if rtype == "Medication" and isinstance(resource.get("id"), str):
            medications[f"Medication/{resource['id']}"] = resource
            continue
        if rtype not in ORDER_TYPES and rtype != "MedicationStatement":
            continue
        owner = subject_id(resource)
        if owner is not None and owner != patient_id:
            ignored.append(f"draft {_label(rtype, resource.get('id'))}: not about this patient")
            continue
        drafts.append(resource)
    return DraftOrders(tuple(drafts), medications, frozenset(selections), tuple(ignored))
