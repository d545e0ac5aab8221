"""Definition "Antibody results" (catalogue version 2): for a positive/negative test (aPL, TPO)
the lab's own interpretation decides, also when the value has no unit or is a comparator such
as ">100"; a value without unit *and* without interpretation is not used."""

from __future__ import annotations

import pytest

from fhir_mappings.extract import extract
from fhir_mappings.facts import Interpretation
from fhir_mappings.record import gather
from fhir_mappings.valuesets import SNOMED, ValueSetIndex
from tests.builders import RXNORM, PID, bundle, hook_request, losses, medication_request, observation, patient, tsh
from tests.conftest import TODAY

pytestmark = pytest.mark.version2("Antibody results")

ACL_IGG = "3181-5"
TPO = "8099-4"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.fixture(scope="module")
def valuesets():
    return ValueSetIndex.load()


def facts_of(valuesets, *resources):
    return extract(gather(PID, [patient(), bundle(*resources)]), valuesets, TODAY)


def with_interpretation(obs: dict, *, code: str | None = None, system: str = V3, text: str | None = None) -> dict:
    concept: dict = {}
    if code:
        concept["coding"] = [{"system": system, "code": code}]
    if text:
        concept["text"] = text
    return {**obs, "interpretation": [concept]}


def levothyroxine_draft() -> dict:
    return medication_request(RXNORM, "10582", rid="levo-draft", display="levothyroxine")


def acl(**kw) -> dict:
    return observation(ACL_IGG, **kw)


@pytest.mark.parametrize(
    "result,expected",
    [
        # the case of the review: valueString ">100" flagged H, no unit
        (acl(string=">100", interpretation="H"), Interpretation.POSITIVE),
        (acl(string=">100", interpretation="HH"), Interpretation.POSITIVE),
        (acl(value=100, comparator=">", interpretation="POS"), Interpretation.POSITIVE),  # no unit
        (acl(value=100, comparator=">", unit="U/mL", interpretation="H"), Interpretation.POSITIVE),
        (acl(value=3, interpretation="N"), Interpretation.NEGATIVE),  # no unit
        (acl(string="<2", interpretation="NEG"), Interpretation.NEGATIVE),
        (with_interpretation(acl(string="12"), text="Detected"), Interpretation.POSITIVE),
        (with_interpretation(acl(string="1"), text="Not detected"), Interpretation.NEGATIVE),
        (with_interpretation(acl(value=80), code="10828004", system=SNOMED), Interpretation.POSITIVE),  # coded positive
        (acl(concept=(SNOMED, "10828004")), Interpretation.POSITIVE),  # a coded positive value
        # the lab's flag decides over a number the service would judge otherwise
        (acl(value=12, unit="GPL", interpretation="H"), Interpretation.POSITIVE),
        (acl(value=45, unit="GPL", interpretation="N"), Interpretation.NEGATIVE),
    ],
    ids=lambda x: x.get("valueString") or str(x.get("valueQuantity") or x.get("interpretation") or x.get("valueCodeableConcept"))
    if isinstance(x, dict) else x.value,
)
def test_the_labs_interpretation_decides(valuesets, result, expected):
    latest = facts_of(valuesets, result).antibody("anticardiolipin-igg").latest
    assert latest is not None and latest.interpretation is expected


@pytest.mark.parametrize(
    "result",
    [
        acl(string=">100"),  # no unit, no interpretation
        acl(value=100, comparator=">"),
        acl(value=55),
        observation("3284-7", value=1.4),  # lupus anticoagulant ratio: no range, no interpretation
    ],
    ids=("string-comparator", "quantity-comparator", "bare-number", "lupus-ratio"),
)
def test_a_value_without_unit_and_interpretation_is_not_used(valuesets, result):
    facts = facts_of(valuesets, result)
    assert all(not h.results for h in facts.antibodies)
    assert [r.source for r in facts.unusable_results] == [f"Observation/{result['id']}"]


@pytest.mark.parametrize(
    "result,expected",
    [
        (acl(value=30, comparator=">", unit="U/mL", high=40), None),  # ">30" may be above 40
        (acl(value=100, comparator="<", unit="U/mL", high=20), None),  # "<100" may be below 20
        (acl(value=5, comparator="<", unit="U/mL", high=20), Interpretation.NEGATIVE),
        (acl(value=100, comparator=">", unit="U/mL", high=20), Interpretation.POSITIVE),
    ],
    ids=(">30-limit-40", "<100-limit-20", "<5-limit-20", ">100-limit-20"),
)
def test_a_comparator_without_interpretation_tells_only_one_side(valuesets, result, expected):
    assert facts_of(valuesets, result).antibody("anticardiolipin-igg").latest.interpretation is expected


def test_greater_than_100_flagged_high_counts_for_persistence(valuesets):
    """Two such results 12 weeks apart are persistent antibodies (E3.2's APS criteria)."""
    first = acl(string=">100", interpretation="H", date="2026-01-05")
    second = acl(string=">100", interpretation="H", date="2026-04-20")
    facts = facts_of(valuesets, first, second)
    assert facts.antibody("anticardiolipin-igg").persistent and facts.aps_criteria_met
    assert facts.antibody("anticardiolipin-igg").latest.display_value() == ">100"


def test_tpo_positive_by_interpretation_without_unit(valuesets):
    facts = facts_of(valuesets, observation(TPO, string=">600", interpretation="H"))
    assert facts.tpo is not None and facts.tpo.interpretation is Interpretation.POSITIVE


def test_tpo_newest_result_decided_by_interpretation_wins_over_an_older_number(valuesets):
    older = observation(TPO, value=10, unit="IU/mL", high=35, date="2025-01-01")
    newer = observation(TPO, string=">600", interpretation="POS", date="2026-06-01")
    assert facts_of(valuesets, older, newer).tpo.interpretation is Interpretation.POSITIVE


def test_tpo_without_unit_and_interpretation_is_not_used(valuesets):
    facts = facts_of(valuesets, observation(TPO, value=120))
    assert facts.tpo is None and facts.unusable_results


# -- through the service: the rules that read antibodies ---------------------------------
def test_e3_2_fires_on_acl_above_100_flagged_high_without_unit(cds):
    positives = (acl(string=">100", interpretation="H", date="2026-01-05"),
                 acl(string=">100", interpretation="H", date="2026-04-20"))
    assert "E3.2" in cds.topics("patient-view", hook_request("patient-view", losses(3), *positives))


def test_e3_2_silent_on_acl_above_100_without_unit_or_interpretation(cds):
    positives = (acl(string=">100", date="2026-01-05"), acl(string=">100", date="2026-04-20"))
    assert "E3.2" not in cds.topics("patient-view", hook_request("patient-view", losses(3), *positives))


def test_e5_1c_fires_on_tpo_positive_by_interpretation_only(cds):
    body = hook_request("order-sign", losses(2), tsh(2.0), observation(TPO, string=">600", interpretation="H"),
                        drafts=(levothyroxine_draft(),))
    assert "E5.1c" in cds.topics("order-sign", body)


def test_e5_1c_silent_on_tpo_number_without_unit_or_interpretation(cds):
    body = hook_request("order-sign", losses(2), tsh(2.0), observation(TPO, value=600),
                        drafts=(levothyroxine_draft(),))
    assert "E5.1c" not in cds.topics("order-sign", body)
