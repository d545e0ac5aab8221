"""The one place that imports fhir.resources.

fhir.resources 8 models FHIR R5 by default; its R4B package is compatible with
R4 for every resource read here. Models are used to validate the resources a
rule actually reads (after a cheap filter on their codes), never the whole
record, because full validation costs about 0.2 ms per resource.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.condition import Condition
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


def parse(resource: dict[str, Any]) -> Any:
    """Validate one raw resource with its R4B model; raise InvalidResource."""
    model = MODELS.get(resource.get("resourceType", ""))
    if model is None:
        raise InvalidResource(f"unsupported resource type {resource.get('resourceType')!r}")
    try:
        return model.model_validate(resource)
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidResource(f"{resource.get('resourceType')}/{resource.get('id')}: {_short(exc)}") from None


def validate_create(resource: dict[str, Any]) -> None:
    """Check a resource the service itself builds (suggestion 'create' actions)."""
    parse(resource)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}"
    return str(exc)[:200]
