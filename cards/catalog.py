"""The recommendation catalogue (../shared/guideline/recommendations.md) as data.

One entry per row ID, spelled exactly as in the catalogue: the ID is the
card's ``source.topic.code``. Titles are short English msgids, translated to
Dutch through the message catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

from .i18n import Text, _

TOPIC_SYSTEM = "http://rpl-cds.org/fhir/CodeSystem/recommendation"
OVERRIDE_REASON_SYSTEM = "http://rpl-cds.org/fhir/CodeSystem/override-reason"


@dataclass(frozen=True)
class Source:
    label: str
    url: str | None = None  # only addresses named in the seeds or verified


NVOG_2022 = Source(
    "NVOG 2022 Herhaalde miskraam (ESHRE 2022)",
    "https://richtlijnendatabase.nl/richtlijn/adaptatietraject_internationale_richtlijn_herhaalde_miskraam/",
)
FREYA_2016 = Source("Freya 2016 Herhaalde miskraam", "https://www.freya.nl/")  # seed 001
AZ_TURNHOUT_2024 = Source("AZ Turnhout 2024 Miskraam", "https://www.azturnhout.be/")  # seed 000
# Seed 002 names no address; the same article found online (search, 2026-12-02).
FLOURIA_2025 = Source(
    "Flouria 2025 Omgaan met een miskraam",
    "https://flouria.health/nl/blog/coping-with-miscarriage-emotional-health-stigma-and-finding-support",
)

# The module's own page in the Richtlijnendatabase, where one was found and read (search,
# 2026-12-02: each page's recommendation text matches the row). Rows without one link
# to the guideline's start page and name their module in the source label.
_RDB = "https://richtlijnendatabase.nl/richtlijn/adaptatietraject_internationale_richtlijn_herhaalde_miskraam/"
_WORKUP = _RDB + "onderzoek_bij_koppels_met_herhaalde_miskramen/"
_TREATMENT = _RDB + "prognose_en_behandeling_bij_koppels_met_herhaalde_miskramen/"
MODULE_PAGES: dict[str, str] = {
    # "Trombofilie screening": hereditary thrombophilia and antiphospholipid antibodies (LAC, aCL, anti-beta2GPI)
    "D3.1": _WORKUP + "trombofilie_screening.html",
    "D3.2": _WORKUP + "trombofilie_screening.html",
    # "Schildklierafwijkingen": TSH before conception, TPO antibodies not standard, free T4 when TSH abnormal
    "D5.1a": _WORKUP + "metabole_en_endocriene_factoren/schildklierafwijkingen.html",
    "D5.1b": _WORKUP + "metabole_en_endocriene_factoren/schildklierafwijkingen.html",
    "D5.1c": _WORKUP + "metabole_en_endocriene_factoren/schildklierafwijkingen.html",
    "D5.9": _WORKUP + "metabole_en_endocriene_factoren/hyperhomocyste_nemie_hhcy.html",
    # "Schildklieraandoeningen": overt / subclinical hypothyroidism, euthyroid with TPO antibodies
    "E5.1a": _TREATMENT + "behandeling_van_herhaalde_miskramen_met_metabole_of_endocriene_afwijkingen/schildklieraandoeningen.html",
    "E5.1b": _TREATMENT + "behandeling_van_herhaalde_miskramen_met_metabole_of_endocriene_afwijkingen/schildklieraandoeningen.html",
    "E5.1c": _TREATMENT + "behandeling_van_herhaalde_miskramen_met_metabole_of_endocriene_afwijkingen/schildklieraandoeningen.html",
    # "Progesteron": no progesterone to prevent miscarriage; 2 dd 400 mg vaginally after 3+ losses with bleeding; never start when ...
    "E8.6a": _TREATMENT + "behandeling_van_onbegrepen_herhaalde_miskramen/progesteron.html",
    "E8.6b": _TREATMENT + "behandeling_van_onbegrepen_herhaalde_miskramen/progesteron.html",
    "E8.6c": _TREATMENT + "behandeling_van_onbegrepen_herhaalde_miskramen/progesteron.html",
}


@dataclass(frozen=True)
class Recommendation:
    id: str
    title: str  # msgid
    module: str  # where it stands in its source, e.g. "NVOG 2022, deel E, module 8.6"
    source: Source = NVOG_2022

    @property
    def title_text(self) -> Text:
        return Text(self.title)

    @property
    def url(self) -> str | None:
        """The module's own page where one is known, else the source's page."""
        return MODULE_PAGES.get(self.id, self.source.url)

    @property
    def source_label(self) -> str:
        """The source, with the module number for a guideline row ("..., module E8.6")."""
        if self.source is NVOG_2022:
            return f"{self.source.label}, module {self.module.removeprefix('NVOG 2022 ').replace(' ', '')}"
        return self.source.label


def _nvog(part: str, module: str) -> str:
    return f"NVOG 2022 {part} {module}"


_ROWS = (
    # C - risk factors and healthy behaviour; one lifestyle card may carry them all.
    Recommendation("C", _("Healthy behaviour and risk factors"), _nvog("C", "1-2")),
    Recommendation("C1.1", _("Age and the risk of miscarriage"), _nvog("C", "1.1")),
    Recommendation("C1.2", _("Stress"), _nvog("C", "1.2")),
    Recommendation("C1.3", _("Occupational and environmental exposure"), _nvog("C", "1.3")),
    Recommendation("C2.1", _("Stop smoking"), _nvog("C", "2.1")),
    Recommendation("C2.2", _("Healthy body weight"), _nvog("C", "2.2")),
    Recommendation("C2.3", _("Caffeine"), _nvog("C", "2.3")),
    Recommendation("C2.4", _("Physical activity"), _nvog("C", "2.4")),
    Recommendation("C2.5", _("Alcohol"), _nvog("C", "2.5")),
    Recommendation("C2.6", _("Drugs"), _nvog("C", "2.6")),
    # D - investigations; "D" is the merged card of several D rows (work-up suggestions on
    # patient-view, discouraged tests on order-sign), catalogue "How many cards, in which order".
    Recommendation("D", _("Investigations after recurrent pregnancy loss"), _nvog("D", "1-7")),
    Recommendation("D1", _("History-based work-up and prognosis"), _nvog("D", "1")),
    Recommendation("D2.1", _("Genetic analysis of pregnancy tissue not routinely"), _nvog("D", "2.1")),
    Recommendation("D2.2", _("Parental karyotyping not routinely"), _nvog("D", "2.2")),
    Recommendation("D3.1", _("No routine hereditary thrombophilia screening"), _nvog("D", "3.1")),
    Recommendation("D3.2", _("Antiphospholipid antibody screening"), _nvog("D", "3.2")),
    Recommendation("D4.1", _("No HLA typing"), _nvog("D", "4.1")),
    Recommendation("D4.2", _("No anti-HY antibody screening"), _nvog("D", "4.2")),
    Recommendation("D4.3", _("No cytokine testing"), _nvog("D", "4.3")),
    Recommendation("D4.4", _("ANA not standard"), _nvog("D", "4.4")),
    Recommendation("D4.5", _("No NK-cell testing"), _nvog("D", "4.5")),
    Recommendation("D4.6", _("No anti-HLA antibody screening"), _nvog("D", "4.6")),
    Recommendation("D5.1a", _("Thyroid function screening (TSH)"), _nvog("D", "5.1")),
    Recommendation("D5.1b", _("TPO antibodies not standard"), _nvog("D", "5.1")),
    Recommendation("D5.1c", _("Free T4 when TSH is abnormal"), _nvog("D", "5.1")),
    Recommendation("D5.2", _("No PCOS, fasting glucose or insulin work-up"), _nvog("D", "5.2")),
    Recommendation("D5.3", _("No prolactin without symptoms"), _nvog("D", "5.3")),
    Recommendation("D5.4", _("No routine ovarian reserve testing"), _nvog("D", "5.4")),
    Recommendation("D5.5", _("No luteal phase insufficiency tests"), _nvog("D", "5.5")),
    Recommendation("D5.6", _("No androgen testing"), _nvog("D", "5.6")),
    Recommendation("D5.7", _("No vitamin D testing"), _nvog("D", "5.7")),
    Recommendation("D5.8", _("No routine LH testing"), _nvog("D", "5.8")),
    Recommendation("D5.9", _("No homocysteine testing"), _nvog("D", "5.9")),
    Recommendation("D6", _("Uterine anatomy assessment"), _nvog("D", "6")),
    Recommendation("D7", _("Male partner: lifestyle; no sperm DNA tests"), _nvog("D", "7")),
    # E - prognosis and treatment
    # E - treatment; "E" is the card of draft orders no treatment row could check (their
    # medicine could not be read: cards/unchecked_orders.py).
    Recommendation("E", _("Treatment after recurrent pregnancy loss"), _nvog("E", "1-9")),
    Recommendation("E1", _("Prognosis"), _nvog("E", "1")),
    Recommendation("E2", _("Genetic counselling for a chromosomal abnormality"), _nvog("E", "2")),
    Recommendation("E3.1", _("No anticoagulation for hereditary thrombophilia"), _nvog("E", "3.1")),
    Recommendation("E3.2", _("Aspirin and heparin for APS"), _nvog("E", "3.2")),
    Recommendation("E4", _("No treatment on immune biomarkers"), _nvog("E", "4")),
    Recommendation("E5.1a", _("Levothyroxine for overt hypothyroidism"), _nvog("E", "5.1")),
    Recommendation("E5.1b", _("Subclinical hypothyroidism"), _nvog("E", "5.1")),
    Recommendation("E5.1c", _("No levothyroxine for TPO antibodies alone"), _nvog("E", "5.1")),
    Recommendation("E5.2", _("No hCG for luteal phase insufficiency"), _nvog("E", "5.2")),
    Recommendation("E5.3", _("No metformin to prevent miscarriage"), _nvog("E", "5.3")),
    Recommendation("E5.4", _("No ovulation induction for luteal phase insufficiency"), _nvog("E", "5.4")),
    Recommendation("E5.5", _("No dopamine agonists without a cycle disorder"), _nvog("E", "5.5")),
    Recommendation("E5.6", _("Vitamin D before conception"), _nvog("E", "5.6")),
    Recommendation("E5.7", _("No treatment of hyperhomocysteinaemia"), _nvog("E", "5.7")),
    Recommendation("E6.1", _("No hysteroscopic septum resection"), _nvog("E", "6.1")),
    Recommendation("E6.2", _("No surgery for fibroids, polyps or adhesions to improve outcome"), _nvog("E", "6.2")),
    Recommendation("E6.3", _("Second-trimester loss: cervical surveillance"), _nvog("E", "6.3")),
    Recommendation("E7", _("Male partner: no sperm selection or antioxidants"), _nvog("E", "7")),
    Recommendation("E8.1", _("No lymphocyte immunisation"), _nvog("E", "8.1")),
    Recommendation("E8.2", _("No intravenous immunoglobulin"), _nvog("E", "8.2")),
    Recommendation("E8.3", _("No prednisolone"), _nvog("E", "8.3")),
    Recommendation("E8.4", _("No heparin or aspirin for unexplained RPL"), _nvog("E", "8.4")),
    Recommendation("E8.5", _("Folic acid: for neural-tube defects, not for RPL"), _nvog("E", "8.5")),
    Recommendation("E8.6a", _("No progesterone to prevent miscarriage"), _nvog("E", "8.6")),
    Recommendation("E8.6b", _("Progesterone for early bleeding after three or more miscarriages"), _nvog("E", "8.6")),
    Recommendation("E8.6c", _("Never start progesterone in a non-viable or ectopic pregnancy"), _nvog("E", "8.6")),
    Recommendation("E8.7", _("No intralipid"), _nvog("E", "8.7")),
    Recommendation("E8.8", _("No G-CSF"), _nvog("E", "8.8")),
    Recommendation("E8.9", _("No endometrial scratching"), _nvog("E", "8.9")),
    Recommendation("E9", _("No extra vitamins, antioxidants or acupuncture"), _nvog("E", "9")),
    # S - supportive care from the patient leaflets
    Recommendation("S1", _("Emotional support after miscarriage"), "Flouria 2025", FLOURIA_2025),
    Recommendation("S2", _("Early ultrasound in a new pregnancy"), "AZ Turnhout 2024; Freya 2016", AZ_TURNHOUT_2024),
    Recommendation("S3", _("Folic acid when trying to conceive"), "AZ Turnhout 2024; Freya 2016", AZ_TURNHOUT_2024),
    Recommendation("S4", _("Options after a missed miscarriage"), "AZ Turnhout 2024", AZ_TURNHOUT_2024),
)

CATALOGUE: dict[str, Recommendation] = {row.id: row for row in _ROWS}


def recommendation(rec_id: str) -> Recommendation:
    return CATALOGUE[rec_id]
