"""The current pregnancy: gestational age, early bleeding, intra-uterine
confirmation and the findings that forbid starting progesterone (E8.6c).
Only explicit evidence counts; an implausible gestational age is unknown.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .conditions import event_date
from .facts import ConditionFact, Finding, Interpretation, PregnancyFacts
from .fhir_values import (
    NOT_PREGNANT_CODES, PREGNANT_CODES, as_date, coding_pairs, interpretation_flag, numeric_value,
    observation_date, qualitative_value, reference_of,
)
from .units import convert

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

# Findings that only an ultrasound of the pregnancy gives (S2), and uterine imaging on record
# (in a pregnancy that is the transvaginal ultrasound of the value set, not its hysteroscopy).
ULTRASOUND_FINDINGS = frozenset(
    {"crown-rump-length", "fetal-heart-activity", "gestational-sac-diameter", "intrauterine-pregnancy", "uterine-imaging"}
)

# A pregnancy Condition or positive test older than this is not a current pregnancy.
PREGNANCY_CONDITION_MAX_DAYS = 300
PREGNANCY_TEST_MAX_DAYS = 42


def findings_of(
    observations: list[tuple[frozenset[str], Any]], procedures: list[tuple[frozenset[str], Any]], today: date
) -> tuple[Finding, ...]:
    found: list[Finding] = []
    for names, obs in observations:
        when = observation_date(obs)
        if when is not None and when > today:
            continue
        for name in names & (PREGNANCY_OBSERVATIONS - {"gestational-age", "estimated-due-date"}):
            found.append(Finding(name, reference_of(obs), when, _finding_value(name, obs)))
        for name in names & {"gestational-age", "estimated-due-date"}:
            found.append(Finding(name, reference_of(obs), when, _finding_value(name, obs)))
    for names, proc in procedures:  # Procedures and DiagnosticReports
        when = _performed(proc)
        for name in sorted(names):
            found.append(Finding(name, reference_of(proc), when, None))
    found.sort(key=lambda f: (f.date or date.min, f.source))
    return tuple(found)


def _performed(resource: Any) -> date | None:
    """When a Procedure was done or a DiagnosticReport's findings were made."""
    if resource.get_resource_type() == "Procedure":
        period = resource.performedPeriod
        return as_date(resource.performedDateTime) or (as_date(period.start) if period else None)
    period = resource.effectivePeriod
    return as_date(resource.effectiveDateTime) or (as_date(period.start) if period else None) or as_date(resource.issued)


def _finding_value(name: str, obs: Any) -> str | None:
    """A normalised text value: 'positive'/'negative', a length in mm, weeks as days, a date."""
    if name in ("crown-rump-length", "gestational-sac-diameter"):
        value, unit, _, _ = numeric_value(obs)
        converted = convert(name, value, unit) if value is not None else None
        return f"{converted[0]:g}" if converted else None
    if name == "gestational-age":
        value, unit, _, _ = numeric_value(obs)
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
        codes = {code for _, code in coding_pairs(obs.valueCodeableConcept)}
        if codes & PREGNANT_CODES:
            return "positive"
        if codes & NOT_PREGNANT_CODES:
            return "negative"
    if name == "fetal-heart-activity":
        value, _, _, _ = numeric_value(obs)
        if value is not None:  # a heart rate: zero means no heart activity
            return "positive" if value > 0 else "negative"
    quality = interpretation_flag(obs) if name == "pregnancy-test" else None
    quality = qualitative_value(obs) or quality
    if quality in (Interpretation.POSITIVE, Interpretation.HIGH):
        return "positive"
    if quality is Interpretation.NEGATIVE:
        return "negative"
    return None


def pregnancy_facts(
    observations: list[tuple[frozenset[str], Any]],
    conditions: tuple[ConditionFact, ...],
    findings: tuple[Finding, ...],
    today: date,
) -> PregnancyFacts:
    sources: list[str] = []
    since: date | None = None  # earliest evidence date of the current pregnancy
    for c in conditions:
        if c.concept == "pregnancy" and c.active:
            when = event_date(c)
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
            when = event_date(c)
            # (A missed miscarriage too: the pregnancy is no longer viable.)
            if c.concept in ("miscarriage", "missed-miscarriage", "molar-pregnancy", "non-visualised-pregnancy-loss") and when and when > since:
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

    # Bleedings of this pregnancy that began before 12 weeks: (onset, GA at onset, source).
    early_bleedings: list[tuple[date | None, int, str]] = []
    for c in conditions:
        if c.concept != "early-pregnancy-bleeding" or ga_days is None:
            continue
        when = event_date(c)
        if when is not None and in_this_pregnancy(when):
            ga_at_bleeding = ga_days - (today - when).days
        elif when is None and c.active:
            ga_at_bleeding = ga_days  # ongoing bleeding, date unknown: judge by today
        else:
            continue
        if 0 <= ga_at_bleeding < 12 * 7:
            early_bleedings.append((when, ga_at_bleeding, c.source))
    # The latest dated one is the one a card shows (E8.6b needs it within the last 14 days).
    latest_bleeding = max(early_bleedings, key=lambda b: (b[0] is not None, b[0] or date.min), default=None)
    intrauterine = next(
        (
            x
            for x in (
                *(c.source for c in conditions if c.concept == "intrauterine-pregnancy" and in_this_pregnancy(event_date(c))),
                *(f.source for f in findings if f.what == "intrauterine-pregnancy" and f.value != "negative" and in_this_pregnancy(f.date)),
            )
        ),
        None,
    )
    # S2: a scan of this pregnancy. Reading: a confirmed intra-uterine pregnancy was seen on
    # ultrasound; a gestational age alone may come from the last menstrual period, so it is not one.
    ultrasound = intrauterine or next(
        (f.source for f in findings if f.what in ULTRASOUND_FINDINGS and in_this_pregnancy(f.date)), None
    )
    return PregnancyFacts(
        current=True,
        ultrasound_source=ultrasound,
        sources=tuple(sources),
        gestational_age_days=ga_days,
        gestational_age_source=ga_source,
        bleeding_before_12_weeks=latest_bleeding is not None,
        bleeding_source=latest_bleeding[2] if latest_bleeding else None,
        bleeding_date=latest_bleeding[0] if latest_bleeding else None,
        bleeding_ga_days=latest_bleeding[1] if latest_bleeding else None,
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
    """E8.6c: CRL > 7 mm without heart activity; sac > 25 mm without fetal parts (or a
    recent missed miscarriage diagnosed from them); ectopic pregnancy; life-threatening
    bleeding. Only explicit evidence counts."""
    found: list[Finding] = []
    for c in conditions:
        if not c.active:
            continue
        if c.concept == "ectopic-pregnancy":
            found.append(Finding("ectopic-pregnancy", c.source, event_date(c)))
        elif c.concept == "anembryonic-pregnancy":
            found.append(Finding("sac-without-embryo", c.source, event_date(c)))
        elif c.concept == "missed-miscarriage" and in_this_pregnancy(event_date(c)):
            # Reading: a missed miscarriage is diagnosed by the E8.6c ultrasound findings
            # (no heart activity at a CRL above 7 mm, or a sac above 25 mm without embryo).
            found.append(Finding("non-viable-pregnancy", c.source, event_date(c)))
        elif c.concept == "early-pregnancy-bleeding" and c.severe:
            # Reading: a bleeding recorded with severity 'severe' is the guideline's
            # life-threatening bleeding; the record has no finer grade.
            found.append(Finding("life-threatening-bleeding", c.source, event_date(c)))
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

