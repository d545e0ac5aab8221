"""Test scenarios named after the catalogue ID: for every ID at least one case
where its card fires and one where it must not.

A scenario is a patient record (resources), the hook, the draft orders, and
whether the card with that ID is expected. ``tests/test_catalogue.py`` runs
them all; ``SCENARIOS["E8.6b"]`` finds every case of one recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache

from cards.discouraged_orders import TABLE
from fhir_mappings.valuesets import ATC, RXNORM, ValueSetIndex
from tests.builders import (
    ICD10, ICD10CM, LOINC, SNOMED, apl_panel, condition, ft4, losses, medication_request, miscarriage, observation,
    rpl_diagnosis, service_request, tsh,
)
from tests.conftest import TODAY


@dataclass(frozen=True)
class Scenario:
    rec_id: str
    name: str  # "fires-..." or "silent-..."
    hook: str
    resources: tuple = ()
    drafts: tuple = ()
    birth: str = "1990-05-01"
    selections: tuple | None = None
    extra: dict = field(default_factory=dict)
    gender: str = "female"
    v2: str = ""  # the catalogue version 2 change it tests (a row ID or a definition), for docs/coverage.md

    @property
    def fires(self) -> bool:
        return self.name.startswith("fires")

    @property
    def id(self) -> str:
        return f"{self.rec_id}/{self.name}"


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


@cache
def _valuesets() -> ValueSetIndex:
    return ValueSetIndex.load()


def order_of(concept: str, rid: str | None = None, status: str = "draft", **kw) -> dict:
    """A draft order coded with the first code of the value set (MedicationRequest for drugs)."""
    preferred = _valuesets().preferred(concept)
    rid = rid or f"{concept}-order"
    if preferred.system in (RXNORM, ATC):
        return medication_request(preferred.system, preferred.code, rid=rid, status=status, display=preferred.display, **kw)
    return service_request(preferred.system, preferred.code, rid=rid, status=status, display=preferred.display)


def pregnancy(ga_weeks: float = 9, bleeding_days_ago: int | None = None, intrauterine: bool = True) -> tuple:
    data = [condition(SNOMED, "77386006", onset=day(-40)), observation("11884-4", value=ga_weeks, unit="wk", date=day(0))]
    if bleeding_days_ago is not None:
        data.append(condition(SNOMED, "54048003", onset=day(-bleeding_days_ago)))
    if intrauterine:
        data.append(condition(SNOMED, "65727000", onset=day(-14)))
    return tuple(data)


def persistent_apl() -> tuple:
    return (*apl_panel("2026-01-05", positive=("anticardiolipin-igg",)), *apl_panel("2026-04-20", positive=("anticardiolipin-igg",)))


RPL = (losses(2),)
APS = (losses(3), *persistent_apl())
ONE_LOSS = (losses(1),)
S = Scenario

# -- the discouraged-order table: one pair per row, built from the row itself -----------
CUSTOM_ROWS = {"E3.1", "E5.1c", "E5.3", "E5.7", "E8.4", "E8.5"}
TABLE_SCENARIOS = [
    s
    for row in TABLE
    if row.rec_id not in CUSTOM_ROWS
    for s in (
        S(row.rec_id, f"fires-{row.concepts[0]}-ordered-in-rpl", "order-sign", RPL, (order_of(row.concepts[-1]),)),
        S(row.rec_id, "silent-after-a-single-miscarriage", "order-sign", ONE_LOSS, (order_of(row.concepts[0]),)),
        S(row.rec_id, "silent-when-not-among-the-selections", "order-select", RPL,
          (order_of(row.concepts[0]), order_of("tsh", rid="tsh-draft")), selections=("ServiceRequest/tsh-draft",)),
    )
]
# Version 2: E8.2, E8.3 and E8.9 warn in every RPL, explained or not.
EXPLAINED_TOO = [
    S(rec_id, "fires-when-rpl-is-explained-by-aps", "order-sign", APS, (order_of(concept),))
    for rec_id, concept in (("E8.2", "immunoglobulin-iv"), ("E8.3", "prednisolone-prednisone"),
                            ("E8.9", "endometrial-scratching"))
]


def with_reason(order: dict, system: str, code: str) -> dict:
    return {**order, "reasonCode": [{"coding": [{"system": system, "code": code}]}]}


def running_progesterone(**kw) -> dict:
    return order_of("progesterone", rid="prog-running", status="active", **kw)


def _vaginal(order: dict) -> dict:
    order["dosageInstruction"][0]["route"] = {"coding": [{"system": SNOMED, "code": "16857009"}]}
    return order


ECTOPIC_NOW = condition(SNOMED, "34801009", onset=day(-1))
TPO_POSITIVE = observation("8099-4", value=120, unit="IU/mL", high=35)

# Catalogue version 2 (issue 14): one firing and one silent case per change.
VERSION_2 = [
    S("E8.4", "silent-aspirin-for-preeclampsia-prevention", "order-sign", RPL,
      (with_reason(order_of("low-dose-aspirin", dose_mg=80), ICD10, "O14.9"),)),
    S("E8.4", "silent-with-who-d68-6-possible-aps", "order-sign", (*RPL, condition(ICD10, "D68.6")), (order_of("heparins"),)),
    S("E8.6a", "silent-for-luteal-support-after-ivf", "patient-view", RPL,
      (with_reason(order_of("progesterone", status="active"), ICD10, "Z31.2"),)),
    S("E8.6a", "fires-for-active-progesterone-without-reason", "patient-view", (*RPL, order_of("progesterone", status="active"))),
    S("E5.2", "silent-hcg-as-ovulation-trigger-in-ivf", "order-sign", RPL, (with_reason(order_of("hcg"), ICD10, "Z31.2"),)),
    S("E5.1c", "silent-on-patient-view-for-levothyroxine-taken", "patient-view",
      (*RPL, tsh(2.1), TPO_POSITIVE, order_of("levothyroxine", status="active"))),
    S("E5.1c", "silent-repeat-prescription-of-levothyroxine-taken", "order-sign",
      (*RPL, tsh(2.1), TPO_POSITIVE, order_of("levothyroxine", rid="levo-old", status="active")),
      (order_of("levothyroxine", rid="levo-repeat"),)),
    S("E5.1a", "fires-tests-for-a-diagnosis-without-tsh", "patient-view", (*RPL, condition(ICD10, "E03.9"))),
    S("E5.1a", "silent-stale-code-with-normal-labs", "patient-view",
      (*RPL, condition(ICD10, "E03.9", onset="2019-01-01"), tsh(1.8, date="2026-11-10"), ft4(16.0, date="2026-11-10", low=12, high=22))),
    S("D3.2", "fires-repeat-of-a-single-positive", "patient-view",
      (*RPL, *apl_panel("2026-09-01", positive=("anticardiolipin-igg",)))),
    S("D3.2", "silent-two-positives-12-weeks-apart", "patient-view", (*RPL, *persistent_apl())),
    S("E8.6c", "fires-stop-running-progesterone-in-ectopic", "patient-view",
      (*RPL, ECTOPIC_NOW, running_progesterone(dose_mg=200, per_day=2))),
    S("E8.6c", "silent-running-progesterone-without-finding", "patient-view", (*RPL, *pregnancy(), running_progesterone())),
    S("E8.6b", "fires-course-complete-at-16-weeks", "patient-view",
      (losses(3), *pregnancy(ga_weeks=16, bleeding_days_ago=50), _vaginal(running_progesterone(dose_mg=400, per_day=2)))),
    S("E8.6b", "fires-running-200mg-gets-the-endorsed-dose", "patient-view",
      (losses(3), *pregnancy(bleeding_days_ago=5), _vaginal(running_progesterone(dose_mg=200, per_day=2)))),
    S("E8.6b", "silent-bleeding-more-than-14-days-ago", "patient-view", (losses(3), *pregnancy(bleeding_days_ago=15))),
]

THROMBOPHILIA = condition(ICD10CM, "D68.51")  # ICD-10-CM: activated protein C resistance (factor V Leiden)

LOGIC_SCENARIOS = [
    # C - lifestyle card (carries C1.1-C2.6)
    S("C", "fires-for-rpl", "patient-view", RPL),
    S("C", "silent-after-a-single-miscarriage", "patient-view", ONE_LOSS),
    S("C", "silent-on-order-sign", "order-sign", RPL, (order_of("tsh"),)),
    # D3.2, D5.1a: see also tests/test_d3_2.py, tests/test_d5_1.py
    S("D3.2", "fires-without-antibody-results", "patient-view", RPL),
    S("D3.2", "silent-with-all-five-results", "patient-view", (*RPL, *apl_panel("2026-02-01"))),
    S("D5.1a", "fires-without-tsh", "patient-view", RPL),
    S("D5.1a", "silent-with-tsh-this-year", "patient-view", (*RPL, tsh(2.0, date="2026-05-01"))),
    # D5.1c
    S("D5.1c", "fires-tsh-6.5-without-ft4", "patient-view", (*RPL, tsh(6.5))),
    S("D5.1c", "fires-tsh-low-without-ft4", "patient-view", (*RPL, tsh(0.1))),
    S("D5.1c", "silent-tsh-4.0-is-in-range", "patient-view", (*RPL, tsh(4.0))),
    S("D5.1c", "silent-ft4-with-the-tsh", "patient-view", (*RPL, tsh(6.5), ft4(14.0, low=12, high=22))),
    S("D5.1c", "silent-tsh-6.5-older-than-12-months", "patient-view", (*RPL, tsh(6.5, date="2025-06-01"))),
    S("D5.1c", "fires-above-the-labs-own-range", "patient-view", (*RPL, tsh(3.8, low=0.3, high=3.5))),
    # D6
    S("D6", "fires-without-uterine-imaging", "patient-view", RPL),
    S("D6", "silent-after-a-hysteroscopy", "patient-view", (*RPL, {
        "resourceType": "Procedure", "id": "hsc", "status": "completed", "subject": {"reference": "Patient/pat-1"},
        "code": {"coding": [{"system": SNOMED, "code": "88355005"}]}, "performedDateTime": "2025-10-01"})),
    S("D6", "silent-after-a-transvaginal-ultrasound-report", "patient-view", (*RPL, {
        "resourceType": "DiagnosticReport", "id": "tvus", "status": "final", "subject": {"reference": "Patient/pat-1"},
        "code": {"coding": [{"system": LOINC, "code": "24677-7"}]}, "effectiveDateTime": "2025-09-01"})),
    S("D6", "fires-when-the-ultrasound-report-is-only-registered", "patient-view", (*RPL, {
        "resourceType": "DiagnosticReport", "id": "tvus", "status": "registered", "subject": {"reference": "Patient/pat-1"},
        "code": {"coding": [{"system": LOINC, "code": "24677-7"}]}})),
    S("D6", "silent-during-a-pregnancy", "patient-view", (*RPL, *pregnancy())),
    S("D6", "silent-when-ultrasound-is-ordered", "patient-view", (*RPL, order_of("uterine-imaging", status="active"))),
    # E1 (with D1)
    S("E1", "fires-for-rpl", "patient-view", RPL),
    S("E1", "silent-after-a-single-miscarriage", "patient-view", ONE_LOSS),
    S("D1", "fires-within-the-e1-card", "patient-view", RPL, extra={"topic": "E1"}),
    S("D1", "silent-after-a-single-miscarriage", "patient-view", ONE_LOSS, extra={"topic": "E1"}),
    # E2
    S("E2", "fires-balanced-translocation-carrier", "patient-view", (*RPL, condition(ICD10, "Q95.0"))),
    S("E2", "fires-abnormal-karyotype", "patient-view", (*RPL, observation("29770-5", string="46,XX,t(11;22)", interpretation="A"))),
    S("E2", "silent-normal-karyotype", "patient-view", (*RPL, observation("29770-5", string="46,XX", interpretation="N"))),
    S("E2", "silent-when-already-referred", "patient-view", (*RPL, condition(ICD10, "Q95.0"), order_of("genetic-counselling", status="active"))),
    # E3.2
    S("E3.2", "fires-aps-three-losses", "patient-view", APS),
    S("E3.2", "fires-two-losses-persistent-antibodies", "patient-view", (losses(2), *persistent_apl())),
    S("E3.2", "fires-aps-diagnosis-three-losses", "patient-view", (losses(3), condition(SNOMED, "26843008"))),
    S("E3.2", "silent-aps-diagnosis-two-losses-without-persistence", "patient-view", (losses(2), condition(SNOMED, "26843008"))),
    S("E3.2", "silent-positive-once", "patient-view", (losses(3), *apl_panel("2026-04-20", positive=("anticardiolipin-igg",)))),
    S("E3.2", "silent-when-aspirin-is-active", "patient-view", (*APS, order_of("low-dose-aspirin", status="active"))),
    # E3.1 (table row with its own condition)
    S("E3.1", "fires-lmwh-in-hereditary-thrombophilia", "order-sign", (*RPL, THROMBOPHILIA), (order_of("heparins"),)),
    S("E3.1", "silent-with-aps", "order-sign", (*APS, THROMBOPHILIA), (order_of("heparins"),)),
    S("E3.1", "silent-without-thrombophilia", "order-sign", APS, (order_of("heparins"),)),
    # E4
    S("E4", "fires-prednisolone-citing-nk-cells-in-explained-rpl", "order-sign", APS, (
        {**order_of("prednisolone-prednisone"), "reasonCode": [{"coding": [{"system": LOINC, "code": "18267-5"}]}]},)),
    S("E4", "silent-without-an-immune-reason", "order-sign", APS, (order_of("prednisolone-prednisone"),)),
    # E5.1a / E5.1b / E5.1c
    S("E5.1a", "fires-tsh-high-ft4-low", "patient-view", (*RPL, tsh(12.0), ft4(8.0, low=12, high=22))),
    S("E5.1a", "fires-hypothyroidism-without-treatment", "patient-view", (*RPL, condition(SNOMED, "40930008"))),
    S("E5.1a", "silent-when-levothyroxine-is-active", "patient-view", (*RPL, condition(SNOMED, "40930008"), order_of("levothyroxine", status="active"))),
    S("E5.1a", "silent-tsh-high-ft4-normal", "patient-view", (*RPL, tsh(12.0), ft4(15.0, low=12, high=22))),
    S("E5.1b", "fires-tsh-above-10-ft4-normal", "patient-view", (*RPL, tsh(10.5), ft4(15.0, low=12, high=22))),
    S("E5.1b", "fires-tsh-6.5-ft4-normal-counsel", "patient-view", (*RPL, tsh(6.5), ft4(15.0, low=12, high=22))),
    S("E5.1b", "silent-tsh-4.0", "patient-view", (*RPL, tsh(4.0), ft4(15.0, low=12, high=22))),
    S("E5.1b", "silent-tsh-above-10-older-than-12-months", "patient-view",
      (*RPL, tsh(10.5, date="2025-06-01"), ft4(15.0, low=12, high=22, date="2025-06-01"))),
    S("E5.1b", "silent-without-ft4", "patient-view", (*RPL, tsh(6.5))),
    S("E5.1c", "fires-levothyroxine-for-tpo-with-normal-tsh", "order-sign",
      (*RPL, tsh(2.0), observation("8099-4", value=120, unit="IU/mL", high=35)), (order_of("levothyroxine"),)),
    S("E5.1c", "silent-tpo-negative", "order-sign",
      (*RPL, tsh(2.0), observation("8099-4", value=10, unit="IU/mL", high=35)), (order_of("levothyroxine"),)),
    S("E5.1c", "silent-tsh-high", "order-sign",
      (*RPL, tsh(12.0), observation("8099-4", value=120, unit="IU/mL", high=35)), (order_of("levothyroxine"),)),
    # D5.2 with diabetes: glucose tests serve its care
    S("D5.2", "silent-with-diabetes", "order-sign", (*RPL, condition(SNOMED, "44054006")), (order_of("pcos-glucose-insulin"),)),
    # E5.3
    S("E5.3", "fires-metformin-without-diabetes", "order-sign", RPL, (order_of("metformin"),)),
    S("E5.3", "silent-with-diabetes", "order-sign", (*RPL, condition(SNOMED, "44054006")), (order_of("metformin"),)),
    # E5.7: only B vitamins given for a raised homocysteine
    S("E5.7", "fires-b-vitamins-citing-a-homocysteine-result", "order-sign",
      (*RPL, observation("13965-9", value=18, unit="umol/L", rid="hcy-1")),
      ({**order_of("homocysteine-vitamins"), "reasonReference": [{"reference": "Observation/hcy-1"}]},)),
    S("E5.7", "silent-b12-without-homocysteine-reason", "order-sign", RPL, (order_of("homocysteine-vitamins"),)),
    S("E5.7", "silent-after-a-single-miscarriage", "order-sign",
      (*ONE_LOSS, observation("13965-9", value=18, unit="umol/L", rid="hcy-1")),
      ({**order_of("homocysteine-vitamins"), "reasonReference": [{"reference": "Observation/hcy-1"}]},)),
    # E5.6
    S("E5.6", "fires-for-rpl", "patient-view", RPL),
    S("E5.6", "silent-when-vitamin-d-is-taken", "patient-view", (*RPL, order_of("vitamin-d", status="active"))),
    # E6.3
    S("E6.3", "fires-pregnant-after-second-trimester-loss", "patient-view",
      (*RPL, condition(SNOMED, "85116003", onset="2025-04-01", clinical="resolved"), *pregnancy())),
    S("E6.3", "silent-when-not-pregnant", "patient-view", (*RPL, condition(SNOMED, "85116003", onset="2025-04-01", clinical="resolved"))),
    # E8.4
    S("E8.4", "fires-lmwh-in-unexplained-rpl", "order-sign", RPL, (order_of("heparins"),)),
    S("E8.4", "fires-aspirin-80mg-in-unexplained-rpl", "order-sign", RPL, (order_of("low-dose-aspirin", dose_mg=80),)),
    S("E8.4", "silent-aspirin-500mg-is-not-low-dose", "order-sign", RPL, (order_of("low-dose-aspirin", dose_mg=500),)),
    S("E8.4", "silent-in-aps", "order-sign", APS, (order_of("heparins"),)),
    # E8.5 / S3
    S("E8.5", "fires-counsel-for-rpl", "patient-view", RPL),
    S("E8.5", "fires-warning-high-dose-for-rpl", "order-sign", RPL, (
        {**order_of("folic-acid", dose_mg=5), "reasonCode": [{"coding": [{"system": SNOMED, "code": "102878001"}]}]},)),
    S("E8.5", "silent-high-dose-without-rpl-reason", "order-sign", RPL, (order_of("folic-acid", dose_mg=5),)),
    S("E8.5", "silent-when-folic-acid-is-taken", "patient-view", (*RPL, order_of("folic-acid", status="active"))),
    S("S3", "fires-after-a-single-miscarriage", "patient-view", ONE_LOSS),
    S("S3", "silent-pregnant-beyond-12-weeks", "patient-view", (*ONE_LOSS, *pregnancy(ga_weeks=13))),
    # E8.6: see tests/test_e8_6.py for every boundary
    S("E8.6a", "fires-progesterone-in-rpl", "order-select", RPL, (order_of("progesterone"),)),
    S("E8.6a", "silent-without-rpl", "order-select", ONE_LOSS, (order_of("progesterone"),)),
    S("E8.6b", "fires-bleeding-before-12-weeks-after-3-losses", "patient-view", (losses(3), *pregnancy(bleeding_days_ago=7))),
    S("E8.6b", "fires-replacing-a-200mg-draft-with-the-endorsed-dose", "order-sign",
      (losses(3), *pregnancy(bleeding_days_ago=7)), (order_of("progesterone", dose_mg=200),)),
    S("E8.6b", "silent-after-2-losses", "patient-view", (losses(2), *pregnancy(bleeding_days_ago=7))),
    S("E8.6c", "fires-ectopic", "order-sign", (losses(2), condition(SNOMED, "34801009", onset=day(-1))), (order_of("progesterone"),)),
    S("E8.6c", "silent-without-finding", "order-sign", (losses(2), *pregnancy()), (order_of("progesterone"),)),
    # S1, S2, S4
    S("S1", "fires-after-a-miscarriage", "patient-view", (miscarriage("2026-09-01"),)),
    S("S1", "silent-without-a-miscarriage", "patient-view", ()),
    S("S2", "fires-pregnant-9-weeks-after-a-miscarriage", "patient-view", (*ONE_LOSS, *pregnancy(intrauterine=False))),
    S("S2", "silent-pregnant-without-earlier-miscarriage", "patient-view", pregnancy()),
    S("S2", "silent-in-an-ectopic-pregnancy", "patient-view",
      (*ONE_LOSS, *pregnancy(intrauterine=False), condition(SNOMED, "34801009", onset=day(-1)))),
    S("S2", "silent-beyond-the-first-trimester", "patient-view", (*ONE_LOSS, *pregnancy(ga_weeks=15))),
    S("S4", "fires-active-missed-miscarriage", "patient-view", (condition(SNOMED, "16607004", onset=day(-2)),)),
    S("S4", "silent-resolved-missed-miscarriage", "patient-view", (condition(SNOMED, "16607004", onset=day(-200), clinical="resolved"),)),
]

# -- catalogue version 2: whose chart and timing (cards/timing.py) ---------------------
def scan(crl_mm: float, heart: float, when: int = 0) -> tuple:
    """An ultrasound of this pregnancy: crown-rump length and fetal heart rate."""
    return (observation("11957-8", value=crl_mm, unit="mm", date=day(when)),
            observation("11948-7", value=heart, unit="/min", date=day(when)))


HIS_RPL = (rpl_diagnosis(),)  # the couple's RPL diagnosis, on the man's chart
MALE = dict(gender="male", v2="Whose chart")
LONG_AGO = (miscarriage(day(-800)), miscarriage(day(-400)))  # RPL, last loss 13 months ago
RECENT = (miscarriage(day(-400)), miscarriage(day(-100)))  # RPL, last loss 3 months ago
MISSED_TODAY = condition(SNOMED, "16607004", onset=day(0))
ECTOPIC_TODAY = condition(SNOMED, "34801009", onset=day(0))
TIMING = dict(v2="Timing")

WHOSE_CHART_AND_TIMING = [
    # Whose chart: a man's chart gets only D7 and E7, on every hook
    S("D7", "fires-on-the-male-partners-chart", "order-sign", HIS_RPL, (order_of("sperm-dna-fragmentation"),), **MALE),
    S("D7", "fires-on-the-male-partners-chart-for-an-active-order", "patient-view", (*HIS_RPL,
      order_of("sperm-dna-fragmentation", status="active")), **MALE),
    S("E7", "fires-on-the-male-partners-chart", "order-select", HIS_RPL, (order_of("sperm-selection"),), **MALE),
    S("E7", "silent-on-the-male-partners-chart-without-rpl", "order-sign", (), (order_of("sperm-selection"),), **MALE),
    S("C", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("D3.2", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("D5.1a", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("D6", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("E1", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("E5.6", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("E8.5", "silent-on-the-male-partners-chart", "patient-view", HIS_RPL, **MALE),
    S("S1", "silent-on-the-male-partners-chart", "patient-view", (miscarriage(day(-30)),), **MALE),
    S("E3.2", "silent-on-the-male-partners-chart", "patient-view", APS, **MALE),
    S("E8.2", "silent-on-the-male-partners-chart", "order-sign", HIS_RPL, (order_of("immunoglobulin-iv"),), **MALE),
    S("E8.6a", "silent-on-the-male-partners-chart", "order-select", HIS_RPL, (order_of("progesterone"),), **MALE),
    S("E8.4", "silent-on-the-male-partners-chart", "order-sign", HIS_RPL, (order_of("heparins"),), **MALE),
    # Timing: counselling rows only within 12 months of the last dated loss
    S("C", "fires-within-12-months-of-the-last-loss", "patient-view", RECENT, **TIMING),
    S("C", "fires-when-no-loss-has-a-date", "patient-view", RPL, **TIMING),
    S("C", "silent-more-than-12-months-after-the-last-loss", "patient-view", LONG_AGO, **TIMING),
    S("E1", "fires-within-12-months-of-the-last-loss", "patient-view", RECENT, **TIMING),
    S("E1", "silent-more-than-12-months-after-the-last-loss", "patient-view", LONG_AGO, **TIMING),
    S("E1", "silent-during-a-pregnancy", "patient-view", (*RPL, *pregnancy()), **TIMING),
    S("E5.6", "fires-within-12-months-of-the-last-loss", "patient-view", RECENT, **TIMING),
    S("E5.6", "silent-more-than-12-months-after-the-last-loss", "patient-view", LONG_AGO, **TIMING),
    S("E5.6", "silent-during-a-pregnancy", "patient-view", (*RPL, *pregnancy()), **TIMING),
    S("E8.5", "fires-continue-to-12-weeks-in-a-pregnancy-of-9-weeks", "patient-view", (*RPL, *pregnancy(ga_weeks=9)),
      extra={"summary": "until 12 weeks"}, **TIMING),
    S("E8.5", "silent-pregnant-from-12-weeks", "patient-view", (*RPL, *pregnancy(ga_weeks=12)), **TIMING),
    S("E8.5", "silent-in-an-ectopic-pregnancy", "patient-view",
      (*RPL, *pregnancy(ga_weeks=7, intrauterine=False), condition(SNOMED, "34801009", onset=day(-3))), **TIMING),
    S("E8.5", "silent-in-a-non-viable-pregnancy", "patient-view", (*RPL, *pregnancy(ga_weeks=9), *scan(9, 0, -1)), **TIMING),
    S("E8.5", "silent-more-than-12-months-after-the-last-loss", "patient-view", LONG_AGO, **TIMING),
    S("E8.5", "fires-warning-high-dose-more-than-12-months-after-the-last-loss", "order-sign", LONG_AGO, (
        {**order_of("folic-acid", dose_mg=5), "reasonCode": [{"coding": [{"system": SNOMED, "code": "102878001"}]}]},),
      **TIMING),
    S("S3", "fires-within-12-months-of-the-miscarriage", "patient-view", (miscarriage(day(-300)),), **TIMING),
    S("S3", "silent-more-than-12-months-after-the-miscarriage", "patient-view", (miscarriage(day(-400)),), **TIMING),
    S("S1", "fires-within-12-months-of-the-miscarriage", "patient-view", (miscarriage(day(-300)),), **TIMING),
    S("S1", "fires-when-the-loss-has-no-date", "patient-view", ONE_LOSS, **TIMING),
    S("S1", "silent-more-than-12-months-after-the-miscarriage", "patient-view", (miscarriage(day(-400)),), **TIMING),
    # S2: before 8 weeks, or while no scan of this pregnancy is recorded; never with an E8.6c finding
    S("S2", "fires-before-8-weeks-after-a-scan", "patient-view", (*ONE_LOSS, *pregnancy(ga_weeks=7)), **TIMING),
    S("S2", "fires-at-9-weeks-without-a-scan", "patient-view", (*ONE_LOSS, *pregnancy(ga_weeks=9, intrauterine=False)),
      **TIMING),
    S("S2", "silent-at-9-weeks-after-a-scan", "patient-view", (*ONE_LOSS, *pregnancy(ga_weeks=9)), **TIMING),
    S("S2", "silent-at-10-weeks-after-a-crl-measurement", "patient-view",
      (*ONE_LOSS, *pregnancy(ga_weeks=10, intrauterine=False), *scan(30, 160, -7)), **TIMING),
    S("S2", "silent-with-a-non-viable-finding-before-8-weeks", "patient-view",
      (*ONE_LOSS, *pregnancy(ga_weeks=7, intrauterine=False), *scan(8, 0)), **TIMING),
    # The day of an acute loss: only S4, E8.6c and the work-up suggestions on patient-view
    S("S4", "fires-on-the-day-of-a-missed-miscarriage", "patient-view", (*RPL, MISSED_TODAY), **TIMING),
    S("D3.2", "fires-on-the-day-of-a-missed-miscarriage", "patient-view", (*RPL, MISSED_TODAY), **TIMING),
    S("D6", "fires-on-the-day-of-a-missed-miscarriage", "patient-view", (*RPL, MISSED_TODAY), **TIMING),
    S("C", "silent-on-the-day-of-a-missed-miscarriage", "patient-view", (*RPL, MISSED_TODAY), **TIMING),
    S("E1", "silent-on-the-day-of-a-missed-miscarriage", "patient-view", (*RPL, MISSED_TODAY), **TIMING),
    S("S1", "silent-on-the-day-of-a-missed-miscarriage", "patient-view", (*RPL, MISSED_TODAY), **TIMING),
    S("S1", "fires-the-day-after-a-missed-miscarriage", "patient-view",
      (*RPL, condition(SNOMED, "16607004", onset=day(-1))), **TIMING),
    S("E3.2", "silent-on-the-day-of-a-missed-miscarriage", "patient-view", (*APS, MISSED_TODAY), **TIMING),
    S("E8.5", "silent-on-the-day-of-an-ectopic-pregnancy", "patient-view", (*RPL, ECTOPIC_TODAY), **TIMING),
    S("E8.6c", "fires-on-the-day-of-an-ectopic-pregnancy", "order-sign", (*RPL, ECTOPIC_TODAY), (order_of("progesterone"),),
      **TIMING),
    S("E8.6c", "fires-for-active-progesterone-on-the-day-of-an-ectopic-pregnancy", "patient-view",
      (*RPL, ECTOPIC_TODAY, order_of("progesterone", rid="prog-active", status="active")), **TIMING),
    S("E8.4", "silent-on-patient-view-on-the-day-of-a-missed-miscarriage", "patient-view",
      (*RPL, MISSED_TODAY, order_of("heparins", rid="lmwh-active", status="active")), **TIMING),
    S("E8.4", "fires-on-patient-view-the-day-after-a-missed-miscarriage", "patient-view",
      (*RPL, condition(SNOMED, "16607004", onset=day(-1)), order_of("heparins", rid="lmwh-active", status="active")),
      **TIMING),
    S("E8.4", "fires-on-order-sign-on-the-day-of-a-missed-miscarriage", "order-sign", (*RPL, MISSED_TODAY),
      (order_of("heparins"),), **TIMING),
]

# The version-2 change each case of VERSION_2 and EXPLAINED_TOO is about (docs/coverage.md): its row,
# or the definition it tests.
V2_DEFINITIONS = {
    "E8.4/silent-aspirin-for-preeclampsia-prevention": "Order indication",
    "E8.6a/silent-for-luteal-support-after-ivf": "Order indication",
    "E5.2/silent-hcg-as-ovulation-trigger-in-ivf": "Order indication",
    "E8.4/silent-with-who-d68-6-possible-aps": "Possible APS",
    "E5.1c/silent-on-patient-view-for-levothyroxine-taken": "Treated condition",
    "E5.1c/silent-repeat-prescription-of-levothyroxine-taken": "Treated condition",
}
TAGGED = [replace(s, v2=s.v2 or V2_DEFINITIONS.get(s.id, s.rec_id)) for s in (*EXPLAINED_TOO, *VERSION_2)]



def by_reference(medication: str = "Medication/unknown-med", rid: str = "rx-by-ref") -> dict:
    """A draft MedicationRequest as Epic sends it: its medicine in a separate Medication."""
    order = medication_request(RXNORM, "0", rid=rid)
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": medication}
    return order


def naming_no_medicine(rid: str = "rx-nameless") -> dict:
    order = medication_request(RXNORM, "0", rid=rid)
    order["medicationCodeableConcept"] = {"coding": [{"system": RXNORM}]}  # no code, no display, no text
    return order


READABLE_PROGESTERONE = {"resourceType": "Medication", "id": "unknown-med",
                         "code": {"coding": [{"system": RXNORM, "code": "8727", "display": "progesterone"}]}}

# E: a draft medication order no treatment row could check is said, not silently ignored (issue 15,
# item 2). The scenarios have no fhirServer: a Medication not in the request cannot be read.
UNCHECKED_ORDERS = [
    S("E", "fires-for-a-draft-whose-medication-could-not-be-read", "order-sign", RPL, (by_reference(),)),
    S("E", "fires-for-a-draft-that-names-no-medicine", "order-sign", RPL, (naming_no_medicine(),)),
    S("E", "fires-in-a-pregnancy-without-rpl", "order-select", (*ONE_LOSS, *pregnancy()), (by_reference(),),
      selections=("MedicationRequest/rx-by-ref",)),
    S("E", "silent-when-the-medication-is-in-the-draft-orders", "order-sign", RPL,
      (by_reference(), READABLE_PROGESTERONE)),
    S("E", "silent-without-rpl-or-pregnancy", "order-sign", ONE_LOSS, (by_reference(),)),
    S("E", "silent-on-order-select-for-a-draft-not-newly-selected", "order-select", RPL,
      (by_reference(), order_of("folic-acid", rid="folic")), selections=("MedicationRequest/folic",)),
    S("E", "silent-on-patient-view", "patient-view", (*RPL, by_reference())),
]

ALL = [*TABLE_SCENARIOS, *LOGIC_SCENARIOS, *TAGGED, *WHOSE_CHART_AND_TIMING, *UNCHECKED_ORDERS]
SCENARIOS: dict[str, list[Scenario]] = {}
for _s in ALL:
    SCENARIOS.setdefault(_s.rec_id, []).append(_s)
