"""Conditions and the loss count with its provenance.

Conditions refuted, entered-in-error, unconfirmed, provisional or differential
are ignored; one without clinicalStatus is not active. The loss count is the
highest the record supports: an obstetric-history Observation, an RPL diagnosis
(at least 2), or distinct miscarriage events, never the same event twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from .facts import ConditionFact, Finding, LossCount, LossCountSource
from .settings import ExtractionSettings
from .fhir_values import (
    SEVERE, as_date, coding_pairs, numeric_value, observation_date, reference_of, Validate,
)
from .record import as_list

ACTIVE_CLINICAL_STATUS = frozenset({"active", "recurrence", "relapse"})
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error", "unconfirmed", "provisional", "differential"})
# Two miscarriage Conditions dated this close together are one event recorded twice.
SAME_LOSS_EVENT_DAYS = 30
# An obstetric history count above this is a data error, not a count to act on.
MAX_PLAUSIBLE_LOSSES = 30
# A gestational age measured this long before a loss tells the age at the loss.
GA_AT_LOSS_LOOKBACK_DAYS = 42


def condition_facts(names: frozenset[str], raw: Mapping[str, Any], validated: Validate) -> list[ConditionFact]:
    verification = status_code(raw.get("verificationStatus"))
    if verification in IGNORED_VERIFICATION:
        return []
    model = validated(raw)
    if model is None:
        return []
    clinical = status_code(raw.get("clinicalStatus"))
    onset = as_date(model.onsetDateTime) or (as_date(model.onsetPeriod.start) if model.onsetPeriod else None)
    severe = any(code == SEVERE for _, code in coding_pairs(model.severity))
    return [
        ConditionFact(
            concept=name,
            source=reference_of(model),
            active=clinical in ACTIVE_CLINICAL_STATUS,
            onset=onset,
            recorded=as_date(model.recordedDate),
            severe=severe,
        )
        for name in sorted(names)
    ]


def status_code(concept: Any) -> str | None:
    if isinstance(concept, Mapping):
        for coding in as_list(concept.get("coding")):
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                return coding["code"]
    return None


def event_date(condition: ConditionFact) -> date | None:
    return condition.onset or condition.recorded


# -- loss count ---------------------------------------------------------------------
def loss_count(
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
            when = observation_date(obs) or date.min
            if when <= today and (latest_history is None or when >= latest_history[0]):
                latest_history = (when, obs)
    if latest_history is not None:
        value, _, _, _ = numeric_value(latest_history[1])
        if value is not None and value == int(value) and 0 <= value <= MAX_PLAUSIBLE_LOSSES:
            when = latest_history[0] if latest_history[0] != date.min else None
            candidates.append(
                LossCount(int(value), LossCountSource.OBSTETRIC_HISTORY, (reference_of(latest_history[1]),), when)
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


# Conditions that are a pregnancy loss: a miscarriage, and (ESHRE 2022) a non-visualised loss,
# a biochemical pregnancy loss or a spontaneously resolved pregnancy of unknown location.
COUNTED_LOSS_CONCEPTS = frozenset({"miscarriage", "non-visualised-pregnancy-loss"})


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
        event_date(c) for c in conditions if c.concept in ("ectopic-pregnancy", "molar-pregnancy") and event_date(c)
    ]
    ga_findings = [f for f in findings if f.what == "gestational-age" and f.value is not None and f.date is not None]
    kept = []
    for condition in conditions:
        if condition.concept not in COUNTED_LOSS_CONCEPTS:
            continue
        when = event_date(condition)
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
    dated = sorted((c for c in miscarriages if event_date(c) is not None), key=event_date)
    events: list[ConditionFact] = []
    for condition in dated:
        if events and (event_date(condition) - event_date(events[-1])).days < SAME_LOSS_EVENT_DAYS:
            continue
        events.append(condition)
    if not events:
        undated = [c for c in miscarriages if event_date(c) is None]
        # Undated Conditions may all describe the same loss: never count them twice.
        return undated[:1]
    return events



# Definition "Timing": the losses whose date starts the 12 months of counselling. Ectopic and
# molar pregnancies are not losses by the RPL definition; an RPL diagnosis is not a loss event.
LOSS_CONCEPTS = frozenset({"miscarriage", "missed-miscarriage", "second-trimester-loss", "anembryonic-pregnancy",
                           "non-visualised-pregnancy-loss"})


def last_loss(conditions: tuple[ConditionFact, ...], today: date) -> ConditionFact | None:
    """The loss Condition with the latest date (onset, else recorded date) up to today."""
    dated = [c for c in conditions if c.concept in LOSS_CONCEPTS and (when := event_date(c)) is not None and when <= today]
    return max(dated, key=event_date, default=None)
