"""'Do not order X' recommendations: one rule over a table.

Each row names the catalogue ID, the value sets of the discouraged orders,
the patients it applies to, the card texts and the override reasons that fit
the row. The rule warns about orders in scope (selected drafts on
order-select, all drafts on order-sign, active treatments on patient-view)
and offers to remove each draft order.

Reading of the catalogue: these rows advise against an order *in RPL care*;
the same drug or test can be right for another indication (IVIg in immune
thrombocytopenia, HLA typing before a transplant), so a row fires only when
RPL is recorded, and E8.4, which the catalogue restricts to unexplained RPL,
only then (version 2: E8.2, E8.3 and E8.9 warn in every RPL, explained or not).
The rows about a treatment given to prevent miscarriage (E5.2, E5.4, E8.2,
E8.3, E8.4) leave alone an order that names another indication (catalogue
"Order indication", cards.common.OTHER_INDICATIONS) and offer the matching
indications as override reasons. Each card offers 'ordered for another
indication' as override reason.

E5.1c (no levothyroxine for TPO antibodies alone) needs the patient's
medication history and lives in cards.e5_1_thyroid_treatment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from fhir_mappings.facts import OrderFact, PatientFacts

from .common import (
    indication_overrides, loss_fact, names_other_indication, order_fact, orders_to_check, override, remove_draft,
)
from .i18n import Text, _
from .model import CardDraft, Indicator, OverrideReason, RuleContext

# -- who a row applies to ------------------------------------------------------------


def rpl(facts: PatientFacts) -> bool:
    return facts.has_rpl


def thrombophilia_without_aps(facts: PatientFacts) -> bool:
    """E3.1: hereditary thrombophilia on record, APS criteria not met and no possible APS
    (catalogue "Possible APS": D68.6 or another APS code is never a reason for E3.1)."""
    return (
        facts.has_rpl
        and facts.active_condition("hereditary-thrombophilia") is not None
        and not facts.aps_criteria_met
        and facts.possible_aps is None
    )


def unexplained_without_thrombophilia(facts: PatientFacts) -> bool:
    """E8.4: unexplained RPL; with hereditary thrombophilia E3.1 says the same, more precisely."""
    return facts.unexplained_rpl and facts.active_condition("hereditary-thrombophilia") is None


def rpl_without_diabetes(facts: PatientFacts) -> bool:
    """E5.3, and D5.2: with diabetes on record, glucose tests and metformin serve its care."""
    return facts.has_rpl and facts.active_condition("diabetes") is None


# -- which orders of a class a row judges --------------------------------------------
LOW_DOSE_ASPIRIN_MAX_MG = 100
HIGH_DOSE_FOLIC_ACID_MG = 1.0  # above the 0.4-0.5 mg/day advised before conception


def any_order(order: OrderFact) -> bool:
    return True


def not_high_dose_aspirin(order: OrderFact) -> bool:
    """Aspirin above 100 mg/day is not the low-dose treatment E8.4 is about."""
    if "low-dose-aspirin" in order.classes and "heparins" not in order.classes:
        return order.daily_dose_mg is None or order.daily_dose_mg <= LOW_DOSE_ASPIRIN_MAX_MG
    return True


# E3.1 says anticoagulation belongs to the VTE indications only: an anticoagulant order that names
# such an indication (or pre-eclampsia or cardiovascular prevention, as E8.4) is not what it warns about.
ANTICOAGULANT_INDICATIONS = (
    "indication-venous-thromboembolism", "indication-preeclampsia-prevention", "indication-cardiovascular-prevention",
)


def not_for_an_anticoagulant_indication(order: OrderFact) -> bool:
    return not order.reason & frozenset(ANTICOAGULANT_INDICATIONS)


def cites_homocysteine(order: OrderFact) -> bool:
    """E5.7 is about B vitamins given *for* a raised homocysteine: the order cites a
    homocysteine result as its reason. B12 or B6 for a deficiency is another matter."""
    return "homocysteine" in order.reason


def folic_acid_high_dose_for_rpl(order: OrderFact) -> bool:
    """E8.5: high-dose folic acid whose order gives RPL or miscarriage as the reason."""
    return (
        order.daily_dose_mg is not None
        and order.daily_dose_mg > HIGH_DOSE_FOLIC_ACID_MG
        and bool(order.reason & {"recurrent-pregnancy-loss", "miscarriage"})
    )


@dataclass(frozen=True)
class DiscouragedOrder:
    rec_id: str
    concepts: tuple[str, ...]  # value-set names of the discouraged orders
    applies: Callable[[PatientFacts], bool]
    summary: str  # msgid
    advice: str  # msgid
    override_reasons: tuple[OverrideReason, ...] = ()
    judges: Callable[[OrderFact], bool] = any_order
    indicator: Indicator = Indicator.WARNING
    # Catalogue "Order indication": a row about a treatment given to prevent miscarriage stays
    # silent for an order that names another indication, and offers these as override reasons.
    indications: tuple[str, ...] = ()

    @property
    def prevents_miscarriage(self) -> bool:
        return bool(self.indications)
    # The summary that names the one ingredient ordered (msgid by ingredient); the row's summary otherwise.
    summary_by_ingredient: Mapping[str, str] = field(default_factory=dict)


OTHER_INDICATION = override("other-indication", _("Ordered for another indication than recurrent pregnancy loss"))
RESEARCH = override("research-protocol", _("Part of a research protocol"))

TABLE: tuple[DiscouragedOrder, ...] = (
    DiscouragedOrder(
        "D2.1", ("pregnancy-tissue-genetics",), rpl,
        _("Genetic analysis of pregnancy tissue is not a routine test in recurrent pregnancy loss"),
        _("Do not routinely analyse pregnancy tissue genetically; consider it when ultrasound showed structural abnormalities."),
        (override("structural-abnormality", _("Structural abnormality seen on ultrasound")),),
    ),
    DiscouragedOrder(
        "D2.2", ("karyotype",), rpl,
        _("Parental karyotyping is not routine in recurrent pregnancy loss"),
        _("Karyotype the parents only when an individual risk assessment (for example family history) gives a reason."),
        (override("individual-risk", _("Individual risk assessment or family history gives a reason")),),
    ),
    DiscouragedOrder(
        "D3.1", ("thrombophilia-panel",), rpl,
        _("Hereditary thrombophilia screening is not routine in recurrent pregnancy loss"),
        _("Do not routinely test for factor V Leiden, prothrombin mutation, protein C, protein S or antithrombin deficiency."),
        (override("family-history-thrombosis", _("Family history of thrombosis")),),
    ),
    DiscouragedOrder(
        "D4.1", ("hla-typing",), rpl,
        _("HLA typing is not advised in recurrent pregnancy loss"),
        _("Do not perform HLA typing in women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D4.2", ("anti-hy-antibodies",), rpl,
        _("Anti-HY antibody screening is not advised in recurrent pregnancy loss"),
        _("Do not screen for anti-HY antibodies in women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D4.3", ("cytokine-tests",), rpl,
        _("Cytokine testing is not advised in recurrent pregnancy loss"),
        _("Do not measure cytokines or test cytokine gene polymorphisms in women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D4.4", ("ana",), rpl,
        _("ANA testing is not standard in recurrent pregnancy loss"),
        _("Test antinuclear antibodies only when there are clinical symptoms of a systemic disease."),
        (override("systemic-symptoms", _("Symptoms of a systemic disease")),),
    ),
    DiscouragedOrder(
        "D4.5", ("nk-cell-tests",), rpl,
        _("NK-cell testing is not advised in recurrent pregnancy loss"),
        _("Do not test natural killer cells, in blood or in the endometrium, in women with recurrent pregnancy loss."),
        (RESEARCH,),
    ),
    DiscouragedOrder(
        "D4.6", ("anti-hla-antibodies",), rpl,
        _("Anti-HLA antibody screening is not advised in recurrent pregnancy loss"),
        _("Do not screen for anti-HLA antibodies in women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D5.1b", ("tpo-antibodies",), rpl,
        _("TPO antibodies are not a standard test in recurrent pregnancy loss"),
        _("Thyroid peroxidase antibodies are not part of the standard work-up; TSH is. Consider them only with a specific question."),
        (override("specific-question", _("Specific clinical question")),),
    ),
    DiscouragedOrder(
        "D5.2", ("pcos-glucose-insulin",), rpl_without_diabetes,
        _("No PCOS, fasting glucose or insulin tests to explain recurrent pregnancy loss"),
        _("Do not test for polycystic ovary syndrome, fasting glucose or insulin to explain recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D5.3", ("prolactin",), rpl,
        _("Prolactin only with symptoms of hyperprolactinaemia"),
        _("Measure prolactin only when there are symptoms of hyperprolactinaemia, such as oligo- or amenorrhoea."),
        (override("oligo-amenorrhoea", _("Oligomenorrhoea or amenorrhoea")),),
    ),
    DiscouragedOrder(
        "D5.4", ("ovarian-reserve",), rpl,
        _("Ovarian reserve testing is not routine in recurrent pregnancy loss"),
        _("Do not routinely test ovarian reserve (AMH, FSH, antral follicle count); only when premature ovarian insufficiency is suspected."),
        (override("suspected-poi", _("Premature ovarian insufficiency suspected")),),
    ),
    DiscouragedOrder(
        "D5.5", ("luteal-phase-tests",), rpl,
        _("No luteal phase insufficiency tests in recurrent pregnancy loss"),
        _("Do not perform diagnostics for luteal phase insufficiency in women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D5.6", ("androgens",), rpl,
        _("No androgen tests to explain recurrent pregnancy loss"),
        _("Do not measure androgens to explain recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D5.7", ("vitamin-d-test",), rpl,
        _("No vitamin D test to explain recurrent pregnancy loss"),
        _("Do not measure vitamin D to explain recurrent pregnancy loss; advise supplementation instead (E5.6)."),
    ),
    DiscouragedOrder(
        "D5.8", ("lh",), rpl,
        _("LH is not a routine test in recurrent pregnancy loss"),
        _("Do not routinely measure LH in women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "D5.9", ("homocysteine",), rpl,
        _("No homocysteine test in recurrent pregnancy loss"),
        _("Do not test homocysteine in women with recurrent pregnancy loss (NVOG 2022; replaces older advice to test it)."),
    ),
    DiscouragedOrder(
        "D7", ("sperm-dna-fragmentation",), rpl,
        _("Sperm DNA fragmentation testing belongs to research only"),
        _("Assess the male partner's lifestyle; test sperm DNA fragmentation only within research."),
        (RESEARCH,),
    ),
    DiscouragedOrder(
        "E3.1", ("heparins",), thrombophilia_without_aps,
        _("No anticoagulation to prevent miscarriage in hereditary thrombophilia"),
        _("Do not give anticoagulants to prevent miscarriage in women with hereditary thrombophilia; give them only for a venous thromboembolism indication."),
        indication_overrides(*ANTICOAGULANT_INDICATIONS),
        judges=not_for_an_anticoagulant_indication,
    ),
    DiscouragedOrder(
        "E5.2", ("hcg",), rpl,
        _("No hCG for luteal phase insufficiency in recurrent pregnancy loss"),
        _("Do not treat women with recurrent pregnancy loss and luteal phase insufficiency with hCG (or progesterone)."),
        indications=("indication-assisted-reproduction",),
    ),
    DiscouragedOrder(
        "E5.3", ("metformin",), rpl_without_diabetes,
        _("Metformin does not prevent miscarriage in impaired glucose tolerance"),
        _("Do not give metformin to prevent recurrent pregnancy loss in women with impaired glucose tolerance."),
    ),
    DiscouragedOrder(
        "E5.4", ("ovulation-induction",), rpl,
        _("No ovulation induction for luteal phase insufficiency in recurrent pregnancy loss"),
        _("Do not induce ovulation to treat luteal phase insufficiency in women with recurrent pregnancy loss."),
        indications=("indication-assisted-reproduction",),
    ),
    DiscouragedOrder(
        "E5.5", ("dopamine-agonists",), rpl,
        _("No dopamine agonist for hyperprolactinaemia without a cycle disorder"),
        _("Do not give bromocriptine or cabergoline for hyperprolactinaemia without a cycle disorder in recurrent pregnancy loss."),
        (override("cycle-disorder", _("Cycle disorder present")),),
    ),
    DiscouragedOrder(
        "E5.7", ("homocysteine-vitamins",), rpl,
        _("Treating hyperhomocysteinaemia does not prevent miscarriage"),
        _("Do not treat hyperhomocysteinaemia with B vitamins to prevent miscarriage (NVOG 2022; replaces older advice)."),
        judges=cites_homocysteine,
    ),
    DiscouragedOrder(
        "E6.1", ("septum-resection",), rpl,
        _("Hysteroscopic septum resection does not improve outcomes in recurrent pregnancy loss"),
        _("Do not resect a uterine septum hysteroscopically to improve the chance of a live birth."),
        (RESEARCH,),
    ),
    DiscouragedOrder(
        "E6.2", ("uterine-surgery",), rpl,
        _("Surgery for fibroids, polyps or adhesions does not improve outcomes in recurrent pregnancy loss"),
        _("Do not resect submucous fibroids or polyps in women without symptoms, remove intramural fibroids or divide adhesions to improve outcomes; after adhesiolysis, take measures against new adhesions."),
        (override("symptomatic", _("Symptoms such as abnormal bleeding")),),
    ),
    DiscouragedOrder(
        "E7", ("sperm-selection",), rpl,
        _("Sperm selection does not improve outcomes in recurrent pregnancy loss"),
        _("Do not use sperm selection techniques for recurrent pregnancy loss; advise the male partner on lifestyle instead."),
        (RESEARCH,),
    ),
    DiscouragedOrder(
        "E8.1", ("lymphocyte-immunisation",), rpl,
        _("Lymphocyte immunisation therapy is not advised"),
        _("Do not give lymphocyte immunisation therapy to women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "E8.2", ("immunoglobulin-iv",), rpl,
        _("Intravenous immunoglobulin is not advised in recurrent pregnancy loss"),
        _("Do not treat recurrent pregnancy loss, explained or not, with intravenous immunoglobulin (IVIg): it does not improve the live birth rate."),
        indications=("indication-immune-thrombocytopenia", "indication-autoimmune-disease"),
    ),
    DiscouragedOrder(
        "E8.3", ("prednisolone-prednisone",), rpl,
        _("Prednisolone is not advised in recurrent pregnancy loss"),
        _("Do not give prednisone or prednisolone to prevent miscarriage in recurrent pregnancy loss, explained or not."),
        indications=("indication-autoimmune-disease", "indication-immune-thrombocytopenia"),
        summary_by_ingredient={
            "prednisone": _("Prednisone is not advised in recurrent pregnancy loss"),
            "prednisolone": _("Prednisolone is not advised in recurrent pregnancy loss"),
        },
    ),
    DiscouragedOrder(
        "E8.4", ("heparins", "low-dose-aspirin"), unexplained_without_thrombophilia,
        _("No heparin or low-dose aspirin for unexplained recurrent pregnancy loss"),
        _("Do not give heparin or low-dose aspirin for unexplained recurrent pregnancy loss; antiphospholipid syndrome is the exception (E3.2)."),
        (override("aps-persistent-apl", _("Antiphospholipid syndrome / persistent antiphospholipid antibodies")),),
        judges=not_high_dose_aspirin,
        indications=(
            "indication-preeclampsia-prevention", "indication-venous-thromboembolism", "indication-cardiovascular-prevention",
        ),
    ),
    DiscouragedOrder(
        "E8.5", ("folic-acid",), rpl,
        _("High-dose folic acid does not treat recurrent pregnancy loss"),
        _("Folic acid 0.4-0.5 mg a day before conception prevents neural-tube defects; it is not a treatment for recurrent pregnancy loss."),
        (override("ntd-risk", _("Higher risk of neural-tube defects")),),
        judges=folic_acid_high_dose_for_rpl,
    ),
    DiscouragedOrder(
        "E8.7", ("intralipid",), rpl,
        _("Intralipid therapy is not advised in recurrent pregnancy loss"),
        _("Do not give intralipid therapy to women with recurrent pregnancy loss."),
    ),
    DiscouragedOrder(
        "E8.8", ("g-csf",), rpl,
        _("G-CSF is not advised in recurrent pregnancy loss"),
        _("Do not give G-CSF to women with recurrent pregnancy loss."),
        (RESEARCH,),
    ),
    DiscouragedOrder(
        "E8.9", ("endometrial-scratching",), rpl,
        _("Endometrial scratching is not advised in recurrent pregnancy loss"),
        _("Do not perform endometrial scratching for recurrent pregnancy loss, explained or not."),
    ),
    DiscouragedOrder(
        "E9", ("acupuncture", "antioxidants"), rpl,
        _("No acupuncture, antioxidants or extra vitamins for recurrent pregnancy loss"),
        _("Do not advise acupuncture, antioxidants or vitamins beyond a standard pregnancy multivitamin to women with recurrent pregnancy loss."),
    ),
)

# E4: immunomodulating treatment justified by an immune test result.
IMMUNOMODULATORS = ("immunoglobulin-iv", "prednisolone-prednisone", "intralipid", "g-csf", "lymphocyte-immunisation")
IMMUNE_BIOMARKERS = frozenset(
    {"nk-cell-tests", "hla-typing", "anti-hla-antibodies", "anti-hy-antibodies", "cytokine-tests", "ana"}
)


def _context_facts(row: DiscouragedOrder, facts: PatientFacts) -> tuple[Text, ...]:
    lines: list[Text] = [loss_fact(facts)]
    if row.applies is unexplained_without_thrombophilia:
        lines.append(Text(_("No antiphospholipid syndrome, thyroid disorder or chromosomal cause on record")))
    if row.applies is thrombophilia_without_aps:
        lines.append(Text(_("Hereditary thrombophilia on record (%(source)s); antiphospholipid syndrome criteria not met"),
                          {"source": facts.active_condition("hereditary-thrombophilia").source}))
    return tuple(lines)


def _warn(rec_id: str, orders: list[OrderFact], summary: Text, advice: Text, context: tuple[Text, ...],
          reasons: tuple[OverrideReason, ...], indicator: Indicator = Indicator.WARNING) -> CardDraft:
    return CardDraft(
        rec_id=rec_id,
        indicator=indicator,
        summary=summary,
        facts=(*(order_fact(o) for o in orders), *context),
        advice=(advice,),
        suggestions=tuple(s for o in orders if (s := remove_draft(o)) is not None),
        selection_behavior="any",
        override_reasons=(*reasons, OTHER_INDICATION),
    )


def _summary(row: DiscouragedOrder, orders: list[OrderFact]) -> str:
    """Name what was ordered (a prednisone order is not called prednisolone), when it is one ingredient."""
    named = {i for o in orders for i in o.ingredients if i in row.summary_by_ingredient}
    return row.summary_by_ingredient[named.pop()] if len(named) == 1 else row.summary


def discouraged_orders(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    # E4 first: an immunomodulating order that cites an immune test as its reason gets the E4
    # card, which answers that reason; the E8 row of the drug would say the same order again
    # (version 2: E8.2/E8.3 warn in every RPL, so they would always take it).
    cited = [
        o for o in orders_to_check(facts, ctx, IMMUNOMODULATORS)
        if o.reason & IMMUNE_BIOMARKERS and not names_other_indication(o)
    ]
    by_e4 = {o.reference for o in cited} if facts.has_rpl else set()
    for row in TABLE:
        orders = [
            o for o in orders_to_check(facts, ctx, row.concepts)
            if row.judges(o)
            and o.reference not in by_e4
            and not (row.prevents_miscarriage and names_other_indication(o))
        ]
        if not orders or not row.applies(facts):
            continue
        reasons = (*row.override_reasons, *indication_overrides(*row.indications))
        yield _warn(row.rec_id, orders, Text(_summary(row, orders)), Text(row.advice), _context_facts(row, facts),
                    reasons, row.indicator)
    if cited and facts.has_rpl:
        yield _warn(
            "E4", cited,
            Text(_("Do not treat recurrent pregnancy loss on immune test results")),
            Text(_("Do not base treatment on immunological biomarkers; antiphospholipid antibodies are the only exception.")),
            (loss_fact(facts), Text(_("The order gives an immune test as its reason"))),
            (),
        )
