"""Medications by reference: the Medication resources the patient's orders point to.

Epic and most EHRs send ``MedicationRequest.medicationReference`` (and the same
in MedicationStatement) to a separate Medication resource. The prefetch
templates ask for them (``_include=MedicationRequest:medication``); a
Medication contained in the order, or sent in the draftOrders Bundle, is used
as it is. What is still missing is read here from the call's fhirServer,
through the same client (allowlist, URL checks, the call's deadline and byte
budget, token) as the prefetch, in parallel.

A Medication that cannot be had (no fhirServer, not found, the server
unreachable or refusing) leaves its order unknown: the facts list it in
``unresolved_medications``, the rules do not suggest starting a treatment the
patient may already take (cards/timing.py), and the audit line counts it. The
call itself still answers: a warning about a known order stays worth giving.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import wait
from typing import Any

from fhir_mappings.orders import medication_key
from fhir_mappings.record import resources_in, subject_id

from .fhir_budget import CallBudget
from .fhir_client import FhirClients, FhirError

log = logging.getLogger(__name__)

ORDER_TYPES = frozenset({"MedicationRequest", "MedicationStatement"})
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# At most this many Medications are read per call: a record with more unknown medications
# than this is an error of the data, not a reason to send hundreds of reads.
MAX_READS = 32


def missing_medications(patient_id: str, values: Iterable[Any], draft_orders: Any, fhir_server: str | None) -> list[str]:
    """'Medication/id' of the Medications the patient's orders reference and the data lacks, in
    order of appearance; only references the call's fhirServer can answer (relative ones, or
    absolute ones on that server)."""
    known: set[str] = set()
    wanted: dict[str, None] = {}
    base = (fhir_server or "").rstrip("/")
    for value in (*values, draft_orders):
        for resource in resources_in(value):
            rtype = resource["resourceType"]
            if rtype == "Medication":
                if type(resource.get("id")) is str:
                    known.add(f"Medication/{resource['id']}")
            elif rtype in ORDER_TYPES and "medicationCodeableConcept" not in resource:
                owner = subject_id(resource)
                if owner is not None and owner != patient_id:
                    continue
                reference = resource.get("medicationReference")
                key = medication_key(reference)
                if key is None or not FHIR_ID.match(key.removeprefix("Medication/")):
                    continue
                ref = reference["reference"]
                if "://" in ref and ref.split("/Medication/")[0].rstrip("/") != base:
                    continue  # on another server: never read from this one
                wanted[key] = None
    return [key for key in wanted if key not in known]


def fetch_medications(
    references: list[str],
    fhir_server: str | None,
    token: str | None,
    clients: FhirClients,
    budget: CallBudget | None = None,
) -> dict[str, Any] | None:
    """A collection Bundle of the Medications read from fhirServer, in parallel on the server's
    own threads and within the call's budget (deadline, bytes; service/fhir_budget.py) as the
    prefetch's reads; None when nothing was read."""
    if not references or not fhir_server:
        return None
    wanted = references[:MAX_READS]
    budget = budget or clients.budget()
    found: list[Mapping[str, Any]] = []
    try:
        client = clients.for_server(fhir_server)
        with client.call_slot(budget):
            futures = [(ref, client.executor.submit(client.read, ref, token, budget)) for ref in wanted]
            wait([f for _, f in futures], timeout=budget.left())
            if not all(f.done() for _, f in futures):
                budget.expire()  # cuts the reads still running
            for ref, future in futures:
                if future.cancel() or not future.done():
                    continue
                try:
                    medication = future.result()
                except FhirError:
                    continue
                # A 404/410 gives None; anything but the Medication asked for is not used.
                if isinstance(medication, dict) and f"{medication.get('resourceType')}/{medication.get('id')}" == ref:
                    found.append(medication)
    except FhirError as exc:
        log.warning("referenced Medications not read: %s", exc)
    if len(found) < len(references):
        log.warning("%d of %d referenced Medications could not be read", len(references) - len(found), len(references))
    if not found:
        return None
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": m} for m in found]}


def referenced_medications(
    patient_id: str,
    data: Mapping[str, Any],
    draft_orders: Any,
    fhir_server: str | None,
    token: str | None,
    clients: FhirClients,
    budget: CallBudget | None = None,
) -> dict[str, Any] | None:
    """The Medications the call's orders reference and its data lacks, read from fhirServer."""
    missing = missing_medications(patient_id, data.values(), draft_orders, fhir_server)
    return fetch_medications(missing, fhir_server, token, clients, budget) if missing else None
