"""RxNorm product codes in the medication value sets (issue 15, item 1).

Real clients (the CDS Hooks sandbox, Synthea, US EHRs) code a prescription as an RxNorm
*product* (SCD, SBD, pack), not as the ingredient. Every product code added to a value set
was found, with its RxNorm name, in a public source (fhir_mappings/valuesets/VERIFICATION.md,
"Medication products"). These tests pin each one to its concept, check that it reaches the
card its rule gives, and that the look-alikes found in the same sources (another drug, or
aspirin above 100 mg) stay out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_mappings.medications import ingredients_named
from fhir_mappings.valuesets import ValueSetIndex
from tests.builders import RXNORM, losses
from tests.test_real_clients import cards_by_topic, sandbox_order, synthea_order

# (value set, RxNorm code, RxNorm name) - the product codes of VERIFICATION.md "Medication products".
PRODUCTS = [
    ("progesterone", "312641", "progesterone 200 MG Oral Capsule"),
    ("progesterone", "260243", "progesterone 100 MG Oral Capsule"),
    ("low-dose-aspirin", "243670", "aspirin 81 MG Oral Tablet"),
    ("low-dose-aspirin", "308416", "aspirin 81 MG Delayed Release Oral Tablet"),
    ("low-dose-aspirin", "318272", "aspirin 81 MG Chewable Tablet"),
    ("low-dose-aspirin", "252857", "aspirin 81 MG Oral Capsule"),
    ("heparins", "854228", "0.3 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    ("heparins", "854235", "0.4 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    ("heparins", "854238", "0.6 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    ("heparins", "854241", "0.8 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    ("heparins", "854245", "0.8 ML enoxaparin sodium 150 MG/ML Prefilled Syringe"),
    ("heparins", "854248", "1 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    ("heparins", "854252", "1 ML enoxaparin sodium 150 MG/ML Prefilled Syringe"),
    ("heparins", "854255", "enoxaparin sodium 100 MG/ML Injectable Solution"),
    ("heparins", "978725", "0.2 ML dalteparin sodium 12500 UNT/ML Prefilled Syringe"),
    ("heparins", "978733", "0.2 ML dalteparin sodium 25000 UNT/ML Prefilled Syringe"),
    ("heparins", "978736", "0.3 ML dalteparin sodium 25000 UNT/ML Prefilled Syringe"),
    ("heparins", "978740", "0.5 ML dalteparin sodium 25000 UNT/ML Prefilled Syringe"),
    ("heparins", "978744", "0.6 ML dalteparin sodium 25000 UNT/ML Prefilled Syringe"),
    ("heparins", "978746", "0.72 ML dalteparin sodium 25000 UNT/ML Prefilled Syringe"),
    ("heparins", "978755", "1 ML dalteparin sodium 10000 UNT/ML Prefilled Syringe"),
    ("heparins", "978759", "dalteparin sodium 10000 UNT/ML Injectable Solution"),
    ("heparins", "978777", "dalteparin sodium 25000 UNT/ML Injectable Solution"),
    ("heparins", "2618839", "4 ML dalteparin sodium 2500 UNT/ML Injection"),
    ("heparins", "1659263", "1 ML heparin sodium, porcine 5000 UNT/ML Injection"),
    ("heparins", "1361615", "heparin sodium, porcine 5000 UNT/ML Injectable Solution"),
    ("heparins", "1362831", "heparin sodium, porcine 10000 UNT/ML Injectable Solution"),
    ("heparins", "1361574", "heparin sodium, porcine 20000 UNT/ML Injectable Solution"),
    ("heparins", "1659260", "1 ML heparin sodium, porcine 5000 UNT/ML Cartridge"),
    ("heparins", "1798389", "1 ML heparin sodium, porcine 5000 UNT/ML Prefilled Syringe"),
    ("heparins", "1361853", "0.5 ML heparin sodium, porcine 10000 UNT/ML Cartridge"),
    ("heparins", "1658634", "0.5 ML heparin sodium, porcine 10000 UNT/ML Injection"),
    ("heparins", "1658637", "1 ML heparin sodium, porcine 10000 UNT/ML Injection"),
    ("heparins", "2121591", "0.5 ML heparin sodium, porcine 10000 UNT/ML Prefilled Syringe"),
    ("prednisolone-prednisone", "312617", "predniSONE 5 MG Oral Tablet"),
    ("prednisolone-prednisone", "312615", "predniSONE 20 MG Oral Tablet"),
    ("prednisolone-prednisone", "198145", "predniSONE 10 MG Oral Tablet"),
    ("prednisolone-prednisone", "763181", "predniSONE 5 MG Tablet 21 Count Pack"),
    ("prednisolone-prednisone", "312614", "prednisoLONE 1 MG/ML Oral Solution"),
    ("metformin", "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("metformin", "861007", "metformin hydrochloride 500 MG Oral Tablet"),
    ("metformin", "861004", "metformin hydrochloride 1000 MG Oral Tablet"),
    ("levothyroxine", "966222", "levothyroxine sodium 0.075 MG Oral Tablet"),
    ("ovulation-induction", "200064", "letrozole 2.5 MG Oral Tablet"),
    ("g-csf", "1649944", "1 ML filgrastim 0.3 MG/ML Injection"),
    ("g-csf", "1649946", "1 ML filgrastim 0.3 MG/ML Injection [Neupogen]"),
    ("g-csf", "1649963", "1.6 ML filgrastim 0.3 MG/ML Injection"),
    ("g-csf", "1649964", "1.6 ML filgrastim 0.3 MG/ML Injection [Neupogen]"),
    ("g-csf", "727535", "0.5 ML filgrastim 0.6 MG/ML Prefilled Syringe"),
    ("g-csf", "727537", "0.5 ML filgrastim 0.6 MG/ML Prefilled Syringe [Neupogen]"),
    ("g-csf", "727544", "0.8 ML filgrastim 0.6 MG/ML Prefilled Syringe"),
    ("g-csf", "727545", "0.8 ML filgrastim 0.6 MG/ML Prefilled Syringe [Neupogen]"),
    ("g-csf", "1605066", "0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe"),
    ("g-csf", "1605071", "0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe [Zarxio]"),
    ("g-csf", "1605074", "0.8 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe"),
    ("g-csf", "1605075", "0.8 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe [Zarxio]"),
    ("g-csf", "727539", "0.6 ML pegfilgrastim 10 MG/ML Prefilled Syringe"),
    ("g-csf", "727542", "0.6 ML pegfilgrastim 10 MG/ML Prefilled Syringe [Neulasta]"),
    ("g-csf", "2549331", "0.6 ML pegfilgrastim 10 MG/ML Injection"),
    ("g-csf", "2549333", "0.6 ML pegfilgrastim 10 MG/ML Injection [Neulasta]"),
    ("intralipid", "200317", "soybean oil 200 MG/ML Injectable Suspension"),
]

# Products whose RxNorm name does not name the catalogue drug: "soybean oil" is also an oral
# supplement and a skin oil, so only the code (and the brand Intralipid) says it is the infusion.
KNOWN_BY_CODE_ONLY = {"200317"}

# Found in the same public sources, and NOT the catalogue concept: another drug, another
# form, or aspirin above 100 mg (not low-dose). None may be in any value set by its code.
LOOK_ALIKES = [
    ("212033", "aspirin 325 MG Oral Tablet"),
    ("198467", "aspirin 325 MG Delayed Release Oral Tablet"),
    ("1665356", "24 HR aspirin 162.5 MG Extended Release Oral Capsule"),
    ("198471", "aspirin 500 MG Oral Tablet"),
    ("1000126", "1 ML medroxyprogesterone acetate 150 MG/ML Injection"),
    ("861360", "0.5 ML fondaparinux sodium 5 MG/ML Prefilled Syringe"),
    ("855332", "warfarin sodium 5 MG Oral Tablet"),
    ("1364445", "apixaban 5 MG Oral Tablet"),
    ("1361226", "heparin sodium, porcine 1000 UNT/ML Injectable Solution"),
    ("1658717", "250 ML heparin sodium, porcine 100 UNT/ML Injection"),
]


@pytest.fixture(scope="module")
def valuesets() -> ValueSetIndex:
    return ValueSetIndex.load()


def _coded(code: str) -> dict:
    """The code alone, without a display or text: recognised by the value set or not at all."""
    return {"coding": [{"system": RXNORM, "code": code}]}


# -- each product code is its catalogue concept ------------------------------------------
@pytest.mark.parametrize("valueset,code,name", PRODUCTS, ids=[p[1] for p in PRODUCTS])
def test_product_code_is_classified_as_its_concept(valuesets, valueset, code, name):
    assert valuesets.classify(_coded(code)) == {valueset}
    assert valuesets.display_of(RXNORM, code) == name  # the RxNorm name as the source gives it


@pytest.mark.parametrize("valueset,code,name", PRODUCTS, ids=[p[1] for p in PRODUCTS])
def test_product_name_names_the_same_concept(valueset, code, name):
    """The name check agrees with the code: a product's RxNorm name names the ingredient of its set
    (so a client that sends another code for the same product gets the same card)."""
    if code in KNOWN_BY_CODE_ONLY:
        assert not ingredients_named([name])
        return
    assert valueset in {m.valueset for m in ingredients_named([name])}


def test_order_codes_stay_first(valuesets):
    """Products are appended: the code the service orders with is still the first one listed."""
    assert valuesets.preferred("heparins").code == "854235"
    assert valuesets.preferred("low-dose-aspirin").code == "243670"
    assert valuesets.preferred("progesterone").code == "8727"


# -- look-alikes stay out -----------------------------------------------------------------
@pytest.mark.parametrize("code,name", LOOK_ALIKES, ids=[c for c, _ in LOOK_ALIKES])
def test_look_alike_code_is_in_no_medication_set(valuesets, code, name):
    assert valuesets.classify(_coded(code)) == frozenset()


@pytest.mark.parametrize("code,name", [
    ("212033", "aspirin 325 MG Oral Tablet"),
    ("198467", "aspirin 325 MG Delayed Release Oral Tablet"),
    ("1665356", "24 HR aspirin 162.5 MG Extended Release Oral Capsule"),
    ("861360", "0.5 ML fondaparinux sodium 5 MG/ML Prefilled Syringe"),
    ("855332", "warfarin sodium 5 MG Oral Tablet"),
])
def test_look_alike_drafts_get_no_e8_4(cds, code, name):
    """As the sandbox sends them (code, name as display and text): not low-dose aspirin, not a heparin."""
    assert "E8.4" not in cards_by_topic(cds, "order-sign", losses(2), drafts=(sandbox_order(code, name),))


def test_medroxyprogesterone_product_gets_no_progesterone_card(cds):
    order = sandbox_order("1000126", "1 ML medroxyprogesterone acetate 150 MG/ML Injection")
    assert not {"E8.6a", "E8.6c"} & cards_by_topic(cds, "order-sign", losses(2), drafts=(order,)).keys()


# -- sandbox-shaped drafts reach the card of their rule -----------------------------------
CARD_OF_PRODUCT = [
    ("312641", "progesterone 200 MG Oral Capsule", "E8.6a"),
    ("260243", "progesterone 100 MG Oral Capsule", "E8.6a"),
    ("318272", "aspirin 81 MG Chewable Tablet", "E8.4"),
    ("252857", "aspirin 81 MG Oral Capsule", "E8.4"),
    ("854228", "0.3 ML enoxaparin sodium 100 MG/ML Prefilled Syringe", "E8.4"),
    ("854238", "0.6 ML enoxaparin sodium 100 MG/ML Prefilled Syringe", "E8.4"),
    ("978740", "0.5 ML dalteparin sodium 25000 UNT/ML Prefilled Syringe", "E8.4"),
    ("1798389", "1 ML heparin sodium, porcine 5000 UNT/ML Prefilled Syringe", "E8.4"),
    ("312615", "predniSONE 20 MG Oral Tablet", "E8.3"),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet", "E5.3"),
    ("861004", "metformin hydrochloride 1000 MG Oral Tablet", "E5.3"),
    ("200064", "letrozole 2.5 MG Oral Tablet", "E5.4"),
    ("727535", "0.5 ML filgrastim 0.6 MG/ML Prefilled Syringe", "E8.8"),
    ("1605071", "0.5 ML filgrastim-sndz 0.6 MG/ML Prefilled Syringe [Zarxio]", "E8.8"),
    ("727542", "0.6 ML pegfilgrastim 10 MG/ML Prefilled Syringe [Neulasta]", "E8.8"),
    ("200317", "soybean oil 200 MG/ML Injectable Suspension", "E8.7"),
]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("code,name,topic", CARD_OF_PRODUCT, ids=[c for c, _, _ in CARD_OF_PRODUCT])
def test_sandbox_draft_of_a_product_gets_its_card(cds, hook, code, name, topic):
    """Two recorded miscarriages, nothing explained: the product's rule warns, recognised by its
    code (the card does not say 'recognised by its name'), naming what was ordered."""
    card = cards_by_topic(cds, hook, losses(2), drafts=(sandbox_order(code, name),))[topic]
    assert "recognised by its name" not in card["detail"]
    assert name in card["detail"] or "MedicationRequest/request-123" in card["detail"]


@pytest.mark.parametrize("code,name,topic", CARD_OF_PRODUCT, ids=[c for c, _, _ in CARD_OF_PRODUCT])
def test_product_without_rpl_gets_no_card(cds, code, name, topic):
    """One miscarriage is no RPL: the same product is no reason for the card."""
    assert topic not in cards_by_topic(cds, "order-sign", losses(1), drafts=(sandbox_order(code, name),))


@pytest.mark.parametrize("code,name,topic", [
    ("260243", "progesterone 100 MG Oral Capsule", "E8.6a"),
    ("318272", "aspirin 81 MG Chewable Tablet", "E8.4"),
    ("854238", "0.6 ML enoxaparin sodium 100 MG/ML Prefilled Syringe", "E8.4"),
    ("312615", "predniSONE 20 MG Oral Tablet", "E8.3"),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet", "E5.3"),
    ("200064", "letrozole 2.5 MG Oral Tablet", "E5.4"),
    ("727539", "0.6 ML pegfilgrastim 10 MG/ML Prefilled Syringe", "E8.8"),
])
def test_synthea_style_active_product_is_judged_on_patient_view(cds, code, name, topic):
    assert topic in cards_by_topic(cds, "patient-view", losses(2), synthea_order(code, name, "syn-1"))


def test_e8_3_names_prednisone_for_the_20_mg_product(cds):
    card = cards_by_topic(cds, "order-select", losses(2), drafts=(sandbox_order("312615", "predniSONE 20 MG Oral Tablet"),))["E8.3"]
    assert card["summary"].startswith("Prednisone is not advised")


# -- catalogue drugs without a verified product code: recognised by name, and the card says so --
@pytest.mark.parametrize("name,topic", [
    ("cabergoline 0.5 MG Oral Tablet", "E5.5"),
    ("bromocriptine 2.5 MG Oral Tablet", "E5.5"),
    ("clomiphene citrate 50 MG Oral Tablet", "E5.4"),
])
def test_unverified_product_is_recognised_by_name_and_says_so(cds, name, topic):
    card = cards_by_topic(cds, "order-sign", losses(2), drafts=(sandbox_order("1000009", name),))[topic]
    assert "recognised by its name" in card["detail"]


# -- IVIg: RxNorm names the product by ingredient and brand, not by route -----------------------
@pytest.mark.parametrize("name", [
    "immune globulin G, human 100 MG/ML Injectable Solution [Privigen]",
    "immune globulin G, human 0.1 G/ML Injectable Solution [Gamunex-C]",
    "Octagam 10% oplossing voor infusie",
])
def test_e8_2_intravenous_immunoglobulin_product_is_recognised_by_its_brand(cds, name):
    card = cards_by_topic(cds, "order-sign", losses(2), drafts=(sandbox_order("1000010", name),))["E8.2"]
    assert "recognised by its name" in card["detail"]


@pytest.mark.parametrize("name", [
    "immune globulin G, human 200 MG/ML Injectable Solution [Hizentra]",  # subcutaneous
    "Rho(D) immune globulin 1500 UNT Prefilled Syringe [RhoGAM]",  # anti-D after miscarriage
])
def test_e8_2_silent_for_other_immunoglobulins(cds, name):
    assert "E8.2" not in cards_by_topic(cds, "order-sign", losses(2), drafts=(sandbox_order("1000010", name),))


# -- the sandbox's own medication list (issue 15, item 1) -----------------------------------------
# Every prescribable single-ingredient product of a catalogue drug that the CDS Hooks sandbox offers,
# and the look-alikes of the same list, as tests/data/sandbox_medication_products.tsv records them.
SANDBOX_LIST = Path(__file__).parent / "data" / "sandbox_medication_products.tsv"


def _sandbox_products() -> list[tuple[str, str, str]]:
    lines = SANDBOX_LIST.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line and not line.startswith("#")]


SANDBOX_PRODUCTS = _sandbox_products()


def test_the_sandbox_list_covers_the_catalogue_drugs_it_offers():
    sets = {vs for vs, _, _ in SANDBOX_PRODUCTS}
    assert {"progesterone", "low-dose-aspirin", "prednisolone-prednisone", "levothyroxine", "metformin",
            "ovulation-induction", "dopamine-agonists", "folic-acid", "antioxidants", "homocysteine-vitamins",
            "vitamin-d", "-"} == sets
    assert len({code for _, code, _ in SANDBOX_PRODUCTS}) == len(SANDBOX_PRODUCTS) > 400


@pytest.mark.parametrize("valueset,code,name", SANDBOX_PRODUCTS, ids=[c for _, c, _ in SANDBOX_PRODUCTS])
def test_sandbox_product_code_is_its_concept_and_a_look_alike_is_none(valuesets, valueset, code, name):
    """By its code alone (an EHR may send no display): the concept of its ingredient, or nothing."""
    assert valuesets.classify(_coded(code)) == (frozenset() if valueset == "-" else {valueset})


@pytest.mark.parametrize("valueset,code,name", SANDBOX_PRODUCTS, ids=[c for _, c, _ in SANDBOX_PRODUCTS])
def test_sandbox_product_name_agrees_with_its_code(valueset, code, name):
    """Its name as the sandbox sends it names the same concept, and a look-alike's name never the
    concept it looks like (medroxyprogesterone, methylprednisolone, thyroglobulin, aspirin 325 mg,
    bromocriptine 0.8 mg [Cycloset], a diabetes drug)."""
    named = {m.valueset for m in ingredients_named([name])}
    if valueset == "-":
        assert not named & {"progesterone", "prednisolone-prednisone", "immunoglobulin-iv", "low-dose-aspirin",
                            "dopamine-agonists"}
    else:
        assert valueset in named


SANDBOX_CARDS = [
    ("199734", "Dydrogesterone 10 MG Oral Tablet", "E8.6a"),
    ("261319", "Progesterone 200 MG Oral Capsule [Prometrium]", "E8.6a"),
    ("1189781", "Aspirin 81 MG Delayed Release Oral Tablet [Ecotrin]", "E8.4"),
    ("308414", "Aspirin 75 MG Chewable Tablet", "E8.4"),
    ("198142", "prednisolone 5 MG Oral Tablet", "E8.3"),
    ("1093060", "Clomiphene Citrate 50 MG Oral Tablet", "E5.4"),
    ("153124", "letrozole 2.5 MG Oral Tablet [Femara]", "E5.4"),
    ("199703", "cabergoline 0.5 MG Oral Tablet", "E5.5"),
    ("197411", "Bromocriptine 2.5 MG Oral Tablet", "E5.5"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "E5.3"),
    ("198897", "Ascorbic Acid 1000 MG Oral Tablet", "E9"),
    ("252870", "coenzyme Q10 200 MG Oral Capsule", "E9"),
]


@pytest.mark.parametrize("code,name,topic", SANDBOX_CARDS, ids=[c for c, _, _ in SANDBOX_CARDS])
def test_sandbox_product_gets_its_card_by_code_on_both_order_hooks(cds, code, name, topic):
    for hook in ("order-select", "order-sign"):
        card = cards_by_topic(cds, hook, losses(2), drafts=(sandbox_order(code, name),))[topic]
        assert "recognised by its name" not in card["detail"], hook  # its code is known now


@pytest.mark.parametrize("code,name,topic", [
    ("198142", "prednisolone 5 MG Oral Tablet", "E8.3"),
    ("199703", "cabergoline 0.5 MG Oral Tablet", "E5.5"),
    ("1093060", "Clomiphene Citrate 50 MG Oral Tablet", "E5.4"),
])
def test_sandbox_product_sent_without_a_name_still_gets_its_card(cds, code, name, topic):
    order = sandbox_order(code, name)
    order["medicationCodeableConcept"] = _coded(code)  # code only, as some EHRs send it
    assert topic in cards_by_topic(cds, "order-sign", losses(2), drafts=(order,))


@pytest.mark.parametrize("code,name,topic", [
    ("859081", "Bromocriptine 0.8 MG Oral Tablet [Cycloset]", "E5.5"),  # for type 2 diabetes
    ("197969", "Methylprednisolone 2 MG Oral Tablet", "E8.3"),
    ("1000141", "medroxyprogesterone acetate 5 MG Oral Tablet", "E8.6a"),
    ("212033", "Aspirin 325 MG Oral Tablet", "E8.4"),
])
def test_sandbox_look_alike_gets_no_card_of_the_drug_it_resembles(cds, code, name, topic):
    assert topic not in cards_by_topic(cds, "order-sign", losses(2), drafts=(sandbox_order(code, name),))
