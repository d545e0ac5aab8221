"""FHIR R4 resources for the 'create' actions of suggestion cards.

Tests (ServiceRequest): codes come from the value sets (the first concept of
a set is the one the service orders with), so a hospital that ships its own
ValueSet also changes what is ordered.

Medications (MedicationRequest): order templates, JSON files in
``order-templates/`` (one per template, named by its ``id``): per region
(``RPL_REGION`` nl/be/us) the product with its codings (ATC and RxNorm in the
shipped files) and dose, the route and frequency, and the reasonCode. A
hospital puts files of the same shape in ``RPL_ORDER_TEMPLATES_DIR``: a file
whose ``id`` matches a shipped template replaces the fields it gives (its
``products`` region by region), so G-Standaard or local codes need no code
change. A new ``id`` is ignored: only the rules decide what is ordered.

Texts inside a resource may be ``Text``; they are translated when the card is
rendered. Dosage text is in the prescription style of the card language
(Dutch "2 dd 400 mg vaginaal", English "400 mg vaginally twice daily").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fhir_mappings.valuesets import SNOMED, ValueSetIndex

from .i18n import Localized, Quantity, Text, _

SHIPPED_TEMPLATES_DIR = Path(__file__).parent / "order-templates"
REGIONS = ("nl", "be", "us")
Region = Literal["nl", "be", "us"]

UCUM = "http://unitsofmeasure.org"
# Why the order is placed: recurrent miscarriage (SNOMED CT 102878001).
RPL_REASON = {"coding": [{"system": SNOMED, "code": "102878001", "display": "Recurrent miscarriage"}]}
ROUTE_TEXTS = {"vaginal": _("vaginally"), "oral": _("by mouth"), "subcutaneous": _("subcutaneously")}
FREQUENCY_TEXTS = {1: _("once daily"), 2: _("twice daily"), 3: _("three times daily")}
ROUTES = {
    "vaginal": {"system": SNOMED, "code": "16857009", "display": "Vaginal route"},
    "oral": {"system": SNOMED, "code": "26643006", "display": "Oral route"},
    "subcutaneous": {"system": SNOMED, "code": "34206005", "display": "Subcutaneous route"},
}


class OrderTemplateError(ValueError):
    """An order template file that cannot be used; raised at start-up, never per call."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TemplateCoding(_Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class Product(_Strict):
    text: str = Field(min_length=1)
    coding: tuple[TemplateCoding, ...] = Field(min_length=1)
    dose_mg: float | None = Field(None, alias="doseMg", gt=0)


class TemplateDosage(_Strict):
    route: Literal["vaginal", "oral", "subcutaneous"]
    times_per_day: int = Field(alias="timesPerDay", ge=1, le=3)
    dose_text: dict[str, str] | None = Field(None, alias="doseText")  # when no dose in mg: language -> text
    note: dict[str, str] | None = None  # language -> text, after the dose


class OrderTemplate(_Strict):
    id: str
    recommendations: tuple[str, ...] = ()
    about: str = ""
    reason_code: tuple[dict[str, Any], ...] = Field((), alias="reasonCode")
    dosage: TemplateDosage
    products: dict[Region, Product]


class OrderTemplates:
    """The order templates of this deployment (shipped, then the hospital's), for one region."""

    def __init__(self, templates: Mapping[str, OrderTemplate], region: Region):
        for template in templates.values():
            if region not in template.products:
                raise OrderTemplateError(f"order template {template.id}: no product for region {region}")
        self._templates = dict(templates)
        self.region = region

    def __getitem__(self, template_id: str) -> OrderTemplate:
        return self._templates[template_id]

    def product(self, template_id: str) -> Product:
        return self._templates[template_id].products[self.region]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._templates))

    @classmethod
    def load(cls, region: Region = "nl", hospital_dir: Path | str | None = None) -> OrderTemplates:
        shipped = {path: _read(path) for path in sorted(SHIPPED_TEMPLATES_DIR.glob("*.json"))}
        templates: dict[str, dict[str, Any]] = {}
        for path, data in shipped.items():
            templates[data.get("id") or path.stem] = data
        if hospital_dir is not None:
            folder = Path(hospital_dir)
            if not folder.is_dir():
                raise OrderTemplateError(f"order template folder {folder} does not exist")
            for path in sorted(folder.glob("*.json")):
                local = _read(path)
                template_id = local.get("id")
                if template_id not in templates:
                    raise OrderTemplateError(f"{path}: id {template_id!r} is not a shipped order template ({', '.join(sorted(templates))})")
                merged = {**templates[template_id], **{k: v for k, v in local.items() if k != "products"}}
                merged["products"] = {**templates[template_id].get("products", {}), **local.get("products", {})}
                templates[template_id] = merged
        parsed = {}
        for template_id, data in templates.items():
            try:
                parsed[template_id] = OrderTemplate.model_validate(data)
            except ValidationError as exc:
                raise OrderTemplateError(f"order template {template_id}: {exc}") from None
        return cls(parsed, region)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OrderTemplateError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise OrderTemplateError(f"{path}: not a JSON object")
    return data


