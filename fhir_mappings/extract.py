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

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .facts import (
    AntibodyHistory,
    ConditionFact,
    Finding,
    Interpretation,
    LabResult,
    LossCount,
    LossCountSource,
    OrderFact,
    PatientFacts,
    PregnancyFacts,
)
from .record import PatientRecord, as_list
from .resources import InvalidResource, parse
from .units import convert
from .valuesets import SNOMED, ValueSetIndex

# -- which value sets each part of the record is read for ----------------------
APL_TESTS = (
    "lupus-anticoagulant",
    "anticardiolipin-igg",
    "anticardiolipin-igm",
    "anti-beta2-glycoprotein-igg",
    "anti-beta2-glycoprotein-igm",
)
QUALITATIVE_TESTS = frozenset({"karyotype", "pregnancy-tissue-genetics"})
LAB_TESTS = frozenset({*APL_TESTS, "tsh", "free-t4", "tpo-antibodies", "bmi", *QUALITATIVE_TESTS})
# Tests of which the rules read only the latest usable result: a long lab history
# of them is not validated beyond that result (speed; see _newest_usable).
LATEST_ONLY = frozenset({"tsh", "free-t4", "tpo-antibodies", "bmi"})
PREGNANCY_OBSERVATIONS = frozenset(
    {
        "gestational-age",
        "estimated-due-date",
        "pregnancy-status",
        "pregnancy-test",
        "crown-rump-length",
        "fetal-heart-activity",
        "gestational-sac-diameter",
        "intrauterine-pregnancy",
    }
)
OBSERVATION_SETS = frozenset(
    {*LAB_TESTS, *PREGNANCY_OBSERVATIONS, "spontaneous-abortions-count", "smoking-status"}
)
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
    }
)
PROCEDURE_SETS = frozenset({"uterine-imaging", "karyotype", "pregnancy-tissue-genetics"})

VALID_OBSERVATION_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})
ACTIVE_CLINICAL_STATUS = frozenset({"active", "recurrence", "relapse"})
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error", "unconfirmed", "provisional", "differential"})
ORDER_STATUS_ON_RECORD = frozenset({"active", "on-hold", "draft"})
STATEMENT_STATUS_ACTIVE = frozenset({"active", "intended"})

SEVERE = "24484000"  # SNOMED CT: Severe (severity)
POSITIVE_CODES = frozenset({"10828004", "260373001", "52101004"})  # positive, detected, present
NEGATIVE_CODES = frozenset({"260385009", "260415000", "2667000"})  # negative, not detected, absent
PREGNANT_CODES = frozenset({"77386006"})  # SNOMED CT: Pregnant
NOT_PREGNANT_CODES = frozenset({"60001007"})  # SNOMED CT: Not pregnant

INTERPRETATION_CODES = {
    "H": Interpretation.HIGH, "HH": Interpretation.HIGH, "HU": Interpretation.HIGH, ">": Interpretation.HIGH,
    "L": Interpretation.LOW, "LL": Interpretation.LOW, "LU": Interpretation.LOW, "<": Interpretation.LOW,
    "N": Interpretation.NORMAL,
    "A": Interpretation.ABNORMAL, "AA": Interpretation.ABNORMAL,
    "POS": Interpretation.POSITIVE, "DET": Interpretation.POSITIVE,
    "NEG": Interpretation.NEGATIVE, "ND": Interpretation.NEGATIVE,
}
POSITIVE_WORDS = frozenset({"pos", "positive", "positief", "detected", "aangetoond", "present", "aanwezig"})
NEGATIVE_WORDS = frozenset(
    {"neg", "negative", "negatief", "not detected", "niet aangetoond", "absent", "afwezig", "no", "nee"}
)
_NUMBER = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*(\d+(?:[.,]\d+)?)\s*(.*?)\s*$")

# TSH reference range when the lab gives none (terminology.md).
TSH_DEFAULT_RANGE = (0.4, 4.0)
# aCL / anti-beta2GPI: positive above this when neither interpretation nor range is known.
ANTIBODY_DEFAULT_CUTOFF = 40.0
# Two miscarriage Conditions dated this close together are one event recorded twice.
SAME_LOSS_EVENT_DAYS = 30
# An obstetric history count above this is a data error, not a count to act on.
MAX_PLAUSIBLE_LOSSES = 30
# A gestational age measured this long before a loss tells the age at the loss.
GA_AT_LOSS_LOOKBACK_DAYS = 42
# A pregnancy Condition or positive test older than this is not a current pregnancy.
PREGNANCY_CONDITION_MAX_DAYS = 300
PREGNANCY_TEST_MAX_DAYS = 42


