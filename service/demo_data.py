"""Synthetic demo patients for testers, as FHIR R4 transaction Bundles.

Every resource has a stable id and is written with PUT, so loading a patient
twice (``rpl-cds load-demo``) updates it instead of duplicating it. Dates are
built relative to an evaluation date (``today``): a pregnancy that is 9 weeks
along today is still 9 weeks along when a tester loads the demo next month.
The JSON files in ``service/demo/`` are the same bundles dated as of
``REFERENCE_DATE``, for reading; ``load-demo`` re-dates them to the real date.

All data are invented. Codes come from ``fhir_mappings/valuesets`` (a test
checks that every coded clinical resource is recognised by the service).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any

from cards.catalog import CATALOGUE
from cards.orders import UCUM
from fhir_mappings.valuesets import ATC, ICD10, ICD10CM, LOINC, RXNORM, SNOMED

REFERENCE_DATE = date(2026, 11, 23)  # the date of the shipped JSON files

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DEMO_TAG = {"system": "http://rpl-cds.org/fhir/CodeSystem/demo", "code": "rpl-cds-demo", "display": "rpl-cds synthetic demo data"}
_UUID_NS = uuid.UUID("6d1f9a52-8f0e-4c1b-9a57-2f4a2b0c9d31")

HOOKS = ("patient-view", "order-select", "order-sign")
# Each patient lists every card it gets on each hook (the README's demo table shows the same
# lists; tests/test_demo_patients.py checks both against the service's real answers).
CHECKED_IDS = frozenset(CATALOGUE)


# -- small builders -------------------------------------------------------------
class _Builder:
    """Resources of one demo patient: stable ids '<patient>-<suffix>', dates relative to today."""

    def __init__(self, pid: str, today: date):
        self.pid = pid
        self.today = today
        self.items: list[dict[str, Any]] = []

    def day(self, days_ago: int) -> str:
        return (self.today - timedelta(days=days_ago)).isoformat()

    def _add(self, resource: dict[str, Any]) -> dict[str, Any]:
        head = {"resourceType": resource.pop("resourceType"), "id": resource.pop("id"), "meta": {"tag": [DEMO_TAG]}}
        resource = {**head, **resource}
        self.items.append(resource)
        return resource

    def _subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def patient(self, given: str, family: str, age_years: int, *, language: str = "en") -> None:
        born = date(self.today.year - age_years - ((self.today.month, self.today.day) < (3, 14)), 3, 14)
        self._add({
            "resourceType": "Patient",
            "id": self.pid,
            "identifier": [{"system": "http://rpl-cds.org/fhir/NamingSystem/demo-patient", "value": self.pid}],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": "female",
            "birthDate": born.isoformat(),
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]}}],
        })

    def condition(self, suffix: str, system: str, code: str, display: str, days_ago: int | None,
                  *, active: bool = True) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "id": f"{self.pid}-{suffix}",
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active" if active else "resolved"}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
            "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
            "subject": self._subject(),
        }
        if days_ago is not None:
            resource["onsetDateTime"] = self.day(days_ago)
            resource["recordedDate"] = self.day(days_ago)
            if not active:
                resource["abatementDateTime"] = self.day(max(days_ago - 7, 0))
        self._add(resource)

    def observation(self, suffix: str, loinc: str, display: str, days_ago: int, *, category: str = "laboratory",
                    system: str = LOINC, **value: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"{self.pid}-{suffix}",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
            "code": {"coding": [{"system": system, "code": loinc, "display": display}], "text": display},
            "subject": self._subject(),
            "effectiveDateTime": self.day(days_ago),
        }
        resource.update(value)
        return self._add(resource)

    def lab(self, suffix: str, loinc: str, display: str, days_ago: int, value: float, unit: str, ucum: str,
            low: float | None, high: float | None, flag: str | None = None) -> None:
        rng: dict[str, Any] = {}
        if low is not None:
            rng["low"] = {"value": low, "unit": unit, "system": UCUM, "code": ucum}
        if high is not None:
            rng["high"] = {"value": high, "unit": unit, "system": UCUM, "code": ucum}
        extra: dict[str, Any] = {
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum},
            "referenceRange": [rng],
        }
        if flag:
            extra["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
        self.observation(suffix, loinc, display, days_ago, **extra)

    def losses(self, count: int, days_ago: int) -> None:
        self.observation("losses", "11614-5", "[#] Abortions.spontaneous", days_ago, category="social-history",
                         valueQuantity={"value": count, "unit": "{#}", "system": UCUM, "code": "{#}"})

    def apl_panel(self, suffix: str, days_ago: int, *, positive: Iterable[str] = ()) -> None:
        """The five antiphospholipid antibody tests on one day; 'positive' names the positive ones."""
        positive = set(positive)
        la = "lupus-anticoagulant" in positive
        self.observation(
            f"{suffix}-la", "3284-7", "Lupus anticoagulant [Presence] in Platelet poor plasma", days_ago,
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "10828004" if la else "260385009",
                                              "display": "Positive" if la else "Negative"}]},
            interpretation=[{"coding": [{"system": INTERPRETATION, "code": "POS" if la else "NEG"}]}],
        )
        for test, loinc, display in (
            ("acl-igg", "3181-5", "Cardiolipin IgG Ab [Units/volume] in Serum"),
            ("acl-igm", "3182-3", "Cardiolipin IgM Ab [Units/volume] in Serum"),
            ("b2gp-igg", "44448-9", "Beta 2 glycoprotein 1 IgG Ab [Units/volume] in Serum"),
            ("b2gp-igm", "44449-7", "Beta 2 glycoprotein 1 IgM Ab [Units/volume] in Serum"),
        ):
            hit = test in positive
            self.lab(f"{suffix}-{test}", loinc, display, days_ago, 62.0 if hit else 4.0, "U/mL", "U/mL",
                     None, 20.0, "H" if hit else "N")

    def tsh(self, suffix: str, days_ago: int, value: float) -> None:
        flag = "H" if value > 4.0 else "L" if value < 0.4 else "N"
        self.lab(suffix, "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", days_ago, value, "mIU/L",
                 "m[IU]/L", 0.4, 4.0, flag)

    def ft4_pmol(self, suffix: str, days_ago: int, value: float) -> None:
        flag = "L" if value < 12.0 else "H" if value > 22.0 else "N"
        self.lab(suffix, "14920-3", "Thyroxine (T4) free [Moles/volume] in Serum or Plasma", days_ago, value,
                 "pmol/L", "pmol/L", 12.0, 22.0, flag)

    def medication(self, suffix: str, system: str, code: str, display: str, days_ago: int, dosage: str) -> None:
        self._add({
            "resourceType": "MedicationRequest",
            "id": f"{self.pid}-{suffix}",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": system, "code": code, "display": display}],
                                          "text": display},
            "subject": self._subject(),
            "authoredOn": self.day(days_ago),
            "dosageInstruction": [{"text": dosage}],
        })


# -- the patients -----------------------------------------------------------------
def _unexplained(b: _Builder) -> None:
    b.patient("Anna", "Demo-Unexplained", 32)
    b.condition("miscarriage-1", SNOMED, "17369002", "Miscarriage", 420, active=False)
    b.condition("miscarriage-2", SNOMED, "17369002", "Miscarriage", 150, active=False)
    b.losses(2, 100)


def _aps(b: _Builder) -> None:
    b.patient("Bea", "Demo-APS", 35)
    for n, days in enumerate((900, 600, 320), start=1):
        b.condition(f"miscarriage-{n}", SNOMED, "17369002", "Miscarriage", days, active=False)
    b.condition("rpl", SNOMED, "102878001", "Recurrent miscarriage", 250)
    b.losses(3, 250)
    # Positive lupus anticoagulant and anticardiolipin IgG, twice, 14 weeks apart: persistent.
    b.apl_panel("apl-1", 200, positive=("lupus-anticoagulant", "acl-igg"))
    b.apl_panel("apl-2", 102, positive=("lupus-anticoagulant", "acl-igg"))
    b.tsh("tsh", 200, 2.1)


def _subclinical(b: _Builder) -> None:
    b.patient("Carla", "Demo-Subclinical", 30)
    b.condition("miscarriage-1", SNOMED, "17369002", "Miscarriage", 500, active=False)
    b.condition("miscarriage-2", SNOMED, "17369002", "Miscarriage", 180, active=False)
    b.losses(2, 90)
    b.apl_panel("apl-1", 60)
    b.tsh("tsh", 30, 6.5)
    b.ft4_pmol("ft4", 30, 15.2)


def _overt(b: _Builder) -> None:
    b.patient("Dina", "Demo-Overt", 34)
    b.condition("miscarriage-1", SNOMED, "17369002", "Miscarriage", 640, active=False)
    b.condition("miscarriage-2", SNOMED, "17369002", "Miscarriage", 210, active=False)
    b.losses(2, 90)
    b.apl_panel("apl-1", 60)
    b.tsh("tsh", 20, 14.8)
    b.ft4_pmol("ft4", 20, 7.9)


def _pregnant_bleeding(b: _Builder) -> None:
    """E8.6b: new intra-uterine pregnancy of 9+0 weeks today, bleeding, after three miscarriages."""
    b.patient("Eva", "Demo-Pregnant", 33)
    for n, days in enumerate((1000, 700, 380), start=1):
        b.condition(f"miscarriage-{n}", SNOMED, "17369002", "Miscarriage", days, active=False)
    b.condition("rpl", SNOMED, "102878001", "Recurrent miscarriage", 300)
    b.losses(3, 300)
    b.apl_panel("apl-1", 280)
    b.tsh("tsh", 280, 1.8)
    b.condition("pregnancy", SNOMED, "77386006", "Pregnant", 35)
    b.observation("preg-test", "2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine", 35,
                  valueCodeableConcept={"coding": [{"system": SNOMED, "code": "10828004", "display": "Positive"}]})
    # Ultrasound 3 days ago at 8+4 weeks: intra-uterine, heart activity, CRL 19 mm.
    b.observation("ga", "11884-4", "Gestational age Estimated", 3, category="exam",
                  valueQuantity={"value": 60, "unit": "d", "system": UCUM, "code": "d"})
    b.condition("intrauterine", SNOMED, "65727000", "Intrauterine pregnancy", 3)
    b.observation("crl", "11957-8", "Crown rump length US", 3, category="imaging",
                  valueQuantity={"value": 19, "unit": "mm", "system": UCUM, "code": "mm"})
    b.observation("heart", "11948-7", "Fetal heart rate US", 3, category="imaging",
                  valueQuantity={"value": 168, "unit": "/min", "system": UCUM, "code": "/min"})
    b.condition("bleeding", SNOMED, "723665008", "Vaginal bleeding complicating early pregnancy", 1)


def _ectopic(b: _Builder) -> None:
    """E8.6c: progesterone is active although the pregnancy is ectopic."""
    b.patient("Fleur", "Demo-Ectopic", 29)
    b.condition("miscarriage-1", SNOMED, "17369002", "Miscarriage", 540, active=False)
    b.condition("miscarriage-2", SNOMED, "17369002", "Miscarriage", 260, active=False)
    b.losses(2, 200)
    b.apl_panel("apl-1", 180)
    b.tsh("tsh", 180, 2.4)
    b.condition("pregnancy", SNOMED, "77386006", "Pregnant", 20)
    b.observation("ga", "11884-4", "Gestational age Estimated", 2, category="exam",
                  valueQuantity={"value": 43, "unit": "d", "system": UCUM, "code": "d"})
    b.condition("bleeding", SNOMED, "723665008", "Vaginal bleeding complicating early pregnancy", 9)
    b.medication("progesterone", RXNORM, "8727", "progesterone 200 mg vaginal capsule", 8,
                 "200 mg vaginally once daily")
    b.condition("ectopic", SNOMED, "34801009", "Ectopic pregnancy", 1)


def _single(b: _Builder) -> None:
    b.patient("Greet", "Demo-Single", 31)
    b.condition("miscarriage-1", SNOMED, "17369002", "Miscarriage", 45, active=False)
    b.losses(1, 40)


def _us_coded(b: _Builder) -> None:
    """Coded like the public HAPI server's Synthea data: ICD-10-CM diagnoses, RxNorm drugs."""
    b.patient("Hannah", "Demo-USCoded", 36)
    b.condition("miscarriage-1", ICD10CM, "O03.9", "Complete or unspecified spontaneous abortion without complication",
                760, active=False)
    b.condition("miscarriage-2", ICD10CM, "O03.9", "Complete or unspecified spontaneous abortion without complication",
                330, active=False)
    b.condition("rpl", ICD10CM, "N96", "Recurrent pregnancy loss", 300)
    b.medication("progesterone", RXNORM, "8727", "progesterone", 60, "100 mg vaginally twice daily")


