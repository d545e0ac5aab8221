"""The benchmark's workload: one realistic heavy patient and the hook requests for her.

A woman of 36 with three miscarriages, followed for years: about 300 Observations
(mostly routine labs that no rule reads, such as glucose, haemoglobin, cholesterol and
creatinine, plus a quarterly TSH/FT4 history, a TPO antibody test and two
antiphospholipid panels), 30 Conditions (mostly unrelated to pregnancy) and 20
MedicationRequests (mostly finished courses), one of them active progesterone, so
that the warning path runs on every hook. Built with tests/builders.py, dated
relative to the day of the run, so the rules see the same ages of results every day.

The same resources serve both modes: sorted into every prefetch key ("full
prefetch", as an EHR that sends whole lists does), or uploaded to a FHIR server as
one transaction Bundle, from which the service fetches them itself.
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make tests.builders importable
    sys.path.insert(0, str(ROOT))

from tests import builders as b  # noqa: E402

PATIENT_ID = "bench-heavy-1"
HOOKS = ("patient-view", "order-select", "order-sign")
OBSERVATIONS = 300

# Routine labs no rule reads: (LOINC, unit, typical value).
ROUTINE_LABS = (
    ("2345-7", "mg/dL", 92.0),  # glucose
    ("718-7", "g/dL", 13.1),  # haemoglobin
    ("2093-3", "mg/dL", 182.0),  # cholesterol
    ("2160-0", "mg/dL", 0.8),  # creatinine
    ("2085-9", "mg/dL", 58.0),  # HDL cholesterol
    ("13457-7", "mg/dL", 104.0),  # LDL cholesterol
    ("2571-8", "mg/dL", 110.0),  # triglycerides
    ("1742-6", "U/L", 21.0),  # ALT
    ("4548-4", "%", 5.3),  # HbA1c
    ("6690-2", "10*3/uL", 6.4),  # leukocytes
    ("777-3", "10*3/uL", 250.0),  # platelets
    ("2823-3", "mmol/L", 4.1),  # potassium
    ("2951-2", "mmol/L", 140.0),  # sodium
    ("1988-5", "mg/L", 2.0),  # CRP
    ("2276-4", "ng/mL", 45.0),  # ferritin
)

# Conditions no rule reads: (SNOMED code, display, clinical status).
OTHER_CONDITIONS = (
    ("38341003", "Hypertensive disorder", "active"),
    ("195967001", "Asthma", "active"),
    ("37796009", "Migraine", "active"),
    ("61582004", "Allergic rhinitis", "active"),
    ("235595009", "Gastroesophageal reflux disease", "active"),
    ("87522002", "Iron deficiency anemia", "resolved"),
    ("279039007", "Low back pain", "resolved"),
    ("197480006", "Anxiety disorder", "active"),
    ("43116000", "Eczema", "active"),
    ("11381005", "Acne", "resolved"),
    ("68566005", "Urinary tract infectious disease", "resolved"),
    ("36971009", "Sinusitis", "resolved"),
    ("90176007", "Tonsillitis", "resolved"),
    ("44465007", "Sprain of ankle", "resolved"),
    ("25064002", "Headache", "resolved"),
    ("193462001", "Insomnia", "active"),
    ("266599000", "Dysmenorrhea", "active"),
    ("38822007", "Cystitis", "resolved"),
    ("65363002", "Otitis media", "resolved"),
    ("444814009", "Viral sinusitis", "resolved"),
    ("10509002", "Acute bronchitis", "resolved"),
    ("40055000", "Chronic sinusitis", "active"),
    ("267036007", "Dyspnea", "resolved"),
    ("271737000", "Anemia", "resolved"),
    ("414916001", "Obesity", "active"),
    ("236071009", "Mild depression", "resolved"),
)

# MedicationRequests no rule reads: (RxNorm code, display, status).
OTHER_MEDICATIONS = (
    ("723", "amoxicillin", "completed"),
    ("5640", "ibuprofen", "completed"),
    ("161", "acetaminophen", "active"),
    ("435", "albuterol", "active"),
    ("20610", "cetirizine", "active"),
    ("7646", "omeprazole", "active"),
    ("4301", "ferrous sulfate", "completed"),
    ("7454", "nitrofurantoin", "completed"),
    ("3640", "doxycycline", "completed"),
    ("2551", "ciprofloxacin", "stopped"),
    ("41493", "meloxicam", "completed"),
    ("36437", "sertraline", "stopped"),
    ("10689", "tramadol", "completed"),
    ("6135", "ketoconazole", "completed"),
    ("7052", "morphine", "completed"),
    ("5492", "hydrocortisone", "completed"),
    ("8163", "phenylephrine", "completed"),
    ("3264", "dexamethasone", "completed"),
)


def heavy_resources(today: date) -> list[dict[str, Any]]:
    """The patient's record (without the Patient resource): 30 + 300 + 20 resources."""
    pid = PATIENT_ID

    def ago(days: int) -> str:
        return (today - timedelta(days=days)).isoformat()

    conditions = [
        b.rpl_diagnosis(pid=pid, onset=ago(300)),
        b.miscarriage(ago(1100), pid=pid),
        b.miscarriage(ago(700), pid=pid),
        b.miscarriage(ago(330), pid=pid),
        *(b.condition(b.SNOMED, code, pid=pid, clinical=status, display=display, onset=ago(200 + 97 * i))
          for i, (code, display, status) in enumerate(OTHER_CONDITIONS)),
    ]

    rule_labs = [
        b.losses(3, date=ago(300), pid=pid),
        b.observation("72166-2", pid=pid, date=ago(300), concept=(b.SNOMED, "266919005")),  # never smoked
        b.observation("8099-4", pid=pid, date=ago(290), value=12, unit="[IU]/mL", high=35),  # TPO antibodies
        *(obs for panel_day in (560, 470) for obs in _apl_panel(ago(panel_day), pid)),
    ]
    for i in range(24):  # quarterly thyroid follow-up for six years
        rule_labs.append(b.tsh(round(1.4 + (i % 5) * 0.45, 2), date=ago(30 + 91 * i), pid=pid, low=0.4, high=4.0))
        rule_labs.append(b.ft4(round(13.5 + (i % 4) * 1.1, 1), date=ago(30 + 91 * i), pid=pid, low=11.0, high=22.0))
    for i in range(6):
        rule_labs.append(b.observation("39156-5", pid=pid, date=ago(60 + 365 * i), value=round(27.5 - 0.3 * i, 1),
                                       unit="kg/m2"))
    routine = []
    draw = 0
    while len(rule_labs) + len(routine) < OBSERVATIONS:  # a routine lab panel about every ten weeks
        for loinc, unit, value in ROUTINE_LABS:
            if len(rule_labs) + len(routine) == OBSERVATIONS:
                break
            routine.append(b.observation(loinc, pid=pid, date=ago(20 + 70 * draw), unit=unit,
                                         value=round(value * (0.9 + 0.02 * (draw % 10)), 2)))
        draw += 1

    medications = [
        b.progesterone_order(pid=pid, status="active", dose_mg=200, per_day=2),
        b.medication_request("http://www.whocc.no/atc", "B03BB01", pid=pid, status="active", display="folic acid",
                             dose_mg=0.4),
        *(b.medication_request(b.RXNORM, code, pid=pid, status=status, display=display, dose_mg=100)
          for code, display, status in OTHER_MEDICATIONS),
    ]
    return conditions + rule_labs + routine + medications