@dataclass(frozen=True)
class ExtractionSettings:
    antibody_cutoff: float = ANTIBODY_DEFAULT_CUTOFF
    # A loss counts as a miscarriage up to this gestational age (ESHRE 24 weeks; older Dutch 20).
    loss_week_limit: int = 24


def extract(
    record: PatientRecord,
    valuesets: ValueSetIndex,
    today: date,
    settings: ExtractionSettings = ExtractionSettings(),
) -> PatientFacts:
    """Turn one patient's raw FHIR data into the facts every rule reads."""
    observations: list[tuple[frozenset[str], Any]] = []
    conditions: list[ConditionFact] = []
    procedures: list[tuple[frozenset[str], Any]] = []
    orders: list[OrderFact] = []
    by_reference = {_raw_ref(r): r for r in record.resources if r.get("id")}
    latest_only: dict[str, list[Mapping[str, Any]]] = {}
    for raw in record.resources:
        rtype = raw.get("resourceType")
        if rtype == "Observation":
            names = valuesets.classify(raw.get("code")) & OBSERVATION_SETS
            if not names or _raw_str(raw, "status") not in VALID_OBSERVATION_STATUS:
                continue
            if len(names) == 1 and (test := next(iter(names))) in LATEST_ONLY:
                latest_only.setdefault(test, []).append(raw)  # validated below, newest first
            elif (model := _parse_or_none(raw)) is not None:
                observations.append((names, model))
        elif rtype == "Condition":
            names = valuesets.classify(raw.get("code")) & CONDITION_SETS
            if names:
                conditions.extend(_conditions(names, raw))
        elif rtype == "Procedure":
            names = valuesets.classify(raw.get("code")) & PROCEDURE_SETS
            if names and _raw_str(raw, "status") in ("completed", "in-progress"):
                model = _parse_or_none(raw)
                if model is not None:
                    procedures.append((names, model))
        elif rtype in ("MedicationRequest", "MedicationStatement", "ServiceRequest"):
            order = _order(raw, record, valuesets, by_reference, draft=False)
            if order is not None and _order_on_record(raw, order):
                orders.append(order)
    drafts = tuple(
        order
        for raw in record.draft_orders
        if (order := _order(raw, record, valuesets, by_reference, draft=True)) is not None
    )

    for test, raws in latest_only.items():
        observations.extend(_newest_usable(test, raws, today, settings))
    labs, unusable = _lab_results(observations, today, settings)
    findings = _findings(observations, procedures, today)
    conditions_t = tuple(conditions)
    return PatientFacts(
        patient_id=record.patient_id,
        today=today,
        age_years=_age(record.patient, today),
        loss_count=_loss_count(observations, conditions_t, findings, today, settings),
        rpl_diagnosis=_first_source(c for c in conditions_t if c.concept == "recurrent-pregnancy-loss" and c.active),
        antibodies=tuple(_antibody_history(test, labs) for test in APL_TESTS),
        tsh=_latest(labs, "tsh"),
        ft4=_latest(labs, "free-t4"),
        tpo=_latest(labs, "tpo-antibodies"),
        lab_history=tuple(labs),
        unusable_results=tuple(unusable),
        conditions=conditions_t,
        pregnancy=_pregnancy(observations, conditions_t, findings, today),
        orders=tuple(orders),
        draft_orders=drafts,
        findings=findings,
        smoking_current=_smoking(observations, valuesets),
        bmi=_latest(labs, "bmi"),
    )


# -- generic helpers ---------------------------------------------------------------
def _parse_or_none(raw: Mapping[str, Any]) -> Any:
    try:
        return parse(dict(raw))
    except InvalidResource:
        return None  # invalid where a rule would read it: not used


def _raw_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _ref(resource: Any) -> str:
    return f"{resource.get_resource_type()}/{resource.id}" if resource.id else resource.get_resource_type()


def _raw_ref(raw: Mapping[str, Any]) -> str:
    rid = raw.get("id")
    return f"{raw.get('resourceType')}/{rid}" if rid else str(raw.get("resourceType"))


def as_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant (also partial '2024' or '2024-03') -> date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        parts = value[:10].split("-")
        try:
            year = int(parts[0])
            month = int(parts[1]) if len(parts) > 1 else 1
            day = int(parts[2]) if len(parts) > 2 else 1
            return date(year, month, day)
        except (ValueError, IndexError):
            return None
    return None


def _codes(concept: Any) -> set[tuple[str | None, str | None]]:
    if concept is None:
        return set()
    return {(c.system, c.code) for c in (concept.coding or [])}


