"""Catalogue "Order indication" (version 2): the warn rows about a treatment given to
prevent miscarriage (E5.2, E5.4, E8.2, E8.3, E8.4, E8.6a) stay silent for an order whose
reasonCode or reasonReference names another indication; an order without reason is judged
as an RPL order; each row offers the matching indications as override reasons."""

from __future__ import annotations

import pytest

from tests.builders import ICD10, SNOMED, carried_ids, condition, hook_request, losses
from tests.scenarios import order_of

pytestmark = pytest.mark.version2("Order indication")  # listed in docs/coverage.md

def cards(cds, hook, *resources, drafts=()):
    return {rec_id: c for c in cds.cards(hook, hook_request(hook, *resources, drafts=drafts)) for rec_id in reversed(carried_ids(c))}


def with_reason(order: dict, system: str, code: str) -> dict:
    return {**order, "reasonCode": [{"coding": [{"system": system, "code": code}]}]}


def overrides(card) -> set[str]:
    return {r["code"] for r in card["overrideReasons"]}


RPL = losses(2)
IVF = (ICD10, "Z31.2")  # WHO ICD-10: in vitro fertilization
FROZEN_EMBRYO_TRANSFER = (ICD10, "Z31.3")  # other assisted fertilization methods
PRE_ECLAMPSIA = (SNOMED, "398254007")
DVT = (ICD10, "I82.4")
ITP = (ICD10, "D69.3")
SLE = (SNOMED, "55464009")
MYOCARDIAL_INFARCTION = (ICD10, "I21.9")
RPL_REASON = (SNOMED, "102878001")

# (row, order concept, another indication of the order, the override reason that names it)
ROWS = [
    ("E5.2", "hcg", IVF, "assisted-reproduction"),
    ("E5.4", "ovulation-induction", (ICD10, "N97.0"), "assisted-reproduction"),
    ("E8.2", "immunoglobulin-iv", ITP, "immune-thrombocytopenia"),
    ("E8.3", "prednisolone-prednisone", SLE, "autoimmune-disease"),
    ("E8.4", "heparins", DVT, "vte-indication"),
    ("E8.4", "low-dose-aspirin", PRE_ECLAMPSIA, "preeclampsia-prevention"),
    ("E8.4", "low-dose-aspirin", MYOCARDIAL_INFARCTION, "cardiovascular-prevention"),
    ("E8.6a", "progesterone", FROZEN_EMBRYO_TRANSFER, "assisted-reproduction"),
]


@pytest.mark.parametrize("rec_id, concept, indication, override_code", ROWS, ids=lambda v: str(v))
def test_row_silent_for_an_order_naming_another_indication(cds, rec_id, concept, indication, override_code):
    draft = with_reason(order_of(concept), *indication)
    assert rec_id not in cards(cds, "order-sign", RPL, drafts=(draft,))


@pytest.mark.parametrize("rec_id, concept, indication, override_code", ROWS, ids=lambda v: str(v))
def test_row_fires_for_an_order_without_reason_and_offers_the_indication(cds, rec_id, concept, indication, override_code):
    card = cards(cds, "order-sign", RPL, drafts=(order_of(concept),))[rec_id]
    assert override_code in overrides(card)


@pytest.mark.parametrize("rec_id, concept", [("E8.4", "heparins"), ("E8.6a", "progesterone"), ("E8.2", "immunoglobulin-iv")])
def test_row_fires_for_an_order_citing_rpl(cds, rec_id, concept):
    assert rec_id in cards(cds, "order-sign", RPL, drafts=(with_reason(order_of(concept), *RPL_REASON),))


def test_e8_4_silent_for_preeclampsia_indication(cds):
    # The reviewer's case: aspirin 80 mg for pre-eclampsia prevention at 14 weeks.
    aspirin = with_reason(order_of("low-dose-aspirin", dose_mg=80), ICD10, "O14.9")
    assert "E8.4" not in cards(cds, "order-sign", RPL, drafts=(aspirin,))
    assert "E8.4" in cards(cds, "order-sign", RPL, drafts=(order_of("low-dose-aspirin", dose_mg=80),))


def test_e8_4_silent_for_an_order_whose_reason_reference_cites_a_vte(cds):
    dvt = condition(SNOMED, "128053003", rid="dvt-1", onset="2026-10-01")
    heparin = {**order_of("heparins"), "reasonReference": [{"reference": "Condition/dvt-1"}]}
    assert "E8.4" not in cards(cds, "order-sign", RPL, dvt, drafts=(heparin,))


def test_e8_4_fires_when_the_cited_condition_is_not_another_indication(cds):
    rpl = condition(SNOMED, "102878001", rid="rpl-1")
    heparin = {**order_of("heparins"), "reasonReference": [{"reference": "Condition/rpl-1"}]}
    assert "E8.4" in cards(cds, "order-sign", RPL, rpl, drafts=(heparin,))


def test_e8_6a_silent_on_patient_view_for_luteal_support_after_embryo_transfer(cds):
    # The reviewer's case: progesterone as luteal support (IVF), warned at every chart opening.
    luteal = with_reason(order_of("progesterone", status="active"), *IVF)
    assert "E8.6a" not in cards(cds, "patient-view", RPL, luteal)
    assert "E8.6a" in cards(cds, "patient-view", RPL, order_of("progesterone", status="active"))


def test_e8_6a_offers_luteal_support_as_override_reason(cds):
    card = cards(cds, "order-sign", RPL, drafts=(order_of("progesterone"),))["E8.6a"]
    assert "assisted-reproduction" in overrides(card)


def test_e3_1_silent_for_a_vte_indication(cds):
    thrombophilia = condition(ICD10, "D68.5")
    heparin = with_reason(order_of("heparins"), *DVT)
    assert "E3.1" not in cards(cds, "order-sign", RPL, thrombophilia, drafts=(heparin,))
    assert "E3.1" in cards(cds, "order-sign", RPL, thrombophilia, drafts=(order_of("heparins"),))


def test_autoimmune_thyroiditis_is_not_another_indication_for_prednisolone(cds):
    # Citing TPO antibodies' disease would be the RPL use E8.3 warns against.
    prednisolone = with_reason(order_of("prednisolone-prednisone"), ICD10, "E06.3")
    assert "E8.3" in cards(cds, "order-sign", RPL, drafts=(prednisolone,))


def test_e8_4_silent_for_us_coded_indications(cds):
    # ICD-10-CM, as a US EHR codes them: pre-eclampsia in the third trimester, earlier DVT.
    aspirin = with_reason(order_of("low-dose-aspirin", dose_mg=81), "http://hl7.org/fhir/sid/icd-10-cm", "O14.93")
    heparin = with_reason(order_of("heparins"), "http://hl7.org/fhir/sid/icd-10-cm", "Z86.718")
    found = cards(cds, "order-sign", RPL, drafts=(aspirin, heparin))
    assert "E8.4" not in found
