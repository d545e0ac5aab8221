"""Clinical facts: what the rules see instead of raw FHIR.

Plain frozen dataclasses without FHIR types, so rules are pure functions over
them. Every fact that a card may quote keeps where it came from (``source``:
a relative reference such as ``Observation/123``) and its date.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

# Twelve weeks between two positive antiphospholipid results (ESHRE/NVOG: persistence).
APL_PERSISTENCE_DAYS = 12 * 7


class LossCountSource(str, Enum):
    OBSTETRIC_HISTORY = "obstetric-history"  # Observation: number of spontaneous abortions
    RPL_DIAGNOSIS = "rpl-diagnosis"  # a recorded RPL diagnosis implies at least 2
    MISCARRIAGE_CONDITIONS = "miscarriage-conditions"  # distinct miscarriage events


@dataclass(frozen=True)
class LossCount:
    count: int
    provenance: LossCountSource
    sources: tuple[str, ...]
    date: date | None = None


class Interpretation(str, Enum):
    HIGH = "high"
    LOW = "low"
    NORMAL = "normal"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    ABNORMAL = "abnormal"  # abnormal without a direction (v3 'A', 'AA')


@dataclass(frozen=True)
class LabResult:
    """One laboratory result, with the value in the unit the rules use.

    ``value`` is None for a qualitative result; ``unit_known`` is False when a
    number came with a unit this service cannot interpret: the rules then
    must not compare it, but a card may say so.
    """

    test: str  # value-set name, e.g. "tsh"
    source: str
    date: date | None
    value: float | None = None
    unit: str | None = None  # canonical unit after conversion (e.g. "mIU/L", "pmol/L")
    original_unit: str | None = None
    unit_known: bool = True
    comparator: str | None = None  # "<", "<=", ">", ">=" for values like "<0.01"
    interpretation: Interpretation | None = None
    reference_low: float | None = None
    reference_high: float | None = None
    text: str | None = None  # qualitative value as recorded

    @property
    def usable(self) -> bool:
        return self.value is not None and self.unit_known

    def display_value(self) -> str:
        if self.value is None:
            return self.text or (self.interpretation.value if self.interpretation else "?")
        number = f"{self.value:g}"
        unit = self.unit if self.unit_known else (self.original_unit or "")
        return f"{self.comparator or ''}{number} {unit}".strip()


@dataclass(frozen=True)
class AntibodyHistory:
    """All valid results of one antiphospholipid antibody test, oldest first."""

    test: str
    results: tuple[LabResult, ...]
    positive: tuple[LabResult, ...]  # results judged positive

    @property
    def latest(self) -> LabResult | None:
        return self.results[-1] if self.results else None

    @property
    def persistent(self) -> bool:
        """Positive on two occasions at least 12 weeks apart."""
        dates = sorted(r.date for r in self.positive if r.date is not None)
        return len(dates) >= 2 and (dates[-1] - dates[0]).days >= APL_PERSISTENCE_DAYS


@dataclass(frozen=True)
class ConditionFact:
    concept: str  # value-set name
    source: str
    active: bool
    onset: date | None = None
    recorded: date | None = None
    severe: bool = False


@dataclass(frozen=True)
class Finding:
    """A coded finding the rules need (e.g. a non-viability sign), with its source."""

    what: str
    source: str
    date: date | None = None
    value: str | None = None


@dataclass(frozen=True)
class PregnancyFacts:
    current: bool = False
    sources: tuple[str, ...] = ()
    gestational_age_days: int | None = None  # as of the evaluation date
    gestational_age_source: str | None = None
    bleeding_before_12_weeks: bool = False
    bleeding_source: str | None = None
    bleeding_date: date | None = None  # onset of that bleeding (None: an active bleeding without a date)
    bleeding_ga_days: int | None = None  # gestational age when it began
    intrauterine_confirmed: bool = False
    intrauterine_source: str | None = None
    # E8.6c: findings that forbid starting progesterone
    contraindications: tuple[Finding, ...] = ()
    # S2 (version 2): an ultrasound of this pregnancy on record (a scan finding, a confirmed
    # intra-uterine pregnancy, or a uterine imaging report or procedure since it began)
    ultrasound_source: str | None = None

    @property
    def ectopic(self) -> bool:
        return any(f.what == "ectopic-pregnancy" for f in self.contraindications)

    @property
    def ongoing(self) -> bool:
        """A current pregnancy not known to be ectopic: the one the pregnancy advice is about."""
        return self.current and not self.ectopic

    @property
    def gestational_age_text(self) -> str | None:
        if self.gestational_age_days is None:
            return None
        return f"{self.gestational_age_days // 7}+{self.gestational_age_days % 7}"


@dataclass(frozen=True)
class OrderFact:
    """A draft or active order/medication, mapped to the catalogue's classes."""

    reference: str  # "MedicationRequest/abc"
    classes: frozenset[str]  # value-set names (drug and test classes)
    display: str
    status: str
    draft: bool = False  # part of this call's draftOrders
    selected: bool = False  # order-select: among the newly selected orders
    daily_dose_mg: float | None = None
    routes: frozenset[str] = frozenset()  # SNOMED CT route codes of the dosage
    reason: frozenset[str] = frozenset()  # value sets matched by reasonCode
    # The MedicationRequest on record as received, for a card that updates it (E8.6c: status
    # 'stopped'); None for drafts and other resource types. Not compared: a fact, not its JSON.
    resource: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    ingredients: frozenset[str] = frozenset()  # catalogue ingredients it contains, e.g. {"prednisone"}
    recognised_by_name: bool = False  # its code is in no value set: its display or text named the ingredient