def _text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return concept.text
    for coding in concept.coding or []:
        if coding.display:
            return coding.display
    for coding in concept.coding or []:
        if coding.code:
            return coding.code
    return None


def _first_source(conditions: Iterable[ConditionFact]) -> str | None:
    for condition in conditions:
        return condition.source
    return None


def _age(patient: Mapping[str, Any] | None, today: date) -> int | None:
    if not patient:
        return None
    model = _parse_or_none(patient)
    if model is None:
        return None
    born = as_date(model.birthDate)
    if born is None or born > today:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


# -- observations -------------------------------------------------------------------
def _observation_date(obs: Any) -> date | None:
    if obs.effectiveDateTime is not None:
        return as_date(obs.effectiveDateTime)
    if obs.effectivePeriod is not None:
        return as_date(obs.effectivePeriod.start or obs.effectivePeriod.end)
    if obs.effectiveInstant is not None:
        return as_date(obs.effectiveInstant)
    return as_date(obs.issued)


def _interpretation(obs: Any) -> Interpretation | None:
    for concept in obs.interpretation or []:
        for coding in concept.coding or []:
            found = INTERPRETATION_CODES.get((coding.code or "").upper())
            if found is not None:
                return found
    return None


def _numeric(obs: Any) -> tuple[float | None, str | None, str | None, str | None]:
    """(value, unit, comparator, text) from valueQuantity, valueInteger or valueString."""
    if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        q = obs.valueQuantity
        if not math.isfinite(q.value):
            return None, None, None, None
        comparator = {"≤": "<=", "≥": ">="}.get(q.comparator or "", q.comparator)
        return float(q.value), (q.unit or q.code), comparator, None
    if obs.valueInteger is not None:
        return float(obs.valueInteger), None, None, None
    if obs.valueString:
        match = _NUMBER.match(obs.valueString)
        if match:
            comparator = {"≤": "<=", "≥": ">="}.get(match.group(1) or "", match.group(1))
            number = float(match.group(2).replace(",", "."))
            return number, (match.group(3) or None), comparator, obs.valueString
        return None, None, None, obs.valueString
    return None, None, None, None


def _qualitative(obs: Any) -> Interpretation | None:
    concept = obs.valueCodeableConcept
    if concept is not None:
        codes = {code for system, code in _codes(concept) if system == SNOMED}
        if codes & POSITIVE_CODES:
            return Interpretation.POSITIVE
        if codes & NEGATIVE_CODES:
            return Interpretation.NEGATIVE
        words = (_text(concept) or "").strip().lower()
    elif obs.valueBoolean is not None:
        return Interpretation.POSITIVE if obs.valueBoolean else Interpretation.NEGATIVE
    else:
        words = (obs.valueString or "").strip().lower()
    if words in POSITIVE_WORDS:
        return Interpretation.POSITIVE
    if words in NEGATIVE_WORDS:
        return Interpretation.NEGATIVE
    return None


def _reference_range(obs: Any, test: str) -> tuple[float | None, float | None]:
    for rng in obs.referenceRange or []:
        low = _range_bound(rng.low, test)
        high = _range_bound(rng.high, test)
        if low is not None or high is not None:
            return low, high
    return None, None


def _range_bound(quantity: Any, test: str) -> float | None:
    if quantity is None or quantity.value is None:
        return None
    unit = quantity.unit or quantity.code
    if unit is None:
        return None
    converted = convert(test, float(quantity.value), unit)
    return converted[0] if converted else None


def _lab_result(test: str, obs: Any, settings: ExtractionSettings) -> LabResult:
    if test in QUALITATIVE_TESTS:  # e.g. "46,XX,t(11;22)": text, never a number
        return LabResult(test=test, source=_ref(obs), date=_observation_date(obs),
                         interpretation=_interpretation(obs), text=obs.valueString or _text(obs.valueCodeableConcept))
    value, unit, comparator, text = _numeric(obs)
    when = _observation_date(obs)
    flagged = _interpretation(obs)
    qualitative = _qualitative(obs) if value is None else None
    base = dict(test=test, source=_ref(obs), date=when, comparator=comparator, text=text)
    if value is None:
        judged = flagged or qualitative
        if test in APL_TESTS or test == "tpo-antibodies":
            if judged in (Interpretation.HIGH, Interpretation.ABNORMAL):
                judged = Interpretation.POSITIVE
            elif judged in (Interpretation.NORMAL, Interpretation.LOW):
                judged = Interpretation.NEGATIVE
        return LabResult(**base, interpretation=judged)
    converted = convert(test, value, unit)
    if converted is None:
        return LabResult(**base, value=value, original_unit=unit, unit_known=False)
    value, canonical = converted
    low, high = _reference_range(obs, test)
    return LabResult(
        **base,
        value=value,
        unit=canonical,
        original_unit=unit,
        interpretation=_judge(test, value, comparator, low, high, flagged, settings),
        reference_low=low,
        reference_high=high,
    )


