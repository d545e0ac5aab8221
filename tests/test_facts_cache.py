"""The facts cache (fhir_mappings.facts_cache.FactsCache): the same facts as reading the record
anew, for the same record only, with this call's draft orders always read anew; bounded, and
safe across threads."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta

import orjson
import pytest

from fhir_mappings.extract import ExtractionSettings, extract
from fhir_mappings.facts_cache import FactsCache, key_bytes, record_key
from fhir_mappings.record import gather, gather_drafts
from fhir_mappings.resources import ResourceParser
from fhir_mappings.valuesets import ATC, RXNORM, ValueSetIndex
from service import create_app
from service.config import load_settings
from tests.builders import (
    PID, bundle, hook_request, losses, medication_request, observation, prefetch, rpl_diagnosis, tsh,
)
from tests.conftest import TODAY, make_settings
from tests.scenarios import ALL, order_of


@pytest.fixture(scope="module")
def valuesets():
    return ValueSetIndex.load()


def as_received(value):
    """As the service receives it: parsed from JSON, a new object every call."""
    return orjson.loads(orjson.dumps(value))


def cache_of(valuesets, size: int = 10) -> FactsCache:
    return FactsCache(size, valuesets, ExtractionSettings(), ResourceParser(1000))


def values_of(data: dict) -> list:
    return list(as_received(data).values())


def read_anew(valuesets, data: dict, drafts: tuple = (), selections=(), today=TODAY, pid: str = PID):
    record = gather(pid, values_of(data), draft_orders=as_received(bundle(*drafts)), selections=selections)
    return extract(record, valuesets, today)


@pytest.mark.parametrize("scenario", ALL, ids=lambda s: s.id)
def test_facts_are_those_of_reading_the_record_anew_on_a_miss_and_a_hit(valuesets, scenario):
    data = prefetch(*scenario.resources, birth=scenario.birth)
    expected = read_anew(valuesets, data, scenario.drafts, scenario.selections or ())
    cache = cache_of(valuesets)
    for _ in range(2):  # a miss, then a hit
        drafts = as_received(bundle(*scenario.drafts))
        assert cache.facts(PID, values_of(data), TODAY, drafts, scenario.selections or ()) == expected
    assert len(cache) == 1


def test_the_same_record_is_read_once(valuesets, monkeypatch):
    cache = cache_of(valuesets)
    reads = []
    extract_once = cache._extract
    monkeypatch.setattr(cache, "_extract", lambda *a: reads.append(a) or extract_once(*a))
    data = prefetch(losses(3), tsh(6.2))
    first = cache.facts(PID, values_of(data), TODAY)
    second = cache.facts(PID, values_of(data), TODAY)
    assert len(reads) == 1 and second is first and first.tsh.value == 6.2


def test_a_changed_resource_is_a_new_record(valuesets):
    cache = cache_of(valuesets)
    before = prefetch(losses(3), tsh(2.0, rid="tsh-1"))
    after = copy.deepcopy(before)
    after["observations"]["entry"][1]["resource"]["valueQuantity"]["value"] = 6.2
    assert cache.facts(PID, values_of(before), TODAY).tsh.value == 2.0
    assert cache.facts(PID, values_of(after), TODAY).tsh.value == 6.2
    assert cache.facts(PID, values_of(before), TODAY).tsh.value == 2.0
    assert len(cache) == 2


def test_a_new_resource_is_a_new_record(valuesets):
    cache = cache_of(valuesets)
    data = prefetch(losses(1))
    assert cache.facts(PID, values_of(data), TODAY).loss_count.count == 1
    data["conditions"] = bundle(rpl_diagnosis())
    assert cache.facts(PID, values_of(data), TODAY).rpl_diagnosis is not None


def test_another_day_is_a_new_record(valuesets):
    """A result dated tomorrow is not read today, and is tomorrow."""
    cache = cache_of(valuesets)
    data = prefetch(losses(3), tsh(6.2, date=(TODAY + timedelta(days=1)).isoformat()))
    assert cache.facts(PID, values_of(data), TODAY).tsh is None
    assert cache.facts(PID, values_of(data), TODAY + timedelta(days=1)).tsh.value == 6.2
    assert cache.facts(PID, values_of(data), TODAY).tsh is None


def test_the_same_data_for_another_patient_is_not_her_record(valuesets):
    cache = cache_of(valuesets)
    data = prefetch(losses(3), tsh(6.2))  # about PID
    assert cache.facts(PID, values_of(data), TODAY).tsh.value == 6.2
    other = cache.facts("someone-else", values_of(data), TODAY)
    assert other.tsh is None and other.loss_count is None and other.patient_id == "someone-else"


def test_a_search_bundle_made_anew_with_the_same_entries_is_the_same_record(valuesets):
    """A FHIR server gives every searchset Bundle a new id, meta and self link: gather reads none."""
    cache = cache_of(valuesets)
    data = prefetch(losses(3), tsh(6.2))
    first = cache.facts(PID, values_of(data), TODAY)
    data["observations"].update(id="another-search", meta={"lastUpdated": "2026-11-23T10:00:00Z"},
                                link=[{"relation": "self", "url": "http://fhir/Observation?patient=pat-1"}])
    assert cache.facts(PID, values_of(data), TODAY) is first and len(cache) == 1


def test_draft_orders_and_selections_are_read_anew_at_every_call(valuesets):
    cache = cache_of(valuesets)
    data = prefetch(losses(3))
    ivig, progesterone = order_of("immunoglobulin-iv"), order_of("progesterone")
    calls = [((ivig,), ()), ((ivig, progesterone), (f"MedicationRequest/{progesterone['id']}",)), ((), ())]
    for drafts, selections in calls:
        got = cache.facts(PID, values_of(data), TODAY, as_received(bundle(*drafts)), selections)
        assert got == read_anew(valuesets, data, drafts, selections)
        assert [o.reference for o in got.draft_orders if o.selected] == list(selections)
        assert len(got.draft_orders) == len(drafts)
    assert len(cache) == 1  # one record, three calls


def test_a_draft_citing_a_result_on_record_gets_its_reason_from_a_remembered_record(valuesets):
    cache = cache_of(valuesets)
    data = prefetch(losses(3), observation("13965-9", value=18, unit="umol/L", rid="hcy-1"))
    citing = {**order_of("homocysteine-vitamins"), "reasonReference": [{"reference": "Observation/hcy-1"}]}
    cache.facts(PID, values_of(data), TODAY)  # remembered without drafts
    got = cache.facts(PID, values_of(data), TODAY, as_received(bundle(citing)))
    assert "homocysteine" in got.draft_orders[0].reason and len(cache) == 1


def test_an_order_on_record_citing_a_later_resource_gets_its_reason(valuesets):
    """Orders are read after every resource of the record, so the order of the data does not matter."""
    order = {**order_of("homocysteine-vitamins", status="active"), "reasonReference": [{"reference": "Observation/hcy-1"}]}
    data = prefetch(order, losses(3), observation("13965-9", value=18, unit="umol/L", rid="hcy-1"))
    data = {"medicationRequests": data.pop("medicationRequests"), **data}  # the order before the result
    facts = cache_of(valuesets).facts(PID, values_of(data), TODAY)
    assert "homocysteine" in facts.orders[0].reason


def test_a_medication_of_the_draft_bundle_is_part_of_the_record(valuesets):
    """An order on record may reference a Medication that only the draftOrders Bundle holds: the
    record with it is another record than without it."""
    on_record = medication_request(RXNORM, "0", status="active", rid="rx-1")
    del on_record["medicationCodeableConcept"]
    on_record["medicationReference"] = {"reference": "Medication/med-9"}
    medication = {"resourceType": "Medication", "id": "med-9", "code": {"coding": [{"system": ATC, "code": "G03DA04"}]}}
    data = prefetch(losses(3), on_record)
    cache = cache_of(valuesets)
    without = cache.facts(PID, values_of(data), TODAY)
    with_medication = cache.facts(PID, values_of(data), TODAY, as_received(bundle(medication)))
    assert without.orders == () and [sorted(o.classes) for o in with_medication.orders] == [["progesterone"]]
    assert with_medication == read_anew(valuesets, data, (medication,))
    assert len(cache) == 2


def test_the_cache_keeps_at_most_its_size_and_forgets_the_least_recently_used(valuesets, monkeypatch):
    cache = cache_of(valuesets, size=2)
    reads = []
    extract_once = cache._extract
    monkeypatch.setattr(cache, "_extract", lambda *a: reads.append(a[0]) or extract_once(*a))
    records = {pid: prefetch(losses(3, pid=pid), pid=pid) for pid in ("a", "b", "c")}
    for pid in ("a", "b", "a", "c", "a", "b"):  # c evicts b (a was used again); then b evicts c
        cache.facts(pid, values_of(records[pid]), TODAY)
    assert reads == ["a", "b", "c", "b"] and len(cache) == 2


def test_size_zero_keeps_nothing(valuesets):
    cache = cache_of(valuesets, size=0)
    data = prefetch(losses(3))
    first, second = (cache.facts(PID, values_of(data), TODAY) for _ in range(2))
    assert first == second and first is not second and len(cache) == 0


def test_json_too_deep_to_serialise_is_read_anew_not_remembered(valuesets):
    deep: dict = {}
    inner = deep
    for _ in range(300):  # beyond orjson's 254 levels (the service's input limits stop it earlier)
        inner["a"] = {}
        inner = inner["a"]
    data = prefetch(losses(3))
    values = [*values_of(data), {"resourceType": "Basic", "extension": deep}]
    assert record_key(PID, TODAY, values, gather_drafts(PID, None)) is None
    cache = cache_of(valuesets)
    assert cache.facts(PID, values, TODAY).loss_count.count == 3 and len(cache) == 0


def test_threads_sharing_a_cache_get_each_their_own_patients_facts(valuesets):
    cache = cache_of(valuesets, size=4)  # fewer than the patients: entries come and go meanwhile
    records = {f"p{i}": prefetch(losses(3, pid=f"p{i}"), tsh(1.0 + i, pid=f"p{i}"), pid=f"p{i}") for i in range(6)}
    errors: list[BaseException] = []
    wrong: list[str] = []

    def work(offset: int) -> None:
        try:
            for n in range(60):
                pid = f"p{(n + offset) % 6}"
                facts = cache.facts(pid, values_of(records[pid]), TODAY)
                if facts.patient_id != pid or facts.tsh.value != 1.0 + int(pid[1:]):
                    wrong.append(pid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not wrong and len(cache) == 4


# -- in the service ---------------------------------------------------------------------------
def test_the_service_reads_a_record_sent_again_from_its_cache_with_new_drafts(tmp_path):
    app = create_app(make_settings(tmp_path))
    facts = app.extensions["rpl"].facts
    assert facts._entries.max_entries == 64  # the default of RPL_FACTS_CACHE_SIZE
    client = app.test_client()
    record = (losses(3),)
    topics = []
    for drafts in ((order_of("immunoglobulin-iv"),), (order_of("immunoglobulin-iv"), order_of("heparins"))):
        answer = client.post("/cds-services/rpl-order-sign", json=hook_request("order-sign", *record, drafts=drafts))
        assert answer.status_code == 200
        topics.append(sorted(c["source"]["topic"]["code"] for c in answer.get_json()["cards"]))
    assert len(facts) == 1
    assert "E8.2" in topics[0] and "E8.4" not in topics[0]  # IVIg only
    assert {"E8.2", "E8.4"} <= set(topics[1])  # then heparin too
    app.extensions["rpl"].close()


def test_both_cache_sizes_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RPL_FACTS_CACHE_SIZE", "0")
    monkeypatch.setenv("RPL_VALIDATION_CACHE_SIZE", "7")
    monkeypatch.setenv("RPL_DATABASE_URL", f"sqlite:///{tmp_path / 'f.sqlite3'}")
    monkeypatch.setenv("RPL_AUTH_ENABLED", "false")
    app = create_app(load_settings())
    runtime = app.extensions["rpl"]
    assert runtime.facts._entries.max_entries == 0 and runtime.facts.parser.max_entries == 7
    runtime.close()


def test_the_cache_holds_at_most_its_bytes_of_keys_and_never_a_record_larger_than_that(valuesets):
    """Records near the body limit must not make a worker hold hundreds of MB."""
    records = {pid: prefetch(losses(3, pid=pid), tsh(2.0, pid=pid), pid=pid) for pid in ("a", "b", "c")}
    sizes = {pid: key_bytes(record_key(pid, TODAY, values_of(r), gather_drafts(pid, None))) for pid, r in records.items()}
    budget = sizes["b"] + sizes["c"]
    cache = FactsCache(10, valuesets, ExtractionSettings(), ResourceParser(100), max_key_bytes=budget)
    for pid in ("a", "b", "c"):
        cache.facts(pid, values_of(records[pid]), TODAY)
    assert len(cache) == 2 and cache._entries.weight == budget  # "a" went first
    tiny = FactsCache(10, valuesets, ExtractionSettings(), ResourceParser(100), max_key_bytes=min(sizes.values()) // 2)
    assert tiny.facts("a", values_of(records["a"]), TODAY).tsh.value == 2.0 and len(tiny) == 0