@dataclass(frozen=True)
class UncheckedOrder:
    """A draft medication order the rules cannot judge: what medicine it is could not be read
    (issue 15, item 2: never silently ignored)."""

    reference: str  # "MedicationRequest/abc"
    medication: str | None  # the medicationReference that could not be read; None: it names no medicine
    selected: bool = False  # order-select: among the newly selected orders


@dataclass(frozen=True)
class PatientFacts:
    patient_id: str
    today: date
    age_years: int | None = None
    loss_count: LossCount | None = None
    rpl_diagnosis: str | None = None  # source of an active RPL diagnosis
    antibodies: tuple[AntibodyHistory, ...] = ()
    tsh: LabResult | None = None
    ft4: LabResult | None = None
    tpo: LabResult | None = None
    lab_history: tuple[LabResult, ...] = ()  # every valid result of a rule-relevant test
    unusable_results: tuple[LabResult, ...] = ()  # results ignored for an unknown unit
    conditions: tuple[ConditionFact, ...] = ()
    pregnancy: PregnancyFacts = field(default_factory=PregnancyFacts)
    orders: tuple[OrderFact, ...] = ()  # active orders and medications on record
    draft_orders: tuple[OrderFact, ...] = ()  # draftOrders of this call
    # Medications taken now or before (catalogue "Treated condition"): MedicationStatements of any
    # status but entered-in-error / not-taken, and MedicationRequests active, on-hold, completed
    # or stopped. Draft orders are not in it.
    medication_history: tuple[OrderFact, ...] = ()
    findings: tuple[Finding, ...] = ()
    smoking_current: Finding | None = None
    bmi: LabResult | None = None
    gender: str | None = None  # Patient.gender as recorded (definition "Whose chart")
    # Definition "Timing": the latest dated loss Condition (onset, else recorded date)
    last_loss: ConditionFact | None = None
    # Medication orders whose medicationReference could not be resolved (item 8 of issue 14):
    # what they are is unknown, so a rule must not conclude that no such treatment is taken.
    unresolved_medications: tuple[str, ...] = ()
    unchecked_drafts: tuple[UncheckedOrder, ...] = ()  # draft orders among them, and drafts naming no medicine

    # -- derived facts used by several rules ---------------------------------
    @property
    def has_rpl(self) -> bool:
        """Two or more losses, or an active RPL diagnosis."""
        return self.rpl_diagnosis is not None or (
            self.loss_count is not None and self.loss_count.count >= 2
        )

    @property
    def losses(self) -> int:
        return self.loss_count.count if self.loss_count else 0

    @property
    def male_chart(self) -> bool:
        """Whose chart: the partner's (Patient.gender 'male'); the rules are written for the woman."""
        return self.gender == "male"

    def active_condition(self, concept: str) -> ConditionFact | None:
        for condition in self.conditions:
            if condition.concept == concept and condition.active:
                return condition
        return None

    def antibody(self, test: str) -> AntibodyHistory | None:
        for history in self.antibodies:
            if history.test == test:
                return history
        return None

    @property
    def persistent_antibodies(self) -> tuple[AntibodyHistory, ...]:
        return tuple(h for h in self.antibodies if h.persistent)

    @property
    def aps_criteria_met(self) -> bool:
        return bool(self.persistent_antibodies) or self.active_condition("antiphospholipid-syndrome") is not None

    @property
    def possible_aps(self) -> ConditionFact | None:
        """Catalogue "Possible APS": WHO ICD-10 D68.6 or another APS code, active on record
        (with or without aPL results that meet the criteria)."""
        return self.active_condition("antiphospholipid-syndrome") or self.active_condition("thrombophilia-other-icd10")

    @property
    def thyroid_abnormal(self) -> bool:
        tsh = self.tsh
        if self.active_condition("hypothyroidism") is not None:
            return True
        return tsh is not None and tsh.interpretation in (Interpretation.HIGH, Interpretation.LOW)

    @property
    def chromosomal_cause(self) -> bool:
        return self.active_condition("chromosomal-cause") is not None

    @property
    def unexplained_rpl(self) -> bool:
        """RPL without APS (criteria met, or possible APS), abnormal thyroid function or a
        known chromosomal cause."""
        return self.has_rpl and not (
            self.aps_criteria_met or self.possible_aps is not None or self.thyroid_abnormal or self.chromosomal_cause
        )

    def results(self, test: str) -> tuple[LabResult, ...]:
        return tuple(r for r in self.lab_history if r.test == test)

    def has_order(self, concept: str) -> OrderFact | None:
        """An active order on record or a draft order of this call for the concept."""
        for order in (*self.orders, *self.draft_orders):
            if concept in order.classes:
                return order
        return None