def _judge(
    test: str,
    value: float,
    comparator: str | None,
    low: float | None,
    high: float | None,
    flagged: Interpretation | None,
    settings: ExtractionSettings,
) -> Interpretation | None:
    """High/low/normal (thyroid) or positive/negative (antibodies) of a number.

    Order of evidence: the lab's own reference range on the result, then the
    lab's interpretation code, then the catalogue's defaults.
    """
    is_antibody = test in APL_TESTS or test == "tpo-antibodies"
    if low is None and high is None:
        if flagged is not None:
            if is_antibody and flagged in (Interpretation.HIGH, Interpretation.POSITIVE, Interpretation.ABNORMAL):
                return Interpretation.POSITIVE
            if is_antibody and flagged in (Interpretation.NORMAL, Interpretation.NEGATIVE, Interpretation.LOW):
                return Interpretation.NEGATIVE
            return None if flagged is Interpretation.ABNORMAL else flagged
        if test == "tsh":
            low, high = TSH_DEFAULT_RANGE
        elif test in APL_TESTS and test != "lupus-anticoagulant":
            high = settings.antibody_cutoff
        else:
            return None
    # "<0.01" lies below any positive lower limit; ">150" above any upper limit.
    if high is not None and (value > high or (value == high and comparator in (">", ">="))):
        return Interpretation.POSITIVE if is_antibody else Interpretation.HIGH
    if low is not None and (value < low or (value == low and comparator in ("<", "<="))):
        return Interpretation.NEGATIVE if is_antibody else Interpretation.LOW
    if comparator in (">", ">=") and high is None:
        return None  # ">5" says nothing against a missing upper limit
    return Interpretation.NEGATIVE if is_antibody else Interpretation.NORMAL


def _lab_results(
    observations: list[tuple[frozenset[str], Any]], today: date, settings: ExtractionSettings
) -> tuple[list[LabResult], list[LabResult]]:
    results: list[tuple[LabResult, str]] = []
    for names, obs in observations:
        for test in names & LAB_TESTS:
            result = _lab_result(test, obs, settings)
            if result.date is not None and result.date > today:
                continue  # dated in the future: not a result to act on
            results.append((result, obs.status))
    # Drop a preliminary result when a final one exists for the same test and date.
    final_keys = {(r.test, r.date) for r, status in results if status != "preliminary"}
    kept = [r for r, status in results if status != "preliminary" or (r.test, r.date) not in final_keys]
    kept.sort(key=lambda r: (r.date or date.min, r.source))
    usable = [r for r in kept if r.unit_known]
    unusable = [r for r in kept if not r.unit_known]
    return usable, unusable


def _raw_date(raw: Mapping[str, Any]) -> date | None:
    """The date of a raw Observation, read without validating it (for ordering only)."""
    period = raw.get("effectivePeriod")
    for value in (
        raw.get("effectiveDateTime"),
        period.get("start") or period.get("end") if isinstance(period, Mapping) else None,
        raw.get("effectiveInstant"),
        raw.get("issued"),
    ):
        if value is not None:
            return as_date(value)
    return None


def _newest_usable(
    test: str, raws: list[Mapping[str, Any]], today: date, settings: ExtractionSettings
) -> list[tuple[frozenset[str], Any]]:
    """For tests where only the latest result matters: validate newest first and stop
    at the first result with a usable value. Newer results in an unknown unit, and
    results of that same date (a preliminary may be superseded), are kept too."""
    dated = sorted(raws, key=lambda r: _raw_date(r) or date.min, reverse=True)
    kept: list[tuple[frozenset[str], Any]] = []
    found: date | None = None
    for raw in dated:
        when = _raw_date(raw)
        if when is not None and when > today:
            continue
        if found is not None and when != found:
            break
        model = _parse_or_none(raw)
        if model is None:
            continue
        kept.append((frozenset({test}), model))
        if found is None and _lab_result(test, model, settings).usable:
            found = when
    return kept


def _latest(labs: list[LabResult], test: str) -> LabResult | None:
    dated = [r for r in labs if r.test == test]
    return dated[-1] if dated else None


