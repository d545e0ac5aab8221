"""CDS Hooks 2.0 shapes as pydantic models: the request, the hook contexts,
the response cards, discovery and feedback.

Incoming models accept extra fields (the spec lets hooks grow and reserves
``extension``); outgoing models are exact and are dumped without None, so no
null or empty field ever leaves the service.
"""

from __future__ import annotations

import orjson
import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fhir_mappings.json_limits import InputLimitError, JsonLimits, check_bundle_shell, check_json

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
USER_PATIENT_VIEW = re.compile(r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$")
USER_ORDERING = re.compile(r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$")
REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


# -- limits on hostile input, checked right after parsing ---------------------------------
def load_json(raw: bytes, limits: JsonLimits) -> Any:
    """Parse with orjson, then check the limits on everything but the insides of the
    resources in prefetch Bundles (their elements are checked when a rule reads them,
    by fhir_mappings.resources.ResourceParser, and the rest is never looked into).

    orjson (a well-kept C parser) reads a 175 kB hook call in about 0.7 ms where the
    standard library needs about 1.4 ms. Checking depth after parsing is safe: the
    body size is capped before (RPL_MAX_BODY_BYTES), and orjson refuses more than
    1024 levels by itself. A pass over every value of a 175 kB call cost 1.1-1.5 ms,
    mostly spent on lab results no rule reads (benchmark, issue #7).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops at 1024 levels by itself
            raise InputLimitError(f"the JSON body is nested deeper than {limits.max_depth} levels") from None
        raise
    _check_known_bundles(data, limits)
    prefetch = data.get("prefetch") if type(data) is dict else None
    if type(prefetch) is not dict:
        check_json(data, limits)
        return data
    check_json({k: v for k, v in data.items() if k != "prefetch"}, limits)
    for key, value in prefetch.items():
        if len(key) > limits.max_string_length:
            raise InputLimitError(f"a key longer than {limits.max_string_length} characters")
        if type(value) is dict and value.get("resourceType") == "Bundle":
            check_bundle_shell(value, limits, depth=3)  # body -> prefetch -> the Bundle
        else:
            check_json(value, limits, depth=2)
    return data


def _check_known_bundles(data: Any, limits: JsonLimits) -> None:
    """Bundle size where the service reads Bundles, with the path in the message."""
    if type(data) is not dict:
        return
    places = []
    if type(data.get("context")) is dict:
        places.append(("context.draftOrders", data["context"].get("draftOrders")))
    if type(data.get("prefetch")) is dict:
        places += [(f"prefetch.{key[:40]}", value) for key, value in data["prefetch"].items()]
    for where, value in places:
        if type(value) is dict and value.get("resourceType") == "Bundle":
            entries = value.get("entry", [])
            if type(entries) is list and len(entries) > limits.max_bundle_entries:
                raise InputLimitError(f"{where}: a Bundle with more than {limits.max_bundle_entries} entries")


class _In(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def dump_json(self) -> bytes:
        """The same as JSON, written by pydantic-core (no Python-level encoder)."""
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)


# -- request ---------------------------------------------------------------------
class FhirAuthorization(_In):
    access_token: str = Field(min_length=1)
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0)
    scope: str
    subject: str
    patient: str | None = None

    def __repr__(self) -> str:  # never print a token
        return f"FhirAuthorization(subject={self.subject!r}, scope={self.scope!r})"

    __str__ = __repr__


class HookRequest(_In):
    hook: str = Field(min_length=1)
    hookInstance: str
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, dict[str, Any] | None] | None = None

    @field_validator("hookInstance")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError("must be a UUID") from None
        return value

    @field_validator("fhirServer")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _auth_needs_server(self) -> HookRequest:
        if self.fhirAuthorization is not None and not self.fhirServer:
            raise ValueError("fhirServer is required when fhirAuthorization is given")
        return self


def _patient_id(value: str) -> str:
    """Accept '123' and 'Patient/123'; return the bare id."""
    if value.startswith("Patient/"):
        value = value[len("Patient/") :]
    if not FHIR_ID.match(value):
        raise ValueError("must be a FHIR id, as '123' or 'Patient/123'")
    return value


class PatientViewContext(_In):
    userId: str
    patientId: str
    encounterId: str | None = None

    @field_validator("userId")
    @classmethod
    def _user(cls, value: str) -> str:
        if not USER_PATIENT_VIEW.match(value):
            raise ValueError("must be Practitioner/, PractitionerRole/, Patient/ or RelatedPerson/ followed by an id")
        return value

    @field_validator("patientId")
    @classmethod
    def _patient(cls, value: str) -> str:
        return _patient_id(value)

    @field_validator("encounterId")
    @classmethod
    def _encounter(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.removeprefix("Encounter/")
            if not FHIR_ID.match(value):
                raise ValueError("must be a FHIR id")
        return value


class OrderSignContext(PatientViewContext):
    draftOrders: dict[str, Any]

    @field_validator("userId")
    @classmethod
    def _user(cls, value: str) -> str:
        if not USER_ORDERING.match(value):
            raise ValueError("must be Practitioner/ or PractitionerRole/ followed by an id")
        return value

    @field_validator("draftOrders")
    @classmethod
    def _bundle(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("resourceType") != "Bundle":
            raise ValueError("must be a FHIR Bundle")
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            raise ValueError("entry must be an array")
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise ValueError(f"entry[{index}] has no resource")
            # A draft may come without an id (the public sandbox sends them so): it is still
            # judged, but it cannot be selected, nor removed by a suggestion.
            if "id" in resource and not (isinstance(resource["id"], str) and FHIR_ID.match(resource["id"])):
                raise ValueError(f"entry[{index}].resource.id is not a valid FHIR id")
        return value

    def draft_references(self) -> set[str]:
        return {
            f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
            for entry in self.draftOrders.get("entry", [])
            if "id" in entry["resource"]
        }


class OrderSelectContext(OrderSignContext):
    selections: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _selections_in_drafts(self) -> OrderSelectContext:
        drafts = self.draft_references()
        for selection in self.selections:
            if not REFERENCE.match(selection):
                raise ValueError(f"selections: {selection!r} is not a reference such as MedicationRequest/123")
            if selection not in drafts:
                raise ValueError(f"selections: {selection!r} is not in draftOrders")
        return self


CONTEXTS: dict[str, type[PatientViewContext]] = {
    "patient-view": PatientViewContext,
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
}


def validation_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    """Readable 'where: what' lines from a pydantic error, without echoing input values."""
    messages = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        messages.append(f"{prefix}{where}: {message}" if where else f"{prefix.rstrip('.')}: {message}")
    return messages


# -- response -----------------------------------------------------------------------
class Coding(_Out):
    system: str
    code: str
    display: str | None = None


class Source(_Out):
    label: str = Field(min_length=1)
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(_Out):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(_Out):
    label: str = Field(min_length=1)
    uuid: str
    isRecommended: bool | None = None
    actions: list[Action] | None = None


class Link(_Out):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class Card(_Out):
    uuid: str
    summary: str = Field(min_length=1, max_length=139)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None
    extension: dict[str, Any] | None = None  # CDS Hooks "Extensions": org.rpl-cds.carried-ids

    @model_validator(mode="after")
    def _spec_rules(self) -> Card:
        if self.suggestions and not self.selectionBehavior:
            raise ValueError("suggestions need selectionBehavior")
        for reason in self.overrideReasons or []:
            if not reason.display:
                raise ValueError("override reasons need a display")
        return self


class CdsResponse(_Out):
    cards: list[Card]


class ServiceDescriptor(_Out):
    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class Discovery(_Out):
    services: list[ServiceDescriptor]


# -- feedback -----------------------------------------------------------------------
class AcceptedSuggestion(_In):
    id: str = Field(min_length=1)


class FeedbackCoding(_In):
    code: str
    system: str
    display: str | None = None


class OverrideReasonFeedback(_In):
    reason: FeedbackCoding | None = None
    userComment: str | None = Field(None, max_length=10_000)


class FeedbackItem(_In):
    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReasonFeedback | None = None
    outcomeTimestamp: datetime

    @field_validator("outcomeTimestamp", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if not isinstance(value, str) or not re.match(
            r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value
        ):
            raise ValueError("must be an RFC 3339 date-time such as 2021-12-11T10:05:31Z")
        return value

    @model_validator(mode="after")
    def _accepted_needs_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is accepted")
        return self


class FeedbackRequest(_In):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=1000)
