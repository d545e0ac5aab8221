"""FHIR R4 resources for the 'create' actions of suggestion cards.

Codes come from the value sets (the first concept of a set is the one the
service orders with), so a hospital that ships its own ValueSet also changes
what is ordered. Texts inside a resource may be ``Text``; they are translated
when the card is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_mappings.valuesets import SNOMED, ValueSetIndex

from .i18n import Text

UCUM = "http://unitsofmeasure.org"
# Why the order is placed: recurrent miscarriage (SNOMED CT 102878001).
RPL_REASON = {"coding": [{"system": SNOMED, "code": "102878001", "display": "Recurrent miscarriage"}]}
ROUTES = {
    "vaginal": {"system": SNOMED, "code": "16857009", "display": "Vaginal route"},
    "oral": {"system": SNOMED, "code": "26643006", "display": "Oral route"},
    "subcutaneous": {"system": SNOMED, "code": "34206005", "display": "Subcutaneous route"},
}


@dataclass(frozen=True)
class Dose:
    text: Text
    mg: float | None  # None: the prescriber sets the dose (the catalogue names none)
    times_per_day: int
    route: str
    until: date | None = None


class OrderBuilder:
    def __init__(self, valuesets: ValueSetIndex, patient_id: str):
        self._valuesets = valuesets
        self._patient_id = patient_id

    def _code(self, concept: str, text: Text) -> dict[str, Any]:
        preferred = self._valuesets.preferred(concept)
        coding = {"system": preferred.system, "code": preferred.code}
        if preferred.display:
            coding["display"] = preferred.display
        return {"coding": [coding], "text": text}

    def service_request(self, concept: str, text: Text, reason: dict | None = RPL_REASON) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "code": self._code(concept, text),
            "subject": {"reference": f"Patient/{self._patient_id}"},
        }
        if reason is not None:
            resource["reasonCode"] = [reason]
        return resource

    def medication_request(self, concept: str, text: Text, dose: Dose, reason: dict | None = RPL_REASON) -> dict[str, Any]:
        timing: dict[str, Any] = {"repeat": {"frequency": dose.times_per_day, "period": 1, "periodUnit": "d"}}
        if dose.until is not None:
            timing["repeat"]["boundsPeriod"] = {"end": dose.until.isoformat()}
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": self._code(concept, text),
            "subject": {"reference": f"Patient/{self._patient_id}"},
            "dosageInstruction": [
                {
                    "text": dose.text,
                    "timing": timing,
                    "route": {"coding": [ROUTES[dose.route]]},
                }
            ],
        }
        if dose.mg is not None:
            resource["dosageInstruction"][0]["doseAndRate"] = [
                {"doseQuantity": {"value": dose.mg, "unit": "mg", "system": UCUM, "code": "mg"}}
            ]
        if reason is not None:
            resource["reasonCode"] = [reason]
        return resource