def _antibody_history(test: str, labs: list[LabResult]) -> AntibodyHistory:
    results = tuple(r for r in labs if r.test == test)
    return AntibodyHistory(
        test=test,
        results=results,
        positive=tuple(r for r in results if r.interpretation is Interpretation.POSITIVE),
    )


def _smoking(observations: list[tuple[frozenset[str], Any]], valuesets: ValueSetIndex) -> Finding | None:
    latest: tuple[date, Any] | None = None
    for names, obs in observations:
        if "smoking-status" in names:
            when = _observation_date(obs) or date.min
            if latest is None or when >= latest[0]:
                latest = (when, obs)
    if latest is None or latest[1].valueCodeableConcept is None:
        return None
    obs = latest[1]
    for system, code in _codes(obs.valueCodeableConcept):
        if valuesets.contains("current-smoker", system, code):
            return Finding("current-smoker", _ref(obs), _observation_date(obs), _text(obs.valueCodeableConcept))
    return None


# -- conditions ---------------------------------------------------------------------
def _conditions(names: frozenset[str], raw: Mapping[str, Any]) -> list[ConditionFact]:
    verification = _status_code(raw.get("verificationStatus"))
    if verification in IGNORED_VERIFICATION:
        return []
    model = _parse_or_none(raw)
    if model is None:
        return []
    clinical = _status_code(raw.get("clinicalStatus"))
    onset = as_date(model.onsetDateTime) or (as_date(model.onsetPeriod.start) if model.onsetPeriod else None)
    severe = any(code == SEVERE for _, code in _codes(model.severity))
    return [
        ConditionFact(
            concept=name,
            source=_ref(model),
            active=clinical in ACTIVE_CLINICAL_STATUS,
            onset=onset,
            recorded=as_date(model.recordedDate),
            severe=severe,
        )
        for name in sorted(names)
    ]


def _status_code(concept: Any) -> str | None:
    if isinstance(concept, Mapping):
        for coding in as_list(concept.get("coding")):
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                return coding["code"]
    return None


def _event_date(condition: ConditionFact) -> date | None:
    return condition.onset or condition.recorded


# -- loss count ---------------------------------------------------------------------
def _loss_count(
    observations: list[tuple[frozenset[str], Any]],
    conditions: tuple[ConditionFact, ...],
    findings: tuple[Finding, ...],
    today: date,
    settings: ExtractionSettings,
) -> LossCount | None:
    """The highest count the record supports, and where it came from."""
    candidates: list[LossCount] = []
    latest_history: tuple[date, Any] | None = None
    for names, obs in observations:
        if "spontaneous-abortions-count" in names:
            when = _observation_date(obs) or date.min
            if when <= today and (latest_history is None or when >= latest_history[0]):
                latest_history = (when, obs)
    if latest_history is not None:
        value, _, _, _ = _numeric(latest_history[1])
        if value is not None and value == int(value) and 0 <= value <= MAX_PLAUSIBLE_LOSSES:
            when = latest_history[0] if latest_history[0] != date.min else None
            candidates.append(
                LossCount(int(value), LossCountSource.OBSTETRIC_HISTORY, (_ref(latest_history[1]),), when)
            )
    events = _distinct_losses(_miscarriages(conditions, findings, settings))
    if events:
        candidates.append(
            LossCount(len(events), LossCountSource.MISCARRIAGE_CONDITIONS, tuple(e.source for e in events))
        )
    rpl = [c for c in conditions if c.concept == "recurrent-pregnancy-loss" and c.active]
    if rpl:
        candidates.append(LossCount(2, LossCountSource.RPL_DIAGNOSIS, (rpl[0].source,)))
    if not candidates:
        return None
    # Highest count wins; on a tie the order above (history, events, diagnosis) is kept.
    return max(candidates, key=lambda c: c.count)


def _miscarriages(
    conditions: tuple[ConditionFact, ...], findings: tuple[Finding, ...], settings: ExtractionSettings
) -> list[ConditionFact]:
    """Miscarriage Conditions that are losses by the RPL definition.

    Left out: a 'miscarriage' recorded with an ectopic or molar pregnancy of the
    same dates (Synthea records a tubal pregnancy also as 'miscarriage in first
    trimester'; ectopic and molar pregnancies do not count), and a loss whose
    gestational age, from a GA Observation in the weeks before, was beyond the
    configured week limit.
    """
    not_losses = [
        _event_date(c) for c in conditions if c.concept in ("ectopic-pregnancy", "molar-pregnancy") and _event_date(c)
    ]
    ga_findings = [f for f in findings if f.what == "gestational-age" and f.value is not None and f.date is not None]
    kept = []
    for condition in conditions:
        if condition.concept != "miscarriage":
            continue
        when = _event_date(condition)
        if when is not None and any(abs((when - other).days) < SAME_LOSS_EVENT_DAYS for other in not_losses):
            continue
        if when is not None:
            before = [f for f in ga_findings if 0 <= (when - f.date).days <= GA_AT_LOSS_LOOKBACK_DAYS]
            if before:
                latest = max(before, key=lambda f: f.date)
                if int(latest.value) + (when - latest.date).days > settings.loss_week_limit * 7:
                    continue
        kept.append(condition)
    return kept


