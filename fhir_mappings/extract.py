"""PatientRecord (raw FHIR) -> PatientFacts: the one entry point for the rules.

Pure: the evaluation date (``today``) and settings are passed in. Each
resource is first classified on its raw codes (a dictionary lookup); only
resources that some rule reads are validated with their fhir.resources model.

Data hygiene (recommendations.md, "Definitions used by every rule"):
- Conditions refuted or entered-in-error are ignored; so are unconfirmed,
  provisional and differential ones (a rule must not fire on a suspicion), and
  a Condition without clinicalStatus is not taken as active.
- Observations entered-in-error, cancelled, registered (no result yet) or
  unknown are ignored, and so is a preliminary result superseded by a final
  one of the same test and date. Results dated in the future are ignored.
- A lab value whose unit cannot be interpreted is kept aside as unusable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from .conditions import condition_facts, last_loss, loss_count
from .facts import ConditionFact, PatientFacts, UncheckedOrder
from .fhir_values import Validate, as_date, raw_reference, raw_str
from .labs import (
    APL_TESTS, LAB_TESTS, LATEST_ONLY, antibody_history, lab_results, latest, newest_usable, smoking,
)
from .orders import (
    ORDER_STATUS_ON_RECORD, STATEMENT_STATUS_ACTIVE, OrderLookup, medication_taken, names_no_medication, order_fact,
    order_on_record, unresolved_medication,
)
from .pregnancy import PREGNANCY_OBSERVATIONS, findings_of, pregnancy_facts
from .record import PatientRecord
from .resources import UNCACHED, ResourceParser
from .settings import ExtractionSettings
from .valuesets import ValueSetIndex

# -- which value sets each part of the record is read for ----------------------
# "homocysteine": no fact of its own, but an order citing such a result is what E5.7 is about,
# so the prefetch asks for these results too.
OBSERVATION_SETS = frozenset(
    {*LAB_TESTS, *PREGNANCY_OBSERVATIONS, "spontaneous-abortions-count", "smoking-status", "homocysteine"}
)
READ_OBSERVATION_SETS = OBSERVATION_SETS - {"homocysteine"}  # only cited, never read as a fact
CONDITION_SETS = frozenset(
    {
        "recurrent-pregnancy-loss",
        "miscarriage",
        "missed-miscarriage",
        "antiphospholipid-syndrome",
        "thrombophilia-other-icd10",
        "hypothyroidism",
        "pregnancy",
        "early-pregnancy-bleeding",
        "ectopic-pregnancy",
        "hereditary-thrombophilia",
        "chromosomal-cause",
        "diabetes",
        "second-trimester-loss",
        "anembryonic-pregnancy",
        "intrauterine-pregnancy",
        "molar-pregnancy",
        "non-visualised-pregnancy-loss",
    }
)
PROCEDURE_SETS = frozenset({"uterine-imaging", "karyotype", "pregnancy-tissue-genetics"})
# Procedures done, and imaging reports issued, count as performed.
DONE_STATUS = {
    "Procedure": frozenset({"completed", "in-progress"}),
    "DiagnosticReport": frozenset({"final", "amended", "corrected", "appended"}),
}

VALID_OBSERVATION_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})
# The orders on record whose medication must be known (order_on_record, by type).
_ON_RECORD_STATUS = {
    "MedicationRequest": ORDER_STATUS_ON_RECORD,
    "MedicationStatement": STATEMENT_STATUS_ACTIVE,
    "ServiceRequest": frozenset(),
}


@dataclass(frozen=True)
class RecordFacts:
    """The facts of a patient's record before this call's draft orders, with what the facts
    of the drafts read from the record; what fhir_mappings.facts_cache remembers."""

    facts: PatientFacts  # draft_orders is empty
    medications: Mapping[str, Mapping[str, Any]]  # "Medication/id" -> Medication
    cited: Mapping[str, frozenset[str]]  # "Type/id" -> value sets of the resource's code


def extract(
    record: PatientRecord,
    valuesets: ValueSetIndex,
    today: date,
    settings: ExtractionSettings = ExtractionSettings(),
    parser: ResourceParser = UNCACHED,
) -> PatientFacts:
    """Turn one patient's raw FHIR data into the facts every rule reads; parser validates
    the resources read (the service's one remembers them, see ResourceParser)."""
    known = extract_record(record, valuesets, today, settings, parser)
    return with_drafts(known, record.draft_orders, record.selections, valuesets, parser)


def with_drafts(
    known: RecordFacts,
    drafts: Iterable[Mapping[str, Any]],
    selections: frozenset[str],
    valuesets: ValueSetIndex,
    parser: ResourceParser = UNCACHED,
) -> PatientFacts:
    """The facts of a record with this call's draft orders (context.draftOrders)."""
    lookup = OrderLookup(known.medications, known.cited, selections)
    drafts = tuple(drafts)
    orders = tuple(
        order
        for raw in drafts
        if (order := order_fact(raw, lookup, valuesets, parser.validated, draft=True)) is not None
    )
    unknown = tuple(ref for raw in drafts if (ref := unresolved_medication(raw, known.medications)) is not None)
    unchecked = tuple(u for raw in drafts if (u := unchecked_draft(raw, known.medications, selections)) is not None)
    if not orders and not unknown and not unchecked:
        return known.facts
    return replace(known.facts, draft_orders=orders,
                   unresolved_medications=(*known.facts.unresolved_medications, *unknown),
                   unchecked_drafts=unchecked)


# A draft withdrawn in the same session is no order to check.
DRAFT_STATUS_WITHDRAWN = frozenset({"entered-in-error", "cancelled", "revoked", "not-taken"})


def unchecked_draft(raw: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]],
                    selections: frozenset[str]) -> UncheckedOrder | None:
    """A draft medication order whose medicine cannot be told: its Medication could not be read,
    or it names none. The rules cannot judge it, and a card says so (cards/unchecked_orders.py)."""
    if not isinstance(raw, Mapping) or raw.get("status") in DRAFT_STATUS_WITHDRAWN:
        return None
    missing = unresolved_medication(raw, medications)
    if missing is None and not names_no_medication(raw, medications):
        return None
    reference = raw_reference(raw)
    return UncheckedOrder(reference, missing, selected=reference in selections)