def _dutch(b: _Builder) -> None:
    """Coded like a Dutch hospital: ICD-10 (WHO), ATC drug codes, FT4 in pmol/L, Dutch texts."""
    b.patient("Ilse", "Demo-Nederland", 37, language="nl")
    b.condition("miscarriage-1", ICD10, "O03.9", "Spontane abortus, volledig of niet gespecificeerd, zonder complicatie",
                820, active=False)
    b.condition("miscarriage-2", ICD10, "O02.1", "Missed abortion", 480, active=False)
    b.condition("miscarriage-3", ICD10, "O03.9", "Spontane abortus, volledig of niet gespecificeerd, zonder complicatie",
                190, active=False)
    b.condition("rpl", ICD10, "N96", "Habituele abortus", 150)
    b.tsh("tsh", 40, 2.6)
    b.ft4_pmol("ft4", 40, 16.4)
    b.medication("progesterone", ATC, "G03DA04", "Progesteron 200 mg vaginale capsule (Utrogestan)", 30,
                 "2 dd 200 mg vaginaal")


# -- draft orders for the order hooks -------------------------------------------------
def draft_progesterone() -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "demo-draft-progesterone",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "8727", "display": "progesterone"}],
                                      "text": "Progesterone 200 mg vaginal"},
        "dosageInstruction": [{
            "text": "200 mg vaginally twice daily",
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 200, "unit": "mg", "system": UCUM, "code": "mg"}}],
        }],
    }