def _distinct_losses(miscarriages: list[ConditionFact]) -> list[ConditionFact]:
    """One Condition per loss event: dated ones closer than 30 days are one event;
    undated ones count as one event only when no dated event exists."""
    dated = sorted((c for c in miscarriages if _event_date(c) is not None), key=_event_date)
    events: list[ConditionFact] = []
    for condition in dated:
        if events and (_event_date(condition) - _event_date(events[-1])).days < SAME_LOSS_EVENT_DAYS:
            continue
        events.append(condition)
    if not events:
        undated = [c for c in miscarriages if _event_date(c) is None]
        # Undated Conditions may all describe the same loss: never count them twice.
        return undated[:1]
    return events


# -- pregnancy ----------------------------------------------------------------------
def _findings(
    observations: list[tuple[frozenset[str], Any]], procedures: list[tuple[frozenset[str], Any]], today: date
) -> tuple[Finding, ...]:
    found: list[Finding] = []
    for names, obs in observations:
        when = _observation_date(obs)
        if when is not None and when > today:
            continue
        for name in names & (PREGNANCY_OBSERVATIONS - {"gestational-age", "estimated-due-date"}):
            found.append(Finding(name, _ref(obs), when, _finding_value(name, obs)))
        for name in names & {"gestational-age", "estimated-due-date"}:
            found.append(Finding(name, _ref(obs), when, _finding_value(name, obs)))
    for names, proc in procedures:
        when = as_date(proc.performedDateTime) or (
            as_date(proc.performedPeriod.start) if proc.performedPeriod else None
        )
        for name in sorted(names):
            found.append(Finding(name, _ref(proc), when, None))
    found.sort(key=lambda f: (f.date or date.min, f.source))
    return tuple(found)


def _finding_value(name: str, obs: Any) -> str | None:
    """A normalised text value: 'positive'/'negative', a length in mm, weeks as days, a date."""
    if name in ("crown-rump-length", "gestational-sac-diameter"):
        value, unit, _, _ = _numeric(obs)
        converted = convert(name, value, unit) if value is not None else None
        return f"{converted[0]:g}" if converted else None
    if name == "gestational-age":
        value, unit, _, _ = _numeric(obs)
        if value is None:
            return None
        unit = (unit or "").lower()
        if unit in ("wk", "week", "weeks", "wk(s)", "weken", "w"):
            return str(round(value * 7))
        if unit in ("d", "day", "days", "dagen"):
            return str(round(value))
        return None  # gestational age in an unknown unit is not used
    if name == "estimated-due-date":
        due = as_date(obs.valueDateTime) if obs.valueDateTime is not None else None
        if due is None and obs.valueString:
            due = as_date(obs.valueString)
        return due.isoformat() if due else None
    if name in ("pregnancy-status", "pregnancy-test"):
        codes = {code for _, code in _codes(obs.valueCodeableConcept)}
        if codes & PREGNANT_CODES:
            return "positive"
        if codes & NOT_PREGNANT_CODES:
            return "negative"
    if name == "fetal-heart-activity":
        value, _, _, _ = _numeric(obs)
        if value is not None:  # a heart rate: zero means no heart activity
            return "positive" if value > 0 else "negative"
    quality = _interpretation(obs) if name == "pregnancy-test" else None
    quality = _qualitative(obs) or quality
    if quality in (Interpretation.POSITIVE, Interpretation.HIGH):
        return "positive"
    if quality is Interpretation.NEGATIVE:
        return "negative"
    return None


