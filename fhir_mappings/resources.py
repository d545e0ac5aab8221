"""The one place that imports fhir.resources.

fhir.resources 8 models FHIR R5 by default; its R4B package is compatible with
R4 for every resource read here. Models are used to validate the resources a
rule actually reads (after a cheap filter on their codes), and of those only the
elements the rules read (READ_ELEMENTS), never the whole record: validation
costs about 0.13 ms per resource even when slim.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

MODELS = {
    model.__name__: model
    for model in (
        Condition,
        DiagnosticReport,
        Medication,
        MedicationRequest,
        MedicationStatement,
        Observation,
        Patient,
        Procedure,
        ServiceRequest,
    )
}


class InvalidResource(ValueError):
    """A resource that does not conform to FHIR R4 where a rule would read it."""


# The elements the rules read, per resource type. Only these are validated (and the
# model holds only these): a resource's narrative, identifiers, meta, notes and
# extensions cost validation time and no rule looks at them.
READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"birthDate"}),
    "Observation": frozenset({
        "status", "code", "subject", "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued",
        "valueQuantity", "valueString", "valueInteger", "valueBoolean", "valueCodeableConcept", "valueDateTime",
        "interpretation", "referenceRange",
    }),
    "Condition": frozenset({
        "code", "subject", "clinicalStatus", "verificationStatus", "onsetDateTime", "onsetPeriod", "recordedDate",
        "severity",
    }),
    "MedicationRequest": frozenset({
        "status", "intent", "subject", "medicationCodeableConcept", "medicationReference", "dosageInstruction",
        "reasonCode", "reasonReference",
    }),
    "MedicationStatement": frozenset({
        "status", "subject", "medicationCodeableConcept", "medicationReference", "dosage", "reasonCode",
        "reasonReference",
    }),
    "ServiceRequest": frozenset({"status", "intent", "subject", "code", "reasonCode", "reasonReference"}),
    "Procedure": frozenset({"status", "subject", "code", "performedDateTime", "performedPeriod"}),
    "DiagnosticReport": frozenset({"status", "subject", "code", "effectiveDateTime", "effectivePeriod", "issued"}),
    "Medication": frozenset({"code"}),
}


def parse(resource: dict[str, Any]) -> Any:
    """Validate the elements the rules read of one raw resource with its R4B model;
    raise InvalidResource."""
    resource_type = resource.get("resourceType", "")
    model = MODELS.get(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        raise InvalidResource(f"unsupported resource type {resource.get('resourceType')!r}")
    read = READ_ELEMENTS[resource_type]
    slim = {key: value for key, value in resource.items() if key in read}
    slim["resourceType"] = resource_type
    if "id" in resource:
        slim["id"] = resource["id"]
    try:
        return model.model_validate(slim)
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidResource(f"{resource.get('resourceType')}/{resource.get('id')}: {_short(exc)}") from None


def validate_create(resource: dict[str, Any]) -> None:
    """Check a whole resource the service itself builds (suggestion 'create' actions)."""
    model = MODELS[resource["resourceType"]]
    try:
        model.model_validate(resource)
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidResource(_short(exc)) from None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}"
    return str(exc)[:200]