def draft_ivig() -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "demo-draft-ivig",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "J06BA02",
                                                  "display": "Immunoglobulins, normal human, for intravascular adm."}],
                                      "text": "Intravenous immunoglobulin (IVIg)"},
    }


DRAFTS: dict[str, Callable[[], dict[str, Any]]] = {"progesterone": draft_progesterone, "ivig": draft_ivig}


def draft_bundle(names: Iterable[str] = ("progesterone", "ivig")) -> dict[str, Any]:
    """Draft orders as a collection Bundle (the form `rpl-cds call --draft` reads)."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": DRAFTS[n]()} for n in names]}


# -- the catalogue of demo patients ---------------------------------------------------
@dataclass(frozen=True)
class DemoPatient:
    id: str
    scenario: str
    build: Callable[[_Builder], None]
    # The scenario's cards per hook (order hooks: with both demo drafts, progesterone and
    # IVIg, selected); exact for CHECKED_IDS.
    expected: dict[str, frozenset[str]]
    notes: str = ""

    def resources(self, today: date) -> list[dict[str, Any]]:
        builder = _Builder(self.id, today)
        self.build(builder)
        return builder.items

    def bundle(self, today: date) -> dict[str, Any]:
        return transaction(self.resources(today))


# The counselling a woman with RPL gets, not pregnant, within 12 months of her last loss.
COUNSELLING = frozenset({"C", "E1", "E5.6", "E8.5", "S1"})


def _cards(pv: Iterable[str], orders: Iterable[str]) -> dict[str, frozenset[str]]:
    orders = frozenset(orders)
    return {"patient-view": frozenset(pv), "order-select": orders, "order-sign": orders}


PATIENTS: tuple[DemoPatient, ...] = (
    DemoPatient(
        "rpl-demo-unexplained",
        "Two miscarriages (unexplained RPL), no work-up yet",
        _unexplained,
        _cards(COUNSELLING | {"D3.2", "D5.1a", "D6"}, {"E8.2", "E8.6a"}),
    ),
    DemoPatient(
        "rpl-demo-aps",
        "Three miscarriages; lupus anticoagulant and anticardiolipin IgG positive twice, 14 weeks apart (APS criteria met)",
        _aps,
        _cards(COUNSELLING | {"D6", "E3.2"}, {"E8.2", "E8.6a"}),
        notes="IVIg gets the E8.2 warning although the RPL is explained (APS): catalogue version 2 warns in every RPL.",
    ),
    DemoPatient(
        "rpl-demo-subclinical-hypothyroid",
        "Two miscarriages; TSH 6.5 mIU/L with normal FT4 (subclinical hypothyroidism); aPL negative",
        _subclinical,
        _cards(COUNSELLING | {"D6", "E5.1b"}, {"E8.2", "E8.6a"}),
    ),
    DemoPatient(
        "rpl-demo-overt-hypothyroid",
        "Two miscarriages; TSH 14.8 mIU/L and FT4 7.9 pmol/L (overt hypothyroidism); aPL negative",
        _overt,
        _cards(COUNSELLING | {"D6", "E5.1a"}, {"E8.2", "E8.6a"}),
    ),
    DemoPatient(
        "rpl-demo-pregnant-bleeding",
        "Three miscarriages; new intra-uterine pregnancy of 9 weeks with heart activity and vaginal bleeding",
        _pregnant_bleeding,
        _cards({"E8.6b"}, {"E8.2", "E8.6b"}),
        notes="The progesterone draft gets no E8.6a warning; E8.6b offers the endorsed dose instead. No S2: the "
              "pregnancy is past 8 weeks and has had its scan. No counselling: the last loss is over 12 months ago.",
    ),
    DemoPatient(
        "rpl-demo-ectopic",
        "Two miscarriages; pregnancy of 6 weeks now diagnosed as ectopic, progesterone still active",
        _ectopic,
        _cards({"C", "E8.6c", "S1"}, {"E8.2", "E8.6c"}),
        notes="In a pregnancy, even an ectopic one, no preconception card (E1, E5.6, E8.5).",
    ),
    DemoPatient(
        "rpl-demo-single-miscarriage",
        "One miscarriage six weeks ago (no RPL)",
        _single,
        _cards({"S1", "S3"}, set()),
        notes="No RPL: no work-up suggested and no warnings.",
    ),
    DemoPatient(
        "rpl-demo-us-coded",
        "US coding as on the public HAPI server (Synthea-like): ICD-10-CM O03.9 twice and N96, RxNorm progesterone active",
        _us_coded,
        _cards(COUNSELLING | {"D3.2", "D5.1a", "D6", "E8.6a"}, {"E8.2", "E8.6a"}),
    ),
    DemoPatient(
        "rpl-demo-dutch",
        "Dutch coding: ICD-10 (WHO) O03.9/O02.1 and N96, ATC progesterone active, FT4 in pmol/L",
        _dutch,
        _cards(COUNSELLING | {"D3.2", "D6", "E8.6a"}, {"E8.2", "E8.6a"}),
    ),
)

BY_ID = {p.id: p for p in PATIENTS}


def transaction(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle of PUTs with the resources' own ids: loading it twice is idempotent."""
    entries = []
    for resource in items:
        ref = f"{resource['resourceType']}/{resource['id']}"
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid5(_UUID_NS, ref)}",
            "resource": resource,
            "request": {"method": "PUT", "url": ref},
        })
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bundles(today: date, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Patient id -> transaction Bundle, dated relative to today."""
    chosen = [BY_ID[i] for i in ids] if ids else list(PATIENTS)
    return {p.id: p.bundle(today) for p in chosen}


def shipped_bundle(patient_id: str) -> dict[str, Any]:
    """The JSON file shipped in service/demo/ (dated as of REFERENCE_DATE)."""
    text = resources.files("service").joinpath("demo", f"{patient_id}.json").read_text(encoding="utf-8")
    return json.loads(text)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"