def _pregnancy(
    observations: list[tuple[frozenset[str], Any]],
    conditions: tuple[ConditionFact, ...],
    findings: tuple[Finding, ...],
    today: date,
) -> PregnancyFacts:
    sources: list[str] = []
    since: date | None = None  # earliest evidence date of the current pregnancy
    for c in conditions:
        if c.concept == "pregnancy" and c.active:
            when = _event_date(c)
            if when is None or (today - when).days <= PREGNANCY_CONDITION_MAX_DAYS:
                sources.append(c.source)
                since = min(filter(None, (since, when)), default=None)
    tests = [f for f in findings if f.what in ("pregnancy-status", "pregnancy-test") and f.value]
    if tests:
        latest = tests[-1]
        if latest.value == "positive" and latest.date and (today - latest.date).days <= PREGNANCY_TEST_MAX_DAYS:
            sources.append(latest.source)
            since = min(filter(None, (since, latest.date)), default=None)
        elif latest.value == "negative" and latest.date and (since is None or latest.date >= since):
            sources = []  # a later negative status overrides an older positive
    if sources and since is not None:
        # A loss recorded after the pregnancy was first seen ends that pregnancy.
        for c in conditions:
            when = _event_date(c)
            if c.concept in ("miscarriage", "missed-miscarriage", "molar-pregnancy") and when and when > since:
                if not c.active or c.concept != "missed-miscarriage":
                    sources = []
                    break
    if not sources:
        # No current pregnancy on record, but an active ectopic pregnancy or a recent
        # non-viable scan still forbids starting progesterone (E8.6c).
        def recent(when: date | None) -> bool:
            return when is not None and 0 <= (today - when).days <= PREGNANCY_TEST_MAX_DAYS

        return PregnancyFacts(contraindications=_progesterone_contraindications(conditions, findings, recent))

    ga_days, ga_source = _gestational_age(findings, today)
    start = today - timedelta(days=ga_days) if ga_days is not None else (since - timedelta(days=42) if since else None)

    def in_this_pregnancy(when: date | None) -> bool:
        return when is not None and start is not None and start <= when <= today

    bleeding, bleeding_source = False, None
    for c in conditions:
        if c.concept != "early-pregnancy-bleeding" or ga_days is None:
            continue
        when = _event_date(c)
        if when is not None and in_this_pregnancy(when):
            ga_at_bleeding = ga_days - (today - when).days
        elif when is None and c.active:
            ga_at_bleeding = ga_days  # ongoing bleeding, date unknown: judge by today
        else:
            continue
        if 0 <= ga_at_bleeding < 12 * 7:
            bleeding, bleeding_source = True, c.source
    intrauterine = next(
        (
            x
            for x in (
                *(c.source for c in conditions if c.concept == "intrauterine-pregnancy" and in_this_pregnancy(_event_date(c))),
                *(f.source for f in findings if f.what == "intrauterine-pregnancy" and f.value != "negative" and in_this_pregnancy(f.date)),
            )
        ),
        None,
    )
    return PregnancyFacts(
        current=True,
        sources=tuple(sources),
        gestational_age_days=ga_days,
        gestational_age_source=ga_source,
        bleeding_before_12_weeks=bleeding,
        bleeding_source=bleeding_source,
        intrauterine_confirmed=intrauterine is not None,
        intrauterine_source=intrauterine,
        contraindications=_progesterone_contraindications(conditions, findings, in_this_pregnancy),
    )


PLAUSIBLE_GA_DAYS = range(0, 45 * 7)


def _gestational_age(findings: tuple[Finding, ...], today: date) -> tuple[int | None, str | None]:
    """Gestational age today, from the latest GA Observation or estimated due date.
    An implausible result (negative, or beyond 45 weeks) is no gestational age."""
    for finding in reversed(findings):
        if finding.value is None or finding.date is None:
            continue
        if finding.what == "gestational-age":
            days = int(finding.value) + (today - finding.date).days
        elif finding.what == "estimated-due-date" and (due := as_date(finding.value)) is not None:
            days = 280 - (due - today).days
        else:
            continue
        return (days, finding.source) if days in PLAUSIBLE_GA_DAYS else (None, None)
    return None, None


def _progesterone_contraindications(conditions, findings, in_this_pregnancy) -> tuple[Finding, ...]:
    """E8.6c: CRL > 7 mm without heart activity; sac > 25 mm without fetal parts;
    ectopic pregnancy; life-threatening bleeding. Only explicit evidence counts."""
    found: list[Finding] = []
    for c in conditions:
        if not c.active:
            continue
        if c.concept == "ectopic-pregnancy":
            found.append(Finding("ectopic-pregnancy", c.source, _event_date(c)))
        elif c.concept == "anembryonic-pregnancy":
            found.append(Finding("sac-without-embryo", c.source, _event_date(c)))
        elif c.concept == "early-pregnancy-bleeding" and c.severe:
            # Reading: a bleeding recorded with severity 'severe' is the guideline's
            # life-threatening bleeding; the record has no finer grade.
            found.append(Finding("life-threatening-bleeding", c.source, _event_date(c)))
    by_date: dict[date, dict[str, Finding]] = {}
    for f in findings:
        if f.date is not None and in_this_pregnancy(f.date):
            by_date.setdefault(f.date, {})[f.what] = f
    for when, exam in by_date.items():
        heart = exam.get("fetal-heart-activity")
        crl = exam.get("crown-rump-length")
        sac = exam.get("gestational-sac-diameter")
        no_heart = heart is not None and heart.value == "negative"
        if crl is not None and crl.value is not None and float(crl.value) > 7 and no_heart:
            found.append(Finding("crl-without-heart-activity", crl.source, when, f"{crl.value} mm"))
        # "Without fetal parts": no embryo measured and no heart activity on the same scan.
        if sac is not None and sac.value is not None and float(sac.value) > 25 and crl is None and no_heart:
            found.append(Finding("sac-without-embryo", sac.source, when, f"{sac.value} mm"))
    return tuple(found)


