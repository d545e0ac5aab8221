"""Laboratory results: units, reference ranges, interpretation, antibody persistence.

For TSH and FT4 the lab's own reference range on a result wins over its
interpretation code, which wins over the catalogue's defaults (TSH 0.4-4.0
mIU/L). For the positive/negative antibody tests (aPL, TPO) the lab's own
interpretation decides (catalogue version 2, "Antibody results"): a flag (H,
HH, POS, DET), a text (Detected, Not detected) or a coded positive/negative,
also when the value has no unit or is a comparator such as ">100"; without
one, the lab's range, then RPL_ANTIBODY_CUTOFF units (aCL/anti-beta2GPI). A
value without a unit the service knows *and* without an interpretation is
not used (set aside as unusable). For tests of which the rules read only the
latest result, a long history is validated newest first and no further than the
first usable value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from .facts import AntibodyHistory, Finding, Interpretation, LabResult
from .settings import ExtractionSettings
from .fhir_values import (
    NEGATIVE_CODES, NEGATIVE_WORDS, POSITIVE_CODES, POSITIVE_WORDS, as_date, coding_pairs, concept_text,
    interpretation_flag, numeric_value, observation_date, qualitative_value, reference_of, Validate,
)
from .units import convert
from .valuesets import ValueSetIndex

APL_TESTS = (
    "lupus-anticoagulant",
    "anticardiolipin-igg",
    "anticardiolipin-igm",
    "anti-beta2-glycoprotein-igg",
    "anti-beta2-glycoprotein-igm",
)
QUALITATIVE_TESTS = frozenset({"karyotype", "pregnancy-tissue-genetics"})
# Positive/negative tests: the lab's interpretation decides (definition "Antibody results").
ANTIBODY_TESTS = frozenset({*APL_TESTS, "tpo-antibodies"})
LAB_TESTS = frozenset({*APL_TESTS, "tsh", "free-t4", "tpo-antibodies", "bmi", *QUALITATIVE_TESTS})
# Tests of which the rules read only the latest usable result: a long lab history
# of them is not validated beyond that result (speed; see newest_usable).
LATEST_ONLY = frozenset({"tsh", "free-t4", "tpo-antibodies", "bmi"})
# TSH reference range when the lab gives none (terminology.md).
TSH_DEFAULT_RANGE = (0.4, 4.0)
# aCL / anti-beta2GPI: positive above this when neither interpretation nor range is known.
ANTIBODY_DEFAULT_CUTOFF = 40.0


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
        return LabResult(test=test, source=reference_of(obs), date=observation_date(obs),
                         interpretation=interpretation_flag(obs), text=obs.valueString or concept_text(obs.valueCodeableConcept))
    if test in ANTIBODY_TESTS:
        return _antibody_result(test, obs, settings)
    value, unit, comparator, text = numeric_value(obs)
    when = observation_date(obs)
    flagged = interpretation_flag(obs)
    qualitative = qualitative_value(obs) if value is None else None
    base = dict(test=test, source=reference_of(obs), date=when, comparator=comparator, text=text)
    if value is None:
        return LabResult(**base, interpretation=flagged or qualitative)
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


def lab_interpretation(obs: Any) -> Interpretation | None:
    """Positive or negative as the lab says it, for an antibody test: the interpretation's code
    (H, HH, POS, DET / N, NEG, ND; L counts as negative), its SNOMED CT code or its text
    (Detected, Not detected, positief, ...), else a coded or worded value (valueCodeableConcept
    'Detected', valueString 'negatief', valueBoolean)."""
    flagged = interpretation_flag(obs)
    if flagged in (Interpretation.HIGH, Interpretation.POSITIVE):
        return Interpretation.POSITIVE
    if flagged in (Interpretation.NORMAL, Interpretation.NEGATIVE, Interpretation.LOW):
        return Interpretation.NEGATIVE
    for concept in obs.interpretation or []:
        codes = {code for _, code in coding_pairs(concept)}
        words = {(concept.text or "").strip().lower(), *((c.display or "").strip().lower() for c in concept.coding or [])}
        if codes & POSITIVE_CODES or words & POSITIVE_WORDS:
            return Interpretation.POSITIVE
        if codes & NEGATIVE_CODES or words & NEGATIVE_WORDS:
            return Interpretation.NEGATIVE
    if flagged is Interpretation.ABNORMAL:  # 'A' on a positive/negative test: not negative
        return Interpretation.POSITIVE
    return qualitative_value(obs)


def _antibody_result(test: str, obs: Any, settings: ExtractionSettings) -> LabResult:
    """An aPL or TPO result: the lab's interpretation decides; the number only without one."""
    value, unit, comparator, text = numeric_value(obs)
    lab_says = lab_interpretation(obs)
    base = dict(test=test, source=reference_of(obs), date=observation_date(obs), comparator=comparator, text=text)
    converted = convert(test, value, unit) if value is not None else None
    if converted is None:
        if lab_says is not None:
            # No number to compare (a text, or a value such as ">100" without a unit this service
            # knows): the result is qualitative, shown as recorded.
            shown = text or (f"{comparator or ''}{value:g} {unit or ''}".strip() if value is not None else None)
            return LabResult(**{**base, "text": shown}, interpretation=lab_says)
        if value is None:
            return LabResult(**base)  # neither a number nor an interpretation: counts as no result
        return LabResult(**base, value=value, original_unit=unit, unit_known=False)  # not used
    number, canonical = converted
    low, high = _reference_range(obs, test)
    if lab_says is None and not unit and low is None and high is None:
        # A lupus anticoagulant ratio (no unit of its own) with neither range nor interpretation.
        return LabResult(**base, value=value, original_unit=unit, unit_known=False)  # not used
    return LabResult(
        **base,
        value=number,
        unit=canonical,
        original_unit=unit,
        interpretation=lab_says or _judge(test, number, comparator, low, high, None, settings),
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
    is_antibody = test in ANTIBODY_TESTS  # their lab interpretation was read before (_antibody_result)
    if low is None and high is None:
        if flagged is not None:
            return None if flagged is Interpretation.ABNORMAL else flagged
        if test == "tsh":
            low, high = TSH_DEFAULT_RANGE
        elif test in APL_TESTS and test != "lupus-anticoagulant":
            high = settings.antibody_cutoff
        else:
            return None
    # "<0.01" lies below any positive lower limit; ">150" above any upper limit. A comparator
    # only tells one side: "<100" is not above an upper limit of 20, nor ">30" below one of 40.
    above = comparator not in ("<", "<=")
    below = comparator not in (">", ">=")
    if high is not None and above and (value > high or (value == high and comparator in (">", ">="))):
        return Interpretation.POSITIVE if is_antibody else Interpretation.HIGH
    if low is not None and below and (value < low or (value == low and comparator in ("<", "<="))):
        return Interpretation.NEGATIVE if is_antibody else Interpretation.LOW
    if not below:
        return None  # ">5" is not shown to be within range
    if not above and high is not None and value > high:
        return None  # "<100" against an upper limit of 20
    return Interpretation.NEGATIVE if is_antibody else Interpretation.NORMAL


def lab_results(
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


def raw_date(raw: Mapping[str, Any]) -> date | None:
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


def newest_usable(
    test: str, raws: list[Mapping[str, Any]], today: date, settings: ExtractionSettings, validated: Validate
) -> list[tuple[frozenset[str], Any]]:
    """For tests where only the latest result matters: validate newest first and stop
    at the first result with a usable value. Newer results in an unknown unit, and
    results of that same date (a preliminary may be superseded), are kept too."""
    dated = sorted(((raw_date(r), i) for i, r in enumerate(raws)), key=lambda d: d[0] or date.min, reverse=True)
    kept: list[tuple[frozenset[str], Any]] = []
    found: date | None = None
    for when, i in dated:
        raw = raws[i]
        if when is not None and when > today:
            continue
        if found is not None and when != found:
            break
        model = validated(raw)
        if model is None:
            continue
        kept.append((frozenset({test}), model))
        result = _lab_result(test, model, settings)
        # An antibody result decided by the lab's interpretation alone (">100", flagged H) counts too.
        decided = test in ANTIBODY_TESTS and result.unit_known and result.interpretation is not None
        if found is None and (result.usable or decided):
            found = when
    return kept


def latest(labs: list[LabResult], test: str) -> LabResult | None:
    dated = [r for r in labs if r.test == test]
    return dated[-1] if dated else None


def antibody_history(test: str, labs: list[LabResult]) -> AntibodyHistory:
    results = tuple(r for r in labs if r.test == test)
    return AntibodyHistory(
        test=test,
        results=results,
        positive=tuple(r for r in results if r.interpretation is Interpretation.POSITIVE),
    )


def smoking(observations: list[tuple[frozenset[str], Any]], valuesets: ValueSetIndex) -> Finding | None:
    latest: tuple[date, Any] | None = None
    for names, obs in observations:
        if "smoking-status" in names:
            when = observation_date(obs) or date.min
            if latest is None or when >= latest[0]:
                latest = (when, obs)
    if latest is None or latest[1].valueCodeableConcept is None:
        return None
    obs = latest[1]
    for system, code in coding_pairs(obs.valueCodeableConcept):
        if valuesets.contains("current-smoker", system, code):
            return Finding("current-smoker", reference_of(obs), observation_date(obs), concept_text(obs.valueCodeableConcept))
    return None

