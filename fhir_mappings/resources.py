"""The one place that imports fhir.resources.

fhir.resources 8 models FHIR R5 by default; its R4B package is compatible with
R4 for every resource read here. Models are used to validate the resources a
rule actually reads (after a cheap filter on their codes), and of those only the
elements the rules read (READ_ELEMENTS), never the whole record: validation
costs about 0.13 ms per resource even when slim. A ResourceParser with a cache
validates the same content only once (see there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .json_limits import InputLimitError, JsonLimits, check_json
from .lru import BoundedLru

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


def parse(resource: Mapping[str, Any]) -> Any:
    """Validate the elements the rules read of one raw resource with its R4B model;
    raise InvalidResource."""
    model, slim = _slim(resource)
    return _validate(model, slim)


def _slim(resource: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The model for the resource's type and the elements of it the rules read."""
    resource_type = resource.get("resourceType", "")
    model = MODELS.get(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        raise InvalidResource(f"unsupported resource type {resource.get('resourceType')!r}")
    read = READ_ELEMENTS[resource_type]
    slim = {key: value for key, value in resource.items() if key in read}
    slim["resourceType"] = resource_type
    if "id" in resource:
        slim["id"] = resource["id"]
    return model, slim


def _validate(model: Any, slim: dict[str, Any]) -> Any:
    try:
        return model.model_validate(slim)
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidResource(f"{slim['resourceType']}/{str(slim.get('id'))[:64]}: {_short(exc)}") from None


# How deep a resource of a prefetch Bundle lies in a hook call: body, prefetch, Bundle, entry
# array, entry. Its elements are checked against the depth limit from there.
RESOURCE_DEPTH = 5


class ResourceParser:
    """parse(), after checking the input limits on the elements read, remembering the
    outcome for the content it was given (a bounded LRU cache).

    An EHR sends the same resources again and again: every order-select while a
    clinician picks orders, patient-view at every chart opening, often the whole
    lab history each time. Validating a resource costs about 0.1 ms, serialising
    the elements read to use them as the key a few microseconds. The key is the
    exact JSON of those elements (type and id included), so a hit is the same
    input and gives the same answer as parse(); invalid ones are remembered as
    invalid. The models are shared between requests and threads: nothing may
    change them (no code here does; they are read only). max_entries=0 validates
    every time (RPL_VALIDATION_CACHE_SIZE).

    The limits (RPL_MAX_JSON_DEPTH, RPL_MAX_STRING_LENGTH) are checked here, on
    what a rule reads, for the resources the request envelope check does not look
    into (service.protocol.load_json); beyond them: InputLimitError, a 400.
    """

    def __init__(self, max_entries: int = 0, limits: JsonLimits = JsonLimits()):
        self.max_entries = max_entries
        self.limits = limits
        self._entries = BoundedLru(max_entries)

    def parse(self, resource: Mapping[str, Any]) -> Any:
        """As parse(): the validated model, or InvalidResource; InputLimitError beyond a limit."""
        model, slim = _slim(resource)
        if not self.max_entries:
            return self._checked(model, slim)
        try:
            key = orjson.dumps(slim)
        except (orjson.JSONEncodeError, TypeError):  # too deep for orjson, or a caller's own objects
            return self._checked(model, slim)
        found = self._entries.get(key)
        if found is None:
            try:
                found = self._checked(model, slim)
            except (InvalidResource, InputLimitError) as exc:
                found = _Invalid(type(exc), str(exc))
            self._entries.put(key, found)
        if type(found) is _Invalid:
            raise found.error(found.message)
        return found

    def _checked(self, model: Any, slim: dict[str, Any]) -> Any:
        try:
            check_json(slim, self.limits, RESOURCE_DEPTH)
        except InputLimitError as exc:
            raise InputLimitError(f"{slim['resourceType']}/{str(slim.get('id'))[:64]}: {exc}") from None
        return _validate(model, slim)

    def validated(self, resource: Mapping[str, Any]) -> Any:
        """The validated model, or None when the resource is invalid where a rule would read it
        (InputLimitError goes through: beyond a limit, the call is refused)."""
        try:
            return self.parse(resource)
        except InvalidResource:
            return None

    def __len__(self) -> int:
        return len(self._entries)


class _Invalid:
    """A remembered InvalidResource or InputLimitError (the exception itself is not shared
    between threads: a new one is raised each time)."""

    __slots__ = ("error", "message")

    def __init__(self, error: type[Exception], message: str):
        self.error, self.message = error, message


UNCACHED = ResourceParser(0)


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