# -- orders -------------------------------------------------------------------------
def _order_on_record(raw: Mapping[str, Any], order: OrderFact) -> bool:
    if raw.get("resourceType") == "MedicationStatement":
        return order.status in STATEMENT_STATUS_ACTIVE
    return order.status in ORDER_STATUS_ON_RECORD


def _medication_concept(raw: Mapping[str, Any], record: PatientRecord) -> Mapping[str, Any] | None:
    if "medicationCodeableConcept" in raw:
        return raw.get("medicationCodeableConcept")
    reference = raw.get("medicationReference")
    if not isinstance(reference, Mapping):
        return None
    ref = reference.get("reference")
    if isinstance(ref, str) and ref.startswith("#"):
        for contained in as_list(raw.get("contained")):
            if isinstance(contained, Mapping) and contained.get("id") == ref[1:]:
                return contained.get("code")
        return None
    if isinstance(ref, str):
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        medication = record.medications.get("/".join(parts[-2:]))
        if medication is not None:
            return medication.get("code")
    return None


def _order(
    raw: Mapping[str, Any],
    record: PatientRecord,
    valuesets: ValueSetIndex,
    by_reference: Mapping[str, Mapping[str, Any]],
    draft: bool,
) -> OrderFact | None:
    rtype = raw.get("resourceType")
    concept = raw.get("code") if rtype == "ServiceRequest" else _medication_concept(raw, record)
    classes = valuesets.classify(concept)
    if not classes:
        return None
    model = _parse_or_none(raw)
    if model is None:
        return None
    reference = _raw_ref(raw)
    reasons: set[str] = set()
    for reason in getattr(model, "reasonCode", None) or []:
        for system, code in _codes(reason):
            reasons |= valuesets.names_for(system, code)
    # reasonReference: the Condition or Observation the order cites, when it is in the data.
    for reason in getattr(model, "reasonReference", None) or []:
        cited = by_reference.get(reason.reference or "")
        if cited is not None:
            reasons |= valuesets.classify(cited.get("code"))
    display = _display(concept) or reference
    return OrderFact(
        reference=reference,
        classes=classes,
        display=display,
        status=str(raw.get("status") or "unknown"),
        draft=draft,
        selected=draft and reference in record.selections,
        daily_dose_mg=_daily_dose_mg(model),
        routes=_routes(model),
        reason=frozenset(reasons),
    )


def _display(concept: Mapping[str, Any] | None) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    if isinstance(concept.get("text"), str) and concept["text"]:
        return concept["text"]
    for coding in as_list(concept.get("coding")):
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            return coding["display"]
    return None


_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "µg": 0.001, "mcg": 0.001}
_PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0}


def _routes(model: Any) -> frozenset[str]:
    dosages = getattr(model, "dosageInstruction", None) or []
    return frozenset(code for d in dosages for system, code in _codes(d.route) if system == SNOMED and code)


def _daily_dose_mg(model: Any) -> float | None:
    """Dose per day in mg from the first structured dosage, when it is in a mass unit."""
    dosages = getattr(model, "dosageInstruction", None) or getattr(model, "dosage", None) or []
    for dosage in dosages:
        for dose_rate in dosage.doseAndRate or []:
            q = dose_rate.doseQuantity
            if q is None or q.value is None:
                continue
            factor = _MASS_TO_MG.get((q.code or q.unit or "").lower())
            if factor is None:
                return None
            per_day = 1.0
            repeat = dosage.timing.repeat if dosage.timing else None
            if repeat is not None and repeat.frequency:
                period_days = float(repeat.period or 1) * _PERIOD_DAYS.get(repeat.periodUnit or "d", 0)
                if not period_days:
                    return None
                per_day = float(repeat.frequency) / float(period_days)
            return float(q.value) * factor * per_day
    return None
