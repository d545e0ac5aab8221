"""Small builders for FHIR R4 test data and CDS Hooks requests (realistic shapes, few lines)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

# Code systems, re-exported so test modules import all test data from here.
from cards.orders import UCUM  # noqa: F401
from fhir_mappings.valuesets import ATC, ICD10, ICD10CM, LOINC, RXNORM, SNOMED  # noqa: F401

PID = "pat-1"
_ids = itertools.count(1)

PREFETCH_KEYS = {
    "Condition": "conditions",
    "Observation": "observations",
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
    "ServiceRequest": "serviceRequests",
    "Procedure": "procedures",
    "DiagnosticReport": "diagnosticReports",
}


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def patient(pid: str = PID, birth: str = "1990-05-01", gender: str = "female") -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth}


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def condition(system: str, code: str, *, pid: str = PID, clinical: str | None = "active",
              verification: str | None = "confirmed", onset: str | None = None, rid: str | None = None,
              severity: str | None = None, display: str | None = None) -> dict:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid or _id("cond"),
        "code": {"coding": [coding(system, code, display)]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if clinical:
        res["clinicalStatus"] = {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)]}
    if verification:
        res["verificationStatus"] = {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)]}
    if onset:
        res["onsetDateTime"] = onset
    if severity:
        res["severity"] = {"coding": [coding(SNOMED, severity)]}
    return res


def observation(code: str, *, system: str = LOINC, pid: str = PID, value: float | None = None, unit: str | None = None,
                date: str = "2026-06-01", status: str = "final", interpretation: str | None = None,
                low: float | None = None, high: float | None = None, string: str | None = None,
                concept: tuple[str, str] | None = None, rid: str | None = None, comparator: str | None = None,
                integer: int | None = None, boolean: bool | None = None, date_value: str | None = None) -> dict:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid or _id("obs"),
        "status": status,
        "code": {"coding": [coding(system, code)]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": date,
    }
    if value is not None:
        q: dict[str, Any] = {"value": value}
        if unit:
            q.update(unit=unit, system=UCUM, code=unit)
        if comparator:
            q["comparator"] = comparator
        res["valueQuantity"] = q
    if string is not None:
        res["valueString"] = string
    if integer is not None:
        res["valueInteger"] = integer
    if boolean is not None:
        res["valueBoolean"] = boolean
    if date_value is not None:
        res["valueDateTime"] = date_value
    if concept is not None:
        res["valueCodeableConcept"] = {"coding": [coding(*concept)]}
    if interpretation:
        res["interpretation"] = [{"coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", interpretation)]}]
    if low is not None or high is not None:
        rng: dict[str, Any] = {}
        if low is not None:
            rng["low"] = {"value": low, "unit": unit, "system": UCUM, "code": unit}
        if high is not None:
            rng["high"] = {"value": high, "unit": unit, "system": UCUM, "code": unit}
        res["referenceRange"] = [rng]
    return res


def medication_request(system: str, code: str, *, pid: str = PID, status: str = "draft", rid: str | None = None,
                       display: str | None = None, dose_mg: float | None = None, per_day: int = 1) -> dict:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid or _id("medrx"),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"coding": [coding(system, code, display)]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if dose_mg is not None:
        res["dosageInstruction"] = [{
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
        }]
    return res


def service_request(system: str, code: str, *, pid: str = PID, status: str = "draft", rid: str | None = None,
                    display: str | None = None) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": rid or _id("sr"),
        "status": status,
        "intent": "order",
        "code": {"coding": [coding(system, code, display)]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def carried_ids(card: dict) -> list[str]:
    """The catalogue rows a response card carries (a merged card: several), its topic first."""
    return (card.get("extension") or {}).get("org.rpl-cds.carried-ids") or [card["source"]["topic"]["code"]]


# Rows that always ride on another row's card (C's points, D1 on E1, S3 on E8.5, the partner's
# lifestyle D7/E7 on C) and the merged work-up topic D: a list of the rows shown leaves them out.
SUB_ROWS = frozenset({"C1.1", "C1.2", "C1.3", "C2.1", "C2.2", "C2.3", "C2.4", "C2.5", "C2.6", "D1", "D7", "E7", "S3", "D"})


def listed_rows(card: dict) -> list[str]:
    """The catalogue rows a card shows, as the demo table lists them (a merged card: each part)."""
    ids = carried_ids(card)
    return ids if len(ids) == 1 else [i for i in ids if i not in SUB_ROWS]


def procedure(system: str, code: str, *, pid: str = PID, status: str = "completed", date: str = "2026-05-01",
              rid: str | None = None) -> dict:
    """A Procedure done (e.g. uterine imaging)."""
    return {"resourceType": "Procedure", "id": rid or _id("proc"), "status": status,
            "code": {"coding": [coding(system, code)]}, "subject": {"reference": f"Patient/{pid}"},
            "performedDateTime": date}


def bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"http://fhir.example.org/fhir/{r['resourceType']}/{r.get('id')}", "resource": r,
             "search": {"mode": "match"}}
            for r in resources
        ],
    }


def prefetch(*resources: dict, pid: str = PID, with_patient: bool = True, birth: str = "1990-05-01",
             gender: str = "female") -> dict:
    """A complete prefetch: every key of the services, resources sorted into their key."""
    grouped: dict[str, list[dict]] = {key: [] for key in PREFETCH_KEYS.values()}
    for resource in resources:
        grouped[PREFETCH_KEYS[resource["resourceType"]]].append(resource)
    data: dict[str, Any] = {"patient": patient(pid, birth, gender) if with_patient else None}
    data.update({key: bundle(*items) for key, items in grouped.items()})
    return data


def hook_request(hook: str, *resources: dict, pid: str = PID, drafts: tuple[dict, ...] = (),
                 selections: tuple[str, ...] | None = None, data: dict | None = None, **extra: Any) -> dict:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": pid}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts]}
    if hook == "order-select":
        context["selections"] = list(selections if selections is not None
                                     else [f"{d['resourceType']}/{d['id']}" for d in drafts])
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": data if data is not None else prefetch(*resources, pid=pid),
    }
    body.update(extra)
    return body


# -- common clinical data -------------------------------------------------------------
def rpl_diagnosis(**kw: Any) -> dict:
    return condition(SNOMED, "102878001", display="Recurrent miscarriage", **kw)


def losses(count: int, date: str = "2026-01-10", **kw: Any) -> dict:
    """Obstetric history: number of spontaneous abortions (LOINC 11614-5)."""
    return observation("11614-5", value=count, unit="{#}", date=date, **kw)


def miscarriage(onset: str, **kw: Any) -> dict:
    return condition(SNOMED, "17369002", onset=onset, clinical="resolved", display="Miscarriage", **kw)


APL_LOINC = {
    "lupus-anticoagulant": "3284-7",
    "anticardiolipin-igg": "3181-5",
    "anticardiolipin-igm": "3182-3",
    "anti-beta2-glycoprotein-igg": "44448-9",
    "anti-beta2-glycoprotein-igm": "44449-7",
}


def apl_panel(date: str, positive: tuple[str, ...] = ()) -> list[dict]:
    """One result for each of the five antiphospholipid tests, positive where named."""
    results = []
    for test, loinc in APL_LOINC.items():
        flag = "POS" if test in positive else "NEG"
        if test == "lupus-anticoagulant":
            results.append(observation(loinc, date=date, interpretation=flag,
                                       concept=(SNOMED, "10828004" if flag == "POS" else "260385009")))
        else:
            results.append(observation(loinc, date=date, value=60 if flag == "POS" else 5, unit="U/mL", high=20))
    return results


def tsh(value: float, date: str = "2026-06-01", unit: str = "mIU/L", **kw: Any) -> dict:
    return observation("3016-3", value=value, unit=unit, date=date, **kw)


def ft4(value: float, date: str = "2026-06-01", unit: str = "pmol/L", **kw: Any) -> dict:
    return observation("14920-3" if unit == "pmol/L" else "3024-7", value=value, unit=unit, date=date, **kw)


def progesterone_order(**kw: Any) -> dict:
    return medication_request(RXNORM, "8727", display="progesterone", **kw)


def ivig_order(**kw: Any) -> dict:
    return medication_request(ATC, "J06BA02", display="Immunoglobulins, normal human, for intravascular adm.", **kw)
