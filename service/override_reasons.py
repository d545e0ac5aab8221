"""Override reasons: the project's CodeSystem, each code placed in HL7's non-adherence categories.

The cards offer reasons specific to a recommendation ("structural abnormality
seen on ultrasound" for an HSG card); HL7's CDS Hooks 3.0 code system
http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes (CDS Hooks
3.0.0; verified on the specification's artifact pages) has general
categories. A published code that fits replaces none of ours, so the cards
keep the project's system and this table maps each code to its HL7 category,
for reports that compare with other CDS services. Every code the cards use
is listed here (tests/test_report.py checks it).
"""

from __future__ import annotations

from cards.catalog import OVERRIDE_REASON_SYSTEM

HL7_NON_ADHERENCE_SYSTEM = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"

# HL7 category: "PC CDS does not apply to patient" - the recommendation does not apply, or the
# patient does not meet its criteria. Every reason the cards offer is of this kind: another
# indication, a finding that makes the investigation or treatment appropriate, wrong data.
NOT_APPLICABLE = "cds-not-applicable"

# code -> (English meaning, HL7 non-adherence category)
PROJECT_REASONS: dict[str, tuple[str, str]] = {
    "other-indication": ("Ordered or prescribed for another indication than recurrent pregnancy loss", NOT_APPLICABLE),
    "research-protocol": ("Part of a research protocol", NOT_APPLICABLE),
    "structural-abnormality": ("Structural abnormality seen on ultrasound", NOT_APPLICABLE),
    "individual-risk": ("Individual risk assessment or family history gives a reason", NOT_APPLICABLE),
    "family-history-thrombosis": ("Family history of thrombosis", NOT_APPLICABLE),
    "systemic-symptoms": ("Symptoms of a systemic disease", NOT_APPLICABLE),
    "specific-question": ("Specific clinical question", NOT_APPLICABLE),
    "oligo-amenorrhoea": ("Oligomenorrhoea or amenorrhoea", NOT_APPLICABLE),
    "suspected-poi": ("Premature ovarian insufficiency suspected", NOT_APPLICABLE),
    "vte-indication": ("Prophylaxis or treatment of venous thromboembolism", NOT_APPLICABLE),
    "cycle-disorder": ("Cycle disorder present", NOT_APPLICABLE),
    "symptomatic": ("Symptoms such as abnormal bleeding", NOT_APPLICABLE),
    "ntd-risk": ("Higher risk of neural-tube defects", NOT_APPLICABLE),
    "finding-outdated": ("Finding no longer current (new ultrasound)", NOT_APPLICABLE),
    "finding-incorrect": ("Finding recorded in error", NOT_APPLICABLE),
    "treated-hypothyroidism": ("Treated hypothyroidism (TSH normal on levothyroxine)", NOT_APPLICABLE),
    "aps-persistent-apl": ("Antiphospholipid syndrome / persistent antiphospholipid antibodies", NOT_APPLICABLE),
    # The order names an indication other than preventing miscarriage (catalogue "Order indication").
    "assisted-reproduction": ("Luteal support or ovulation induction in assisted reproduction", NOT_APPLICABLE),
    "preeclampsia-prevention": ("Pre-eclampsia prevention", NOT_APPLICABLE),
    "cardiovascular-prevention": ("Cardiovascular prevention", NOT_APPLICABLE),
    "immune-thrombocytopenia": ("Immune thrombocytopenia", NOT_APPLICABLE),
    "autoimmune-disease": ("Autoimmune disease", NOT_APPLICABLE),
    "e8-6b-applies": ("Bleeding before 12 weeks in an intra-uterine pregnancy after 3 or more miscarriages (E8.6b)", NOT_APPLICABLE),
}

NO_REASON = "(no reason given)"


def reason_label(system: str | None, code: str | None) -> str:
    """How a report names a reason: our codes by code, others with their system."""
    if not code:
        return NO_REASON
    if system == OVERRIDE_REASON_SYSTEM or system is None:
        return code
    if system == HL7_NON_ADHERENCE_SYSTEM:
        return f"hl7:{code}"
    return f"{system}|{code}"


def hl7_category(system: str | None, code: str | None) -> str | None:
    if system == HL7_NON_ADHERENCE_SYSTEM:
        return code
    if system == OVERRIDE_REASON_SYSTEM and code in PROJECT_REASONS:
        return PROJECT_REASONS[code][1]
    return None
