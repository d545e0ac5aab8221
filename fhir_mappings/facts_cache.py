"""The facts of a record seen before, remembered by its exact content.

An EHR sends the same record again and again: at every order-select while a
clinician picks orders, then at order-sign, with only the draft orders changing.
Gathering the record and extracting its facts is most of a call's own work
(issue #7), so the facts of the record are remembered (a bounded LRU) and only
the draft orders are read anew at every call.

The key is everything the record's facts depend on: the patient id, the
evaluation date, and the exact JSON of what gather reads of each prefetch value
(a Bundle's entries, or the resource itself), in order, with the Medications of
the draftOrders Bundle (an order on record may reference one). The Medications
the service read by reference (service/medications.py) come as one more value,
so a record whose Medication could not be read is not remembered as the same
record once it can. The same key is
the same input, so a hit gives what extract() would; the value sets, settings
and validation of one runtime never change. What is shared between calls is
read only: the facts are frozen, and of the request's resources only the
record's Medications are kept (for draft orders that reference one), with the
MedicationRequests on record of the rules' drug classes (OrderFact.resource, which
a card may send back updated: E8.6c stops a running progesterone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import orjson

from .extract import RecordFacts, extract_record, with_drafts
from .facts import PatientFacts
from .lru import BoundedLru
from .record import DraftOrders, gather_drafts, gather_record
from .resources import ResourceParser
from .settings import ExtractionSettings
from .valuesets import ValueSetIndex

# The keys are the records' JSON: bounded in bytes too, so that records near the body limit
# (RPL_MAX_BODY_BYTES, 5 MB) cannot make a worker hold hundreds of MB. 64 records of 160 kB
# (the benchmark's heavy patient) take 10 MB.
MAX_KEY_BYTES = 32 * 1024 * 1024


class FactsCache:
    """gather + extract for one runtime, remembering the facts of the last max_entries records
    (RPL_FACTS_CACHE_SIZE; 0 remembers none) whose keys take at most max_key_bytes."""

    def __init__(
        self,
        max_entries: int,
        valuesets: ValueSetIndex,
        settings: ExtractionSettings,
        parser: ResourceParser,
        max_key_bytes: int = MAX_KEY_BYTES,
    ):
        self.valuesets = valuesets
        self.settings = settings
        self.parser = parser
        self._entries = BoundedLru(max_entries, max_key_bytes)

    def facts(
        self,
        patient_id: str,
        values: Sequence[Any],
        today: date,
        draft_orders: Any = None,
        selections: Iterable[str] = (),
    ) -> PatientFacts:
        """The facts of the prefetch values and this call's draft orders, as extract(gather(...))."""
        drafts = gather_drafts(patient_id, draft_orders, selections)
        key = record_key(patient_id, today, values, drafts) if self._entries.max_entries else None
        known = self._entries.get(key) if key is not None else None
        if known is None:
            known = self._extract(patient_id, values, today, drafts)
            if key is not None:
                self._entries.put(key, known, weight=key_bytes(key))
        return with_drafts(known, drafts.orders, drafts.selections, self.valuesets, self.parser)

    def _extract(self, patient_id: str, values: Sequence[Any], today: date, drafts: DraftOrders) -> RecordFacts:
        record = gather_record(patient_id, values, drafts)
        return extract_record(record, self.valuesets, today, self.settings, self.parser)

    def __len__(self) -> int:
        return len(self._entries)


def key_bytes(key: tuple) -> int:
    return sum(len(part[1]) for part in key if type(part) is tuple)


def record_key(patient_id: str, today: date, values: Sequence[Any], drafts: DraftOrders) -> tuple | None:
    """What the facts of a record depend on, as a hashable key; None when it cannot be made
    (JSON too deep for orjson): then nothing is remembered."""
    parts: list[Any] = [patient_id, today]
    try:
        for value in values:
            if type(value) is dict and value.get("resourceType") == "Bundle":
                # Of a Bundle, gather reads only the entries: not its id, meta or links, which a
                # FHIR server makes anew for every search.
                parts.append(("Bundle", orjson.dumps(value.get("entry"))))
            else:
                parts.append(("value", orjson.dumps(value)))
        if drafts.medications:
            parts.append(("draft Medications", orjson.dumps(list(drafts.medications.values()))))
    except (orjson.JSONEncodeError, TypeError):
        return None
    return tuple(parts)