def _apl_panel(day: str, pid: str) -> list[dict[str, Any]]:
    """builders.apl_panel for another patient id (it always writes the default subject)."""
    panel = b.apl_panel(day)
    for obs in panel:
        obs["subject"] = {"reference": f"Patient/{pid}"}
    return panel


def draft_orders() -> list[dict[str, Any]]:
    """Five draft orders for order-select and order-sign: discouraged, endorsed and neutral ones."""
    pid = PATIENT_ID
    return [
        b.ivig_order(pid=pid, rid="draft-ivig"),
        b.medication_request(b.RXNORM, "243670", pid=pid, rid="draft-aspirin", display="aspirin 81 MG Oral Tablet",
                             dose_mg=81),
        b.medication_request(b.RXNORM, "67108", pid=pid, rid="draft-enoxaparin", display="enoxaparin", dose_mg=40),
        b.medication_request(b.RXNORM, "8638", pid=pid, rid="draft-prednisolone", display="prednisolone",
                             dose_mg=10),
        b.service_request(b.LOINC, "62292-8", pid=pid, rid="draft-vitd", display="25-Hydroxyvitamin D2+D3"),
    ]


class Workload:
    """The heavy patient built once for a run: hook bodies (bytes) and the FHIR transaction Bundle."""

    def __init__(self, today: date):
        self.today = today
        self.resources = heavy_resources(today)
        self.patient = b.patient(PATIENT_ID, birth=(today - timedelta(days=36 * 365 + 100)).isoformat())
        self.drafts = draft_orders()

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
        return counts

    def request(self, hook: str, *, fhir_server: str | None = None, prefetch: bool = True) -> dict[str, Any]:
        """One hook request; without prefetch the service must fetch everything from fhir_server."""
        drafts = tuple(copy.deepcopy(self.drafts)) if hook != "patient-view" else ()
        selections = ("MedicationRequest/draft-ivig",) if hook == "order-select" else None
        data = b.prefetch(*self.resources, pid=PATIENT_ID, with_patient=False)
        data["patient"] = self.patient
        body = b.hook_request(hook, pid=PATIENT_ID, drafts=drafts, selections=selections, data=data)
        body["context"]["userId"] = "Practitioner/bench-gyn-1"
        if fhir_server:
            body["fhirServer"] = fhir_server
        if not prefetch:
            del body["prefetch"]
        return body

    def body(self, hook: str, **kw: Any) -> bytes:
        return json.dumps(self.request(hook, **kw)).encode()

    def transaction(self) -> dict[str, Any]:
        """The whole record as one FHIR transaction Bundle of PUTs (loading it twice is harmless)."""
        entries = []
        for resource in (self.patient, *self.resources):
            ref = f"{resource['resourceType']}/{resource['id']}"
            entries.append({"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ref)}", "resource": resource,
                            "request": {"method": "PUT", "url": ref}})
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


if __name__ == "__main__":  # a look at the workload: sizes per hook
    w = Workload(date.today())
    print(w.counts())
    for hook in HOOKS:
        print(hook, len(w.body(hook)), "bytes")
