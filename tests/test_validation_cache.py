"""The validation cache (fhir_mappings.resources.ResourceParser): the same answers as
validating every time, for the same content only, bounded, and safe across threads."""

from __future__ import annotations

import copy
import threading

import orjson
import pytest

from fhir_mappings.extract import extract
from fhir_mappings.record import gather
from fhir_mappings.resources import InvalidResource, ResourceParser, parse
from fhir_mappings.valuesets import ValueSetIndex
from service import create_app
from tests.builders import bundle, hook_request, losses, prefetch, tsh
from tests.conftest import TODAY, make_settings
from tests.scenarios import ALL


@pytest.fixture(scope="module")
def valuesets():
    return ValueSetIndex.load()


def as_received(resource: dict) -> dict:
    """A resource as the service receives it: parsed from JSON, a new object every call."""
    return orjson.loads(orjson.dumps(resource))


def test_the_same_content_is_validated_once_and_gives_the_same_model():
    parser = ResourceParser(10)
    resource = tsh(2.1)
    first = parser.parse(as_received(resource))
    again = parser.parse(as_received(resource))
    assert again is first and len(parser) == 1
    assert first == parse(as_received(resource))


def test_elements_no_rule_reads_do_not_make_a_new_entry_but_read_ones_and_ids_do():
    parser = ResourceParser(10)
    base = as_received(tsh(2.1))
    with_narrative = {**base, "text": {"status": "generated", "div": "<div>TSH 2.1</div>"}}
    assert parser.parse(with_narrative) is parser.parse(base)
    other_value = copy.deepcopy(base)
    other_value["valueQuantity"]["value"] = 9.5
    assert parser.parse(other_value).valueQuantity.value == 9.5
    other_id = {**base, "id": "another-tsh"}
    assert parser.parse(other_id).id == "another-tsh"
    assert len(parser) == 3


def test_an_invalid_resource_stays_invalid_when_sent_again():
    parser = ResourceParser(10)
    bad = as_received(tsh(2.1))
    bad["effectiveDateTime"] = "yesterday"
    for _ in range(2):
        with pytest.raises(InvalidResource, match="effectiveDateTime"):
            parser.parse(as_received(bad))
        assert parser.validated(as_received(bad)) is None
    assert len(parser) == 1


def test_the_cache_keeps_at_most_its_size_and_forgets_the_least_recently_used():
    parser = ResourceParser(3)
    resources = [as_received({**tsh(2.0), "id": f"tsh-{i}"}) for i in range(4)]
    models = [parser.parse(r) for r in resources[:3]]
    parser.parse(resources[0])  # used again: now the newest
    parser.parse(resources[3])  # evicts tsh-1, the least recently used
    assert len(parser) == 3
    assert parser.parse(resources[0]) is models[0]
    assert parser.parse(resources[2]) is models[2]
    assert parser.parse(resources[1]) is not models[1]


def test_size_zero_keeps_nothing():
    parser = ResourceParser(0)
    resource = tsh(2.1)
    assert parser.parse(as_received(resource)) is not parser.parse(as_received(resource))
    assert len(parser) == 0


@pytest.mark.parametrize("scenario", ALL, ids=lambda s: s.id)
def test_facts_are_the_same_with_a_cold_or_warm_cache_as_without(valuesets, scenario):
    data = prefetch(*scenario.resources, birth=scenario.birth)

    def facts(parser):
        record = gather("pat-1", as_received(data).values(), draft_orders=as_received(bundle(*scenario.drafts)),
                        selections=scenario.selections or ())
        return extract(record, valuesets, TODAY, parser=parser)

    cached = ResourceParser(1000)
    uncached = facts(ResourceParser(0))
    assert facts(cached) == uncached  # cold
    assert facts(cached) == uncached  # warm


def test_threads_sharing_a_cache_get_the_same_models():
    parser = ResourceParser(50)
    resources = [as_received({**tsh(1.0 + i / 10), "id": f"tsh-{i}"}) for i in range(40)]
    seen: list[list] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            seen.append([float(parser.parse(as_received(r)).valueQuantity.value) for r in resources * 5])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = [1.0 + (i % 40) / 10 for i in range(200)]
    assert all(values == pytest.approx(expected) for values in seen) and len(seen) == 8


def test_the_service_validates_a_resource_sent_again_from_its_cache(tmp_path):
    # The facts cache off: with it, the record sent again is not even read (test_facts_cache.py).
    app = create_app(make_settings(tmp_path, facts_cache_size=0))
    parser = app.extensions["rpl"].facts.parser
    assert parser.max_entries == 2000  # the default of RPL_VALIDATION_CACHE_SIZE
    client = app.test_client()
    body = hook_request("patient-view", losses(3), tsh(6.2))
    first = client.post("/cds-services/rpl-patient-view", json=body)
    entries = len(parser)
    assert entries > 0
    second = client.post("/cds-services/rpl-patient-view", json=body)
    assert len(parser) == entries
    topics = [sorted(c["source"]["topic"]["code"] for c in r.get_json()["cards"]) for r in (first, second)]
    assert first.status_code == second.status_code == 200 and topics[0] == topics[1]
    app.extensions["rpl"].close()

