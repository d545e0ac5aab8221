"""Medications by reference (issue 14, item 8): MedicationRequest/MedicationStatement.medicationReference
to a separate Medication, as Epic sends it. Each shape: contained, in the prefetch Bundle through
_include, in the draftOrders Bundle, read by the service from fhirServer, and missing (not found,
server failing, no fhirServer, on another server): then the order is unknown, the service says so in
the audit line, and suggests no treatment the patient may already take.

The test patient has RPL and an active progesterone order: E8.6a warns about it on patient-view
when, and only when, the service knows it is progesterone."""

from __future__ import annotations

import json

import pytest
import responses

from service.medications import MAX_READS, missing_medications
from tests.builders import PID, RXNORM, SNOMED, bundle, hook_request, losses, prefetch
from tests.conftest import FHIR_BASE
from tests.test_prefetch import AUTH

pytestmark = pytest.mark.version2("Medications by reference")

PROGESTERONE = {"resourceType": "Medication", "id": "med-prog",
                "code": {"coding": [{"system": RXNORM, "code": "8727", "display": "progesterone"}]}}
FOLIC_ACID = {"resourceType": "Medication", "id": "med-folic",
              "code": {"coding": [{"system": RXNORM, "code": "4511", "display": "folic acid"}]}}


def by_reference(rtype: str = "MedicationRequest", reference: str = "Medication/med-prog", rid: str = "rx-1",
                 status: str = "active", **extra) -> dict:
    order = {"resourceType": rtype, "id": rid, "status": status, "subject": {"reference": f"Patient/{PID}"},
             "medicationReference": {"reference": reference, "display": "see Medication"}, **extra}
    if rtype == "MedicationRequest":
        order["intent"] = "order"
    return order


def with_included(data: dict, key: str, *medications: dict) -> dict:
    """The prefetch Bundle of a key with the Medications a server adds for _include (search mode 'include')."""
    data[key]["entry"] += [{"resource": m, "search": {"mode": "include"}} for m in medications]
    return data