def extract_record(
    record: PatientRecord,
    valuesets: ValueSetIndex,
    today: date,
    settings: ExtractionSettings = ExtractionSettings(),
    parser: ResourceParser = UNCACHED,
) -> RecordFacts:
    """The facts of the record's own resources; its draft orders are left to with_drafts."""
    validated = parser.validated
    classify = valuesets.classify
    observations: list[tuple[frozenset[str], Any]] = []
    conditions: list[ConditionFact] = []
    procedures: list[tuple[frozenset[str], Any]] = []
    order_raws: list[Mapping[str, Any]] = []
    latest_only: dict[str, list[Mapping[str, Any]]] = {}
    cited: dict[str, frozenset[str]] = {}
    for raw in record.resources:
        rtype = raw.get("resourceType")
        names = classify(raw.get("code"))
        rid = raw.get("id")
        # What an order citing this resource as its reason (reasonReference) reads of it. String
        # ids are unique in a record (gather); of other ids (not FHIR), the last one counts.
        if rid and (names or type(rid) is not str):
            cited[raw_reference(raw)] = names
        if rtype == "Observation":
            if not names:  # most of a long lab history: no value set at all
                continue
            names &= READ_OBSERVATION_SETS
            if not names or raw_str(raw, "status") not in VALID_OBSERVATION_STATUS:
                continue
            if len(names) == 1 and (test := next(iter(names))) in LATEST_ONLY:
                latest_only.setdefault(test, []).append(raw)  # validated below, newest first
            elif (model := validated(raw)) is not None:
                observations.append((names, model))
        elif rtype == "Condition":
            names &= CONDITION_SETS
            if names:
                conditions.extend(condition_facts(names, raw, validated))
        elif rtype in ("Procedure", "DiagnosticReport"):
            names &= PROCEDURE_SETS
            if names and raw_str(raw, "status") in DONE_STATUS[rtype]:
                model = validated(raw)
                if model is not None:
                    procedures.append((names, model))
        elif rtype in ("MedicationRequest", "MedicationStatement", "ServiceRequest"):
            order_raws.append(raw)  # after the loop, when every resource an order may cite is known
    lookup = OrderLookup(record.medications, cited)
    classified = [
        (raw, order)
        for raw in order_raws
        if (order := order_fact(raw, lookup, valuesets, validated, draft=False)) is not None
    ]
    orders = [order for raw, order in classified if order_on_record(raw, order)]
    medication_history = tuple(order for raw, order in classified if medication_taken(raw, order))
    unresolved = tuple(
        ref
        for raw in order_raws
        if raw_str(raw, "status") in _ON_RECORD_STATUS[raw.get("resourceType")]
        and (ref := unresolved_medication(raw, record.medications)) is not None
    )

    for test, raws in latest_only.items():
        observations.extend(newest_usable(test, raws, today, settings, validated))
    labs, unusable = lab_results(observations, today, settings)
    findings = findings_of(observations, procedures, today)
    conditions_t = tuple(conditions)
    facts = PatientFacts(
        patient_id=record.patient_id,
        today=today,
        age_years=_age(record.patient, today, validated),
        loss_count=loss_count(observations, conditions_t, findings, today, settings),
        rpl_diagnosis=_first_source(c for c in conditions_t if c.concept == "recurrent-pregnancy-loss" and c.active),
        antibodies=tuple(antibody_history(test, labs) for test in APL_TESTS),
        tsh=latest(labs, "tsh"),
        ft4=latest(labs, "free-t4"),
        tpo=latest(labs, "tpo-antibodies"),
        lab_history=tuple(labs),
        unusable_results=tuple(unusable),
        conditions=conditions_t,
        pregnancy=pregnancy_facts(observations, conditions_t, findings, today),
        orders=tuple(orders),
        medication_history=medication_history,
        findings=findings,
        smoking_current=smoking(observations, valuesets),
        bmi=latest(labs, "bmi"),
        gender=raw_str(record.patient, "gender") if record.patient else None,
        last_loss=last_loss(conditions_t, today),
        unresolved_medications=unresolved,
    )
    return RecordFacts(facts, record.medications, cited)



def _first_source(conditions: Iterable[ConditionFact]) -> str | None:
    for condition in conditions:
        return condition.source
    return None


def _age(patient: Mapping[str, Any] | None, today: date, validated: Validate) -> int | None:
    if not patient:
        return None
    model = validated(patient)
    if model is None:
        return None
    born = as_date(model.birthDate)
    if born is None or born > today:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

