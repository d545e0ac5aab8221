"""Hostile input: limits on nesting, string length and Bundle size, data of the wrong
patient or type, untrusted FHIR servers with authentication on, and a property-based
test that throws thousands of generated requests at every endpoint.

(Body size: tests/test_protocol.py::test_body_over_the_limit_is_413; the page cap of
fetched data: tests/test_prefetch.py::test_too_many_pages_is_412.)"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mappings.record import gather
from tests.builders import PID, hook_request, losses, observation, patient, prefetch, rpl_diagnosis, tsh
from tests.conftest import FHIR_BASE, make_settings
from tests.test_auth import DISCOVERY, close, new_app, token

EXAMPLES = {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((Path(__file__).parent.parent / "service" / "examples").glob("*.json"))}
DOCUMENTED = {200, 400, 401, 404, 405, 412, 413, 415}
SERVICE_IDS = ["rpl-patient-view", "rpl-order-select", "rpl-order-sign"]
PATH = "/cds-services/rpl-patient-view"


def _outcome(response, status: int, text: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert text in response.get_json()["issue"][0]["diagnostics"]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("path", ["/cds-services/%2F/feedback", "/cds-services//rpl-patient-view", "//cds-services"])
def test_doubled_slashes_are_a_json_404_not_an_html_redirect(client, path):
    r = client.post(path, json={})
    assert r.status_code == 404 and r.mimetype == "application/json"


# -- nesting depth, string length, Bundle size ---------------------------------------------------
def test_json_nested_deeper_than_the_limit_is_400(client):
    body = hook_request("patient-view", extension=nested(70))
    _outcome(client.post(PATH, json=body), 400, "nested deeper than 64 levels")


def test_json_nested_within_the_limit_is_accepted(client):
    assert client.post(PATH, json=hook_request("patient-view", extension=nested(60))).status_code == 200


def test_a_huge_bracket_bomb_is_400(client):
    r = client.post(PATH, data="[" * 4_000_000, content_type="application/json")
    _outcome(r, 400, "nested deeper")


def test_brackets_inside_strings_do_not_count_as_nesting(client):
    body = hook_request("patient-view", extension={"note": "[{" * 500 + '\\"[['})
    assert client.post(PATH, json=body).status_code == 200


@pytest.mark.parametrize("where", ["value", "key"])
def test_a_string_longer_than_the_limit_is_400_and_not_echoed(client, where):
    long = "x" * 100_001
    body = hook_request("patient-view", extension={"note": long} if where == "value" else {long: 1})
    r = client.post(PATH, json=body)
    _outcome(r, 400, "longer than 100000 characters")
    assert long[:1000] not in r.get_data(as_text=True)


def test_a_string_at_the_limit_is_accepted(client):
    assert client.post(PATH, json=hook_request("patient-view", extension={"note": "x" * 100_000})).status_code == 200


# Resources in prefetch Bundles are checked where a rule reads them (fhir_mappings.resources.
# ResourceParser), not looked into where none does: the limits hold for everything the service uses.
LONG = "x" * 100_001


def _with_tsh(resource_changes: dict, *others: dict) -> dict:
    result = tsh(6.1)
    result.update(resource_changes)
    return hook_request("patient-view", losses(3), result, *others)


def test_a_long_string_in_a_prefetched_element_a_rule_reads_is_400_naming_the_resource(client):
    body = _with_tsh({"id": "tsh-long", "code": {"coding": [{"system": "http://loinc.org", "code": "3016-3"}],
                                                  "text": LONG}})
    _outcome(client.post(PATH, json=body), 400, "Observation/tsh-long: a string longer than 100000 characters")


def test_deep_nesting_in_a_prefetched_element_a_rule_reads_is_400(client):
    body = _with_tsh({"valueQuantity": {"value": 6.1, "unit": "mIU/L", "extension": nested(70)}})
    _outcome(client.post(PATH, json=body), 400, "nested deeper than 64 levels")


def test_a_refused_resource_is_refused_again_when_sent_again(client):
    result = tsh(6.1)
    del result["valueQuantity"]
    result.update(id="tsh-long", valueString=LONG)
    body = hook_request("patient-view", losses(3), result)
    for _ in range(2):
        _outcome(client.post(PATH, json=body), 400, "Observation/tsh-long: a string longer than")


def test_long_or_deep_data_where_no_rule_reads_is_not_looked_into(client):
    plain = _topics(client, hook_request("patient-view", losses(3), tsh(6.1)))
    routine_lab = observation("2345-7", value=5.1, unit="mmol/L")  # glucose: no rule reads it
    routine_lab["note"] = [{"text": LONG}]
    body = _with_tsh({"text": {"status": "generated", "div": LONG}, "meta": {"extension": nested(70)}}, routine_lab)
    assert plain and _topics(client, body) == plain  # the same cards as without them


def test_the_parts_of_prefetch_entries_no_one_reads_are_not_looked_into(client):
    """Of an entry, only the resource and search.mode are read: a long fullUrl or a deep
    search element is harmless (the body size is capped) and not worth a walk per entry."""
    body = hook_request("patient-view", losses(3), tsh(6.1))
    plain = _topics(client, body)
    entries = body["prefetch"]["observations"]["entry"]
    entries[0]["fullUrl"] = LONG
    entries[-1]["search"] = {"mode": "match", "extension": nested(70)}
    assert plain and _topics(client, body) == plain


def test_a_prefetch_resource_with_a_long_type_or_id_is_set_aside_with_a_short_reason():
    record = gather(PID, [{"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Observation", "id": LONG, "subject": {"reference": "Patient/other"}}},
        {"resource": {"resourceType": "X" * 100_000}},
        {"resource": {"resourceType": "Condition", "id": {"deep": nested(70)}, "subject": {"reference": "Patient/x"}}},
    ]}])
    assert record.resources == ()
    assert [len(reason) < 200 for reason in record.ignored] == [True, True, True]


@pytest.mark.parametrize("where", ["bundle", "patient", "draft"])
def test_long_strings_outside_the_resources_of_prefetch_bundles_are_still_400(client, where):
    hook = "order-sign" if where == "draft" else "patient-view"
    drafts = ({"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "proposal",
               "subject": {"reference": f"Patient/{PID}"}, "code": {"text": "test"}, "note": [{"text": LONG}]},
              ) if where == "draft" else ()
    body = hook_request(hook, losses(3), drafts=drafts)
    observations = body["prefetch"]["observations"]
    if where == "bundle":
        observations["link"] = [{"relation": "self", "url": LONG}]
    elif where == "patient":
        body["prefetch"]["patient"]["text"] = {"status": "generated", "div": LONG}
    r = client.post(f"/cds-services/rpl-{hook}", json=body)
    _outcome(r, 400, "longer than 100000 characters")


@pytest.fixture
def small_bundles(tmp_path):
    app = new_app(make_settings(tmp_path, max_bundle_entries=5))
    yield app.test_client()
    close(app)


def _drafts(n: int) -> tuple[dict, ...]:
    return tuple({"resourceType": "ServiceRequest", "id": f"sr-{i}", "status": "draft", "intent": "proposal",
                  "subject": {"reference": f"Patient/{PID}"}, "code": {"text": "test"}} for i in range(n))


def test_draft_orders_with_too_many_entries_are_400(small_bundles):
    r = small_bundles.post("/cds-services/rpl-order-sign", json=hook_request("order-sign", drafts=_drafts(6)))
    _outcome(r, 400, "context.draftOrders: a Bundle with more than 5 entries")
    assert small_bundles.post("/cds-services/rpl-order-sign", json=hook_request("order-sign", drafts=_drafts(5))).status_code == 200


def test_a_prefetch_bundle_with_too_many_entries_is_400(small_bundles):
    r = small_bundles.post(PATH, json=hook_request("patient-view", *[losses(2) for _ in range(6)]))
    _outcome(r, 400, "prefetch.observations: a Bundle with more than 5 entries")


# -- data that is not this patient's, or of a type no rule reads ---------------------------------
def _topics(client, body) -> list[str]:
    r = client.post(PATH, json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return sorted(c["source"]["topic"]["code"] for c in r.get_json()["cards"])


def test_prefetch_of_another_patient_or_of_a_wrong_type_is_ignored(client):
    baseline = _topics(client, hook_request("patient-view", losses(1)))
    data = prefetch(losses(1))
    wrong_type = rpl_diagnosis()
    wrong_type["resourceType"] = "Basic"  # this patient's, but of a type no rule reads
    data["conditions"]["entry"] += [{"resource": r} for r in (
        rpl_diagnosis(pid="someone-else"), losses(4, pid="someone-else"), patient("someone-else"), wrong_type)]
    assert _topics(client, hook_request("patient-view", data=data)) == baseline
    # the same facts about this patient do change the cards: the test above is not vacuous
    assert _topics(client, hook_request("patient-view", rpl_diagnosis(), losses(4))) != baseline


# -- only trusted FHIR servers, with authentication on --------------------------------------------
@pytest.fixture
def authed_fetching(tmp_path):
    from tests.test_auth import issuer

    app = new_app(make_settings(tmp_path, auth_enabled=True, auth_issuers=[issuer()]))
    yield app.test_client()
    close(app)


def _missing_observations(**extra) -> dict:
    data = prefetch()
    del data["observations"]
    return hook_request("patient-view", data=data, **extra)


@responses.activate
def test_an_authenticated_client_still_cannot_point_the_service_at_an_unlisted_fhir_server(authed_fetching):
    body = _missing_observations(fhirServer="https://evil.example.com/fhir")
    r = authed_fetching.post(PATH, json=body, headers={"Authorization": f"Bearer {token(PATH)}"})
    _outcome(r, 412, "data not available")  # only that: the reason (not on the allowlist) is in the log
    assert len(responses.calls) == 0


@responses.activate
def test_an_authenticated_call_does_not_follow_a_redirect_to_another_host(authed_fetching):
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/Observation.*"), status=302,
                  headers={"Location": "https://elsewhere.example.net/steal"})
    r = authed_fetching.post(PATH, json=_missing_observations(fhirServer=FHIR_BASE),
                             headers={"Authorization": f"Bearer {token(PATH)}"})
    _outcome(r, 412, "data not available")
    assert all("elsewhere" not in c.request.url for c in responses.calls)


# -- property-based: whatever comes in, the answer is JSON with a documented status -----------------
@pytest.fixture(scope="module")
def fuzz_apps(tmp_path_factory):
    """One app without and one with authentication; no FHIR server allowed, so nothing leaves the test."""
    from tests.test_auth import issuer

    plain = new_app(make_settings(tmp_path_factory.mktemp("plain"), fhir_server_allowlist=()))
    secured = new_app(make_settings(tmp_path_factory.mktemp("secured"), fhir_server_allowlist=(),
                                    auth_enabled=True, auth_issuers=[issuer()]))
    yield {False: plain, True: secured}
    close(plain)
    close(secured)


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
paths = st.one_of(
    st.sampled_from(["/cds-services", *(f"/cds-services/{s}" for s in SERVICE_IDS),
                     *(f"/cds-services/{s}/feedback" for s in SERVICE_IDS), "/", "/cds-services/", "/healthz"]),
    st.text(min_size=1, max_size=30).map(lambda s: "/cds-services/" + quote(s, safe="")),
    st.text(min_size=1, max_size=30).map(lambda s: f"/cds-services/{quote(s, safe='')}/feedback"),
)
content_types = st.one_of(
    st.sampled_from(["application/json", "application/fhir+json", "application/json; charset=utf-8", "text/plain",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", ""]),
    printable,
)


def _paths_in(value: Any, here: tuple = ()) -> list[tuple]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths_in(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths_in(item, (*here, index))
    return found


@st.composite
def mutated_examples(draw) -> dict:
    """An example request with a few values replaced, removed or added anywhere in it."""
    body = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    body["hookInstance"] = str(draw(st.uuids()))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(_paths_in(body)[1:]))
        parent = body
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[where[-1]] = draw(json_values)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        else:
            parent.append(draw(json_values))
        if not _paths_in(body)[1:]:
            break
    return body


bodies = st.one_of(
    mutated_examples().map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.tuples(st.sampled_from(sorted(EXAMPLES)), st.floats(0, 1)).map(
        lambda t: json.dumps(EXAMPLES[t[0]]).encode()[: int(len(json.dumps(EXAMPLES[t[0]])) * t[1])]),
    st.integers(60, 3000).map(lambda n: b"[" * n + b"]" * n),
)


def _check(response) -> None:
    assert response.status_code in DOCUMENTED, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json", response.headers
    assert isinstance(json.loads(response.get_data()), dict)


def _authorization(data, path: str) -> dict:
    kind = data.draw(st.sampled_from(["none", "garbage", "bearer-garbage", "valid", "other-endpoint"]))
    if kind == "none":
        return {}
    if kind == "garbage":
        return {"Authorization": data.draw(printable)}
    if kind == "bearer-garbage":
        return {"Authorization": "Bearer " + data.draw(printable)}
    return {"Authorization": "Bearer " + token(path if kind == "valid" else DISCOVERY + "/elsewhere")}


FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FUZZ, max_examples=700)
@given(data=st.data(), auth_on=st.booleans(), method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       path=paths, body=bodies, content_type=content_types, language=printable)
def test_any_request_gets_json_with_a_documented_status(fuzz_apps, data, auth_on, method, path, body, content_type, language):
    headers = {"Accept-Language": language, **(_authorization(data, path) if auth_on else {})}
    response = fuzz_apps[auth_on].test_client().open(path, method=method, data=body, content_type=content_type,
                                                     headers=headers)
    if path == "/healthz" and method == "GET":
        assert response.status_code == 200
    _check(response)


@settings(FUZZ, max_examples=900)
@given(data=st.data(), auth_on=st.booleans(), body=mutated_examples(), service=st.sampled_from(SERVICE_IDS),
       feedback=st.booleans())
def test_mutated_example_requests_get_json_with_a_documented_status(fuzz_apps, data, auth_on, body, service, feedback):
    path = f"/cds-services/{service}" + ("/feedback" if feedback else "")
    headers = _authorization(data, path) if auth_on else {}
    response = fuzz_apps[auth_on].test_client().post(path, json=body, headers=headers)
    _check(response)


@settings(FUZZ, max_examples=400)
@given(data=st.data(), body=mutated_examples())
def test_mutated_requests_with_a_valid_token_reach_the_service_and_never_fail_it(fuzz_apps, data, body):
    service = {"patient-view": "rpl-patient-view", "order-select": "rpl-order-select", "order-sign": "rpl-order-sign"}.get(
        body.get("hook") if isinstance(body.get("hook"), str) else "", data.draw(st.sampled_from(SERVICE_IDS)))
    path = f"/cds-services/{service}"
    response = fuzz_apps[True].test_client().post(path, json=body, headers={"Authorization": f"Bearer {token(path)}"})
    assert response.status_code != 401
    _check(response)