def call(client, hook: str, data: dict, drafts: tuple = (), fhir_server: str | None = FHIR_BASE) -> tuple[list[str], dict]:
    body = hook_request(hook, data=data, drafts=drafts)
    if fhir_server:
        body.update(fhirServer=fhir_server, fhirAuthorization=AUTH)
    response = client.post(f"/cds-services/rpl-{hook}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    from tests.builders import carried_ids
    return [rec_id for c in response.get_json()["cards"] for rec_id in carried_ids(c)], response.get_json()


def read_medication(rsps, medication: dict | None, rid: str = "med-prog", status: int = 200) -> None:
    rsps.add(responses.GET, f"{FHIR_BASE}/Medication/{rid}", json=medication or {"resourceType": "OperationOutcome"},
             status=status if medication or status != 200 else 404)


# -- the discovery templates ask for the Medications ---------------------------------------
def test_prefetch_templates_include_the_medications(client):
    services = client.get("/cds-services").get_json()["services"]
    for service in services:
        assert service["prefetch"]["medicationRequests"].endswith("&_include=MedicationRequest:medication")
        assert service["prefetch"]["medicationStatements"].endswith("&_include=MedicationStatement:medication")


# -- each shape -----------------------------------------------------------------------------
@responses.activate
def test_e8_6a_fires_for_a_contained_medication(client):
    contained = by_reference(reference="#m", contained=[{**PROGESTERONE, "id": "m"}])
    topics, _ = call(client, "patient-view", prefetch(losses(2), contained))
    assert "E8.6a" in topics and not responses.calls


@responses.activate
@pytest.mark.parametrize("rtype,key", [("MedicationRequest", "medicationRequests"),
                                       ("MedicationStatement", "medicationStatements")])
def test_e8_6a_fires_for_a_medication_included_in_the_prefetch_bundle(client, rtype, key):
    data = with_included(prefetch(losses(2), by_reference(rtype)), key, PROGESTERONE)
    topics, _ = call(client, "patient-view", data)
    assert "E8.6a" in topics
    assert not responses.calls  # nothing to read: the Medication came with the prefetch


@responses.activate
@pytest.mark.parametrize("reference", ["Medication/med-prog", f"{FHIR_BASE}/Medication/med-prog",
                                       "Medication/med-prog/_history/3"])
def test_e8_6a_fires_for_a_medication_read_from_the_fhir_server(client, reference):
    read_medication(responses, PROGESTERONE)
    topics, _ = call(client, "patient-view", prefetch(losses(2), by_reference(reference=reference)))
    assert "E8.6a" in topics
    assert [c.request.url for c in responses.calls] == [f"{FHIR_BASE}/Medication/med-prog"]
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {AUTH['access_token']}"


@responses.activate
def test_a_medication_statement_by_reference_is_read_too(client):
    read_medication(responses, PROGESTERONE)
    topics, _ = call(client, "patient-view", prefetch(losses(2), by_reference("MedicationStatement")))
    assert "E8.6a" in topics


@responses.activate
def test_each_missing_medication_is_read_once(client):
    read_medication(responses, PROGESTERONE)
    data = prefetch(losses(2), by_reference(rid="rx-1"), by_reference(rid="rx-2"), by_reference("MedicationStatement"))
    call(client, "patient-view", data)
    assert len(responses.calls) == 1


@responses.activate
def test_e8_6a_fires_for_a_draft_whose_medication_is_in_the_draft_orders_bundle(client):
    draft = by_reference(rid="draft-1", status="draft")
    body = hook_request("order-sign", data=prefetch(losses(2)))
    body["context"]["draftOrders"]["entry"].append({"resource": PROGESTERONE})
    body["context"]["draftOrders"]["entry"].insert(0, {"resource": draft})
    response = client.post("/cds-services/rpl-order-sign", json=body)
    assert "E8.6a" in [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
    assert not responses.calls


@responses.activate
def test_e8_6a_fires_for_a_draft_whose_medication_is_read_from_the_fhir_server(client):
    read_medication(responses, PROGESTERONE)
    topics, answer = call(client, "order-sign", prefetch(losses(2)), drafts=(by_reference(rid="draft-1", status="draft"),))
    assert "E8.6a" in topics
    assert "MedicationRequest/draft-1" in json.dumps(answer)  # the warning offers to remove that draft


# -- missing and unreadable: the order is unknown, said, and nothing is started --------------
@responses.activate
@pytest.mark.parametrize("case", ["not-found", "server-error", "no-fhir-server", "another-server", "not-a-medication"])
def test_an_unknown_medication_is_said_and_starts_no_treatment(client, caplog, case):
    reference = "https://other.example.org/fhir/Medication/med-prog" if case == "another-server" else "Medication/med-prog"
    if case == "not-found":
        read_medication(responses, None, status=404)
    elif case == "server-error":
        read_medication(responses, None, status=500)
    elif case == "not-a-medication":
        read_medication(responses, {"resourceType": "Patient", "id": "med-prog"})
    data = prefetch(losses(2), by_reference(reference=reference))
    with caplog.at_level("INFO"):
        topics, _ = call(client, "patient-view", data, fhir_server=None if case == "no-fhir-server" else FHIR_BASE)
    assert "E8.6a" not in topics  # what the order is, is not known
    # No folic acid or vitamin D counselling: the unknown order may be just that.
    assert not {"E8.5", "E5.6"} & set(topics)
    assert {"D3.2", "D5.1a", "D6", "C"} <= set(topics)  # the rest of the chart is unaffected
    audit = [r for r in caplog.records if r.name == "rpl_cds.audit"][-1]
    assert audit.audit["unresolvedMedications"] == 1
    if case in ("another-server", "no-fhir-server"):
        assert not responses.calls  # never read from a server the reference is not on


@responses.activate
def test_without_unknown_medications_the_counselling_comes(client):
    topics, _ = call(client, "patient-view", prefetch(losses(2)))
    assert {"E8.5", "E5.6"} <= set(topics) and not responses.calls


def pregnancy_with_bleeding() -> tuple:
    from tests.scenarios import pregnancy

    return pregnancy(bleeding_days_ago=5)


@responses.activate
@pytest.mark.parametrize("medication,fires", [(FOLIC_ACID, True), (None, False)], ids=["folic-acid", "unknown"])
def test_e8_6b_suggests_progesterone_only_when_every_active_medication_is_known(client, medication, fires):
    """An unknown active order may be the progesterone E8.6b would suggest starting."""
    read_medication(responses, medication, rid="med-folic", status=200 if medication else 404)
    data = prefetch(losses(3), *pregnancy_with_bleeding(), by_reference(reference="Medication/med-folic"))
    topics, _ = call(client, "patient-view", data)
    assert ("E8.6b" in topics) is fires


@responses.activate
def test_an_unknown_medication_of_a_draft_is_said_too(client, caplog):
    read_medication(responses, None, status=404)
    with caplog.at_level("INFO"):
        topics, _ = call(client, "order-sign", prefetch(losses(2)), drafts=(by_reference(rid="draft-1", status="draft"),))
    assert "E8.6a" not in topics
    assert [r for r in caplog.records if r.name == "rpl_cds.audit"][-1].audit["unresolvedMedications"] == 1


# -- a draft no rule could check is said on a card (issue 15, item 2: never silence) ------------
def unchecked_card(answer: dict) -> dict | None:
    return next((c for c in answer["cards"] if c["source"]["topic"]["code"] == "E"), None)


@responses.activate
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_draft_whose_medication_cannot_be_read_gets_a_card_that_says_so(client, hook):
    read_medication(responses, None, status=404)
    draft = by_reference(rid="draft-1", status="draft")
    body = hook_request(hook, data=prefetch(losses(2)), drafts=(draft,),
                        selections=("MedicationRequest/draft-1",) if hook == "order-select" else None)
    body.update(fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    answer = client.post(f"/cds-services/rpl-{hook}", json=body).get_json()
    card = unchecked_card(answer)
    assert card is not None and card["indicator"] == "info"
    assert card["summary"] == "A draft medication order was not checked against the miscarriage guideline"
    based_on = card["detail"].split("**Recommendation**")[0]
    assert "could not be read from the record" in based_on
    assert "MedicationRequest/" not in based_on  # references only in the small sources line
    assert "MedicationRequest/draft-1, Medication/med-prog" in card["detail"].split("From the record")[1]
    assert "progesterone" in card["detail"] and card["source"]["label"].startswith("NVOG 2022")


@responses.activate
def test_the_unchecked_card_in_dutch_and_for_two_drafts(client):
    read_medication(responses, None, status=404)
    read_medication(responses, None, rid="med-2", status=404)
    drafts = (by_reference(rid="d1", status="draft"), by_reference(reference="Medication/med-2", rid="d2", status="draft"))
    body = hook_request("order-sign", data=prefetch(losses(2)), drafts=drafts)
    body.update(fhirServer=FHIR_BASE, fhirAuthorization=AUTH)
    answer = client.post("/cds-services/rpl-order-sign", json=body, headers={"Accept-Language": "nl"}).get_json()
    card = unchecked_card(answer)
    assert card["summary"] == "2 conceptorders voor medicatie zijn niet getoetst aan de richtlijn herhaalde miskraam"
    assert card["detail"].count("niet uit het dossier te lezen") == 2


@responses.activate
def test_no_unchecked_card_once_the_medication_is_read(client):
    read_medication(responses, PROGESTERONE)
    topics, answer = call(client, "order-sign", prefetch(losses(2)), drafts=(by_reference(rid="draft-1", status="draft"),))
    assert "E8.6a" in topics and unchecked_card(answer) is None


@responses.activate
@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_no_unchecked_card_for_a_withdrawn_draft(client, status):
    read_medication(responses, None, status=404)
    topics, answer = call(client, "order-sign", prefetch(losses(2)), drafts=(by_reference(rid="draft-1", status=status),))
    assert unchecked_card(answer) is None


@responses.activate
def test_no_unchecked_card_in_a_mans_chart(client):
    read_medication(responses, None, status=404)
    data = prefetch(losses(2), gender="male")
    topics, answer = call(client, "order-sign", data, drafts=(by_reference(rid="draft-1", status="draft"),))
    assert unchecked_card(answer) is None


LEVOTHYROXINE = {"resourceType": "Medication", "id": "med-levo",
                 "code": {"coding": [{"system": RXNORM, "code": "966222",
                                      "display": "levothyroxine sodium 0.075 MG Oral Tablet"}]}}


@responses.activate
@pytest.mark.parametrize("medication,fires", [(LEVOTHYROXINE, False), (None, False), (FOLIC_ACID, True)],
                         ids=["levothyroxine", "unknown", "folic-acid"])
def test_e5_1a_never_tells_a_woman_on_levothyroxine_by_reference_to_start_it(client, medication, fires):
    """The case of the review: levothyroxine as medicationReference was invisible, and E5.1a suggested it."""
    from tests.builders import ft4, tsh

    rid = medication["id"] if medication else "med-levo"
    read_medication(responses, medication, rid=rid, status=200 if medication else 404)
    data = prefetch(losses(2), tsh(12.0), ft4(8.0, low=12, high=22),
                    by_reference("MedicationStatement", reference=f"Medication/{rid}"))
    topics, _ = call(client, "patient-view", data)
    assert ("E5.1a" in topics) is fires


# -- the facts cache: what was read is part of the key -----------------------------------------
@responses.activate
def test_the_facts_of_a_record_are_not_reused_once_its_medication_can_be_read(client):
    data = prefetch(losses(2), by_reference())
    read_medication(responses, None, status=404)
    first, _ = call(client, "patient-view", data)
    responses.reset()
    read_medication(responses, PROGESTERONE)
    second, _ = call(client, "patient-view", data)
    assert "E8.6a" not in first and "E8.6a" in second


# -- which references are read ---------------------------------------------------------------
def test_missing_medications_only_for_this_patient_and_this_server():
    other_patient = {**by_reference(rid="rx-x", reference="Medication/theirs"), "subject": {"reference": "Patient/other"}}
    orders = bundle(
        by_reference(rid="rx-1", reference="Medication/a"),
        by_reference(rid="rx-2", reference=f"{FHIR_BASE}/Medication/b"),
        by_reference(rid="rx-3", reference="https://elsewhere.org/fhir/Medication/c"),
        by_reference(rid="rx-4", reference="#contained"),
        by_reference(rid="rx-5", reference="Medication/../Patient/x"),
        by_reference(rid="rx-6", reference="Medication/known"),
        other_patient,
    )
    known = bundle({"resourceType": "Medication", "id": "known"})
    drafts = bundle(by_reference(rid="d-1", status="draft", reference="Medication/d"))
    assert missing_medications(PID, [orders, known], drafts, FHIR_BASE) == ["Medication/a", "Medication/b", "Medication/d"]


@responses.activate
def test_at_most_max_reads_medications_are_read(client):
    responses.add(responses.GET, f"{FHIR_BASE}/Medication/m-0", json={**PROGESTERONE, "id": "m-0"})
    for n in range(1, MAX_READS + 5):
        responses.add(responses.GET, f"{FHIR_BASE}/Medication/m-{n}", status=404)
    orders = [by_reference(rid=f"rx-{n}", reference=f"Medication/m-{n}") for n in range(MAX_READS + 5)]
    topics, _ = call(client, "patient-view", prefetch(losses(2), *orders))
    assert len(responses.calls) == MAX_READS and "E8.6a" in topics