@dataclass(frozen=True)
class MedicationOrder:
    resource: dict[str, Any]
    product: str  # the product's text, as ordered
    dosage: Text  # the dosage in the card language's prescription style


def order_description(order: MedicationOrder) -> Text:
    """The create action's description: the product as ordered and its dosage."""
    return Text(_("%(product)s: %(dosage)s"), {"product": order.product, "dosage": order.dosage})


def dosage_text(template: OrderTemplate, product: Product, until: date | None = None) -> Text:
    """'2 dd 400 mg vaginaal tot 12-03-2027' / '400 mg vaginally twice daily until 12 Mar 2027'."""
    dosage = template.dosage
    if product.dose_mg is not None:
        dose: Any = Quantity(float(product.dose_mg), "mg")
    else:
        dose = Localized(dosage.dose_text or {"en": "dose as prescribed", "nl": "dosis volgens voorschrift"})
    text = Text(_("%(dose)s %(route)s %(frequency)s"), {
        "dose": dose,
        "route": Text(ROUTE_TEXTS[dosage.route]),
        "frequency": Text(FREQUENCY_TEXTS[dosage.times_per_day]),
    })
    if until is not None:
        text = Text(_("%(dosage)s until %(date)s"), {"dosage": text, "date": until})
    if dosage.note:
        text = Text(_("%(dosage)s; %(note)s"), {"dosage": text, "note": Localized(dosage.note)})
    return text


class OrderBuilder:
    def __init__(self, valuesets: ValueSetIndex, patient_id: str, templates: OrderTemplates | None = None):
        self._valuesets = valuesets
        self._patient_id = patient_id
        self._templates = templates if templates is not None else OrderTemplates.load()

    def medication_order(self, template_id: str, until: date | None = None) -> MedicationOrder:
        """A draft MedicationRequest from an order template, for this deployment's region."""
        template = self._templates[template_id]
        product = self._templates.product(template_id)
        text = dosage_text(template, product, until)
        repeat: dict[str, Any] = {"frequency": template.dosage.times_per_day, "period": 1, "periodUnit": "d"}
        if until is not None:
            repeat["boundsPeriod"] = {"end": until.isoformat()}
        instruction: dict[str, Any] = {
            "text": text,
            "timing": {"repeat": repeat},
            "route": {"coding": [ROUTES[template.dosage.route]]},
        }
        if product.dose_mg is not None:
            instruction["doseAndRate"] = [
                {"doseQuantity": {"value": product.dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}
            ]
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [c.model_dump(exclude_none=True) for c in product.coding],
                "text": product.text,
            },
            "subject": {"reference": f"Patient/{self._patient_id}"},
            "dosageInstruction": [instruction],
        }
        if template.reason_code:
            resource["reasonCode"] = [dict(r) for r in template.reason_code]
        return MedicationOrder(resource=resource, product=product.text, dosage=text)

    def _code(self, concept: str, text: Text) -> dict[str, Any]:
        preferred = self._valuesets.preferred(concept)
        coding = {"system": preferred.system, "code": preferred.code}
        if preferred.display:
            coding["display"] = preferred.display
        return {"coding": [coding], "text": text}

    def service_request(self, concept: str, text: Text, reason: dict | None = RPL_REASON,
                        reason_references: tuple[str, ...] = ()) -> dict[str, Any]:
        """A draft ServiceRequest; ``reason_references`` name the record's findings it is for
        (the abnormal karyotype of a genetic-counselling referral, the abnormal TSH of a free T4)."""
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "code": self._code(concept, text),
            "subject": {"reference": f"Patient/{self._patient_id}"},
        }
        if reason is not None:
            resource["reasonCode"] = [reason]
        references = [r for r in reason_references if "/" in r]
        if references:
            resource["reasonReference"] = [{"reference": r} for r in references]
        return resource
