"""Governance record (issue 17): every card recorded, feedback stored once, silent mode,
retention, and no repeat after an override."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from service import create_app
from service.config import ConfigError, load_settings
from service.feedback import (
    FeedbackStore, IssuedCard, feedback_table, issued_card_recommendation_table, issued_card_table,
)
from tests.builders import PID, hook_request, losses, progesterone_order
from tests.conftest import TODAY, make_settings

SECRET = "a-test-secret-of-at-least-32-characters!"


def rows(app, table) -> list:
    with app.extensions["rpl"].feedback.engine.connect() as c:
        return list(c.execute(sa.select(table)))


def carried(app) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for row in rows(app, issued_card_recommendation_table):
        out.setdefault(row.card_id, set()).add(row.recommendation_id)
    return out


def new_app(tmp_path, **overrides):
    counter = itertools.count(1)
    return create_app(make_settings(tmp_path, **overrides), today=lambda: TODAY,
                      new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}")


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def make(**overrides):
        app = new_app(tmp_path, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["rpl"].close()


def call(app, hook, *resources, pid=PID, drafts=()):
    body = hook_request(hook, *resources, pid=pid, drafts=drafts)
    r = app.test_client().post(f"/cds-services/rpl-{hook}", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["cards"]


def send_feedback(app, hook, *items):
    r = app.test_client().post(f"/cds-services/rpl-{hook}/feedback", json={"feedback": list(items)})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def overridden(card_uuid, at="2026-11-23T10:00:00Z", code="other-indication"):
    return {"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at,
            "overrideReason": {"reason": {"system": "http://rpl-cds.org/fhir/CodeSystem/override-reason", "code": code}}}


def accepted(card_uuid, suggestion_uuid, at="2026-11-23T10:00:00Z"):
    return {"card": card_uuid, "outcome": "accepted", "outcomeTimestamp": at,
            "acceptedSuggestions": [{"id": suggestion_uuid}]}


# -- every card recorded ------------------------------------------------------------------------
def test_every_returned_card_is_recorded_with_its_ids_and_suggestions(make_app):
    app = make_app()
    cards = call(app, "patient-view", losses(2))
    assert cards
    recorded = {row.card_uuid: row for row in rows(app, issued_card_table)}
    assert set(recorded) == {c["uuid"] for c in cards}
    ids = carried(app)
    for card in cards:
        row = recorded[card["uuid"]]
        assert row.topic == card["source"]["topic"]["code"]
        assert card["source"]["topic"]["code"] in ids[row.id]
        assert row.indicator == card["indicator"] and row.disposition == "shown"
        assert row.service_id == "rpl-patient-view" and row.hook == "patient-view"
        assert json.loads(row.suggestion_uuids or "[]") == [s["uuid"] for s in card.get("suggestions") or []]
        assert row.issued_at is not None and row.iss is None and row.patient_hmac is None


def test_a_call_without_cards_records_nothing(make_app):
    app = make_app()
    assert call(app, "patient-view") == []
    assert rows(app, issued_card_table) == []


def test_no_patient_identifier_is_stored_in_clear(make_app):
    app = make_app(no_repeat_after_override_days=30, patient_hmac_secret=SECRET)
    call(app, "order-select", losses(2, pid="patient-4711"), pid="patient-4711", drafts=(progesterone_order(rid="p1", pid="patient-4711"),))
    dump = json.dumps([[str(v) for v in row] for table in (issued_card_table, issued_card_recommendation_table)
                       for row in rows(app, table)])
    assert rows(app, issued_card_table) and "4711" not in dump
    expected = hmac.new(SECRET.encode(), b"|patient-4711", hashlib.sha256).hexdigest()
    assert rows(app, issued_card_table)[0].patient_hmac == expected


def test_a_card_recorded_without_a_database_still_reaches_the_client(tmp_path):
    app = new_app(tmp_path, database_url="sqlite:////nonexistent/dir/feedback.db")
    try:
        assert call(app, "patient-view", losses(2))  # the record failed; the cards go out
        metrics = app.test_client().get("/metrics").get_data(as_text=True)
        assert "rpl_cds_issued_card_record_failures_total 1.0" in metrics
    finally:
        app.extensions["rpl"].close()


# -- feedback --------------------------------------------------------------------------------------
def test_feedback_sent_again_is_stored_once(make_app):
    app = make_app()
    card = call(app, "order-select", losses(2), drafts=(progesterone_order(rid="p1"),))[0]
    item = overridden(card["uuid"])
    assert send_feedback(app, "order-select", item) == {"stored": 1, "duplicates": 0}
    assert send_feedback(app, "order-select", item) == {"stored": 0, "duplicates": 1}
    assert send_feedback(app, "order-select", item, item) == {"stored": 0, "duplicates": 2}
    assert app.extensions["rpl"].feedback.count() == 1


def test_the_same_item_twice_in_one_request_is_stored_once(make_app):
    app = make_app()
    item = overridden("11111111-1111-4111-8111-111111111111")
    assert send_feedback(app, "order-select", item, item) == {"stored": 1, "duplicates": 1}


def test_feedback_that_differs_in_time_outcome_or_suggestions_is_stored_again(make_app):
    app = make_app()
    card = call(app, "order-select", losses(2), drafts=(progesterone_order(rid="p1"),))[0]
    suggestion = card["suggestions"][0]["uuid"]
    first = send_feedback(app, "order-select", accepted(card["uuid"], suggestion),
                          accepted(card["uuid"], suggestion, at="2026-11-23T10:00:01Z"),
                          overridden(card["uuid"]), overridden(card["uuid"], code="research-protocol"))
    assert first == {"stored": 4, "duplicates": 0}
    # The same instant written differently is the same item.
    assert send_feedback(app, "order-select", overridden(card["uuid"], at="2026-11-23T11:00:00+01:00"))["duplicates"] == 1


def test_feedback_for_an_unknown_card_is_still_stored(make_app):
    app = make_app()
    assert send_feedback(app, "patient-view", overridden("not-a-card-we-issued"))["stored"] == 1
    (row,) = rows(app, feedback_table)
    assert row.card_uuid == "not-a-card-we-issued" and rows(app, issued_card_table) == []


def test_a_feedback_table_of_an_older_release_gets_the_dedupe_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE feedback (id INTEGER PRIMARY KEY, received_at TIMESTAMP NOT NULL, "
                          "service_id VARCHAR(100) NOT NULL, card_uuid VARCHAR(200) NOT NULL, outcome VARCHAR(20) NOT NULL, "
                          "accepted_suggestions TEXT, override_system TEXT, override_code TEXT, user_comment TEXT, "
                          "outcome_timestamp TIMESTAMP NOT NULL, item_json TEXT NOT NULL)"))
        c.execute(sa.text("INSERT INTO feedback (received_at, service_id, card_uuid, outcome, outcome_timestamp, item_json) "
                          "VALUES ('2026-01-01 00:00:00', 's', 'c', 'overridden', '2026-01-01 00:00:00', '{}')"))
    engine.dispose()
    app = new_app(tmp_path, database_url=url)
    try:
        item = overridden("c2")
        assert send_feedback(app, "patient-view", item, item) == {"stored": 1, "duplicates": 1}
        assert app.extensions["rpl"].feedback.count() == 2
    finally:
        app.extensions["rpl"].close()


# -- silent (pilot) mode -----------------------------------------------------------------------
def test_silent_recommendations_are_recorded_but_never_returned(make_app):
    app = make_app(silent_recommendations="E8.6a,D6")
    cards = call(app, "order-select", losses(2), drafts=(progesterone_order(rid="p1"),))
    assert "E8.6a" not in {c["source"]["topic"]["code"] for c in cards}
    recorded = {row.topic: row for row in rows(app, issued_card_table)}
    assert recorded["E8.6a"].disposition == "silent"
    view = call(app, "patient-view", losses(2))
    from tests.builders import carried_ids
    topics = {rec_id for c in view for rec_id in carried_ids(c)}
    assert "D6" not in topics and "D3.2" in topics
    assert {r.topic for r in rows(app, issued_card_table) if r.disposition == "silent"} == {"E8.6a", "D6"}


def test_a_silent_hook_returns_no_card_and_records_them_all(make_app):
    app = make_app(silent_hooks="patient-view")
    assert call(app, "patient-view", losses(2)) == []
    recorded = rows(app, issued_card_table)
    assert recorded and {r.disposition for r in recorded} == {"silent"}
    assert call(app, "order-select", losses(2), drafts=(progesterone_order(rid="p1"),))  # other hooks still show


def test_without_silent_settings_the_same_cards_are_shown(make_app):
    app = make_app()
    assert "E8.6a" in {c["source"]["topic"]["code"] for c in call(app, "order-select", losses(2), drafts=(progesterone_order(rid="p1"),))}


@pytest.mark.parametrize("env,message", [
    ({"RPL_SILENT_RECOMMENDATIONS": "E8.6a,X99"}, "X99"),
    ({"RPL_SILENT_HOOKS": "order-dispatch"}, "order-dispatch"),
    ({"RPL_NO_REPEAT_AFTER_OVERRIDE_DAYS": "30"}, "RPL_PATIENT_HMAC_SECRET"),
    ({"RPL_NO_REPEAT_AFTER_OVERRIDE_DAYS": "30", "RPL_PATIENT_HMAC_SECRET": "short"}, "32 characters"),
    ({"RPL_ADMIN_USER": "committee"}, "RPL_ADMIN_PASSWORD"),
    ({"RPL_ADMIN_TOKEN": "short"}, "24 characters"),
])
def test_bad_governance_settings_stop_the_start(monkeypatch, env, message):
    monkeypatch.setenv("RPL_AUTH_ENABLED", "false")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


# -- retention ---------------------------------------------------------------------------------
def test_retention_purges_rows_older_than_n_days_and_keeps_newer(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    now = datetime(2026, 11, 23, tzinfo=timezone.utc)
    card = dict(service_id="rpl-patient-view", hook="patient-view", topic="C", carried_ids=("C", "E1"),
                indicator="info", disposition="shown")
    store.record_issued([IssuedCard(card_uuid="old", **card)], at=now - timedelta(days=91))
    store.record_issued([IssuedCard(card_uuid="new", **card)], at=now - timedelta(days=89))
    with store.engine.begin() as c:
        for uuid, age in (("old", 91), ("new", 89)):
            c.execute(feedback_table.insert(), {"received_at": now - timedelta(days=age), "service_id": "s",
                                                "card_uuid": uuid, "outcome": "accepted", "outcome_timestamp": now,
                                                "item_json": "{}", "dedupe_key": uuid})
    assert store.purge(90, now=now) == {"issued_card": 1, "issued_card_recommendation": 2, "feedback": 1}
    with store.engine.connect() as c:
        assert [r.card_uuid for r in c.execute(sa.select(issued_card_table))] == ["new"]
        assert [r.card_uuid for r in c.execute(sa.select(feedback_table))] == ["new"]
        assert c.execute(sa.select(sa.func.count()).select_from(issued_card_recommendation_table)).scalar_one() == 2
    store.close()


def test_the_retention_setting_purges_at_start(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    card = IssuedCard(card_uuid="ancient", service_id="s", hook="patient-view", topic="C", carried_ids=("C",),
                      indicator="info", disposition="shown")
    store.record_issued([card], at=datetime.now(timezone.utc) - timedelta(days=400))
    store.close()
    app = new_app(tmp_path, retention_days=365)
    try:
        assert rows(app, issued_card_table) == []
    finally:
        app.extensions["rpl"].close()


# -- no repeat after an override --------------------------------------------------------------
NO_REPEAT = dict(no_repeat_after_override_days=30, patient_hmac_secret=SECRET)


def progesterone_card(app, loss_count, pid=PID):
    history = {**losses(loss_count, pid=pid), "id": f"history-{pid}"}  # the same record each call: the same id
    cards = call(app, "order-select", history, pid=pid, drafts=(progesterone_order(rid="p1", pid=pid),))
    return next((c for c in cards if c["source"]["topic"]["code"] == "E8.6a"), None)


def test_an_overridden_card_is_not_shown_again_for_the_same_patient_and_facts(make_app):
    app = make_app(**NO_REPEAT)
    card = progesterone_card(app, 2)
    assert card is not None and card["indicator"] == "warning"
    send_feedback(app, "order-select", overridden(card["uuid"]))
    assert progesterone_card(app, 2) is None
    assert [r.disposition for r in rows(app, issued_card_table) if r.topic == "E8.6a"] == ["shown", "suppressed"]


def test_after_an_override_another_patient_still_gets_the_card(make_app):
    app = make_app(**NO_REPEAT)
    send_feedback(app, "order-select", overridden(progesterone_card(app, 2)["uuid"]))
    assert progesterone_card(app, 2, pid="other-patient") is not None


def test_after_an_override_changed_facts_show_the_card_again(make_app):
    app = make_app(**NO_REPEAT)
    send_feedback(app, "order-select", overridden(progesterone_card(app, 2)["uuid"]))
    assert progesterone_card(app, 3) is not None  # a new loss recorded since


def test_an_accepted_card_is_shown_again(make_app):
    app = make_app(**NO_REPEAT)
    card = progesterone_card(app, 2)
    send_feedback(app, "order-select", accepted(card["uuid"], card["suggestions"][0]["uuid"]))
    assert progesterone_card(app, 2) is not None


def test_no_repeat_is_off_by_default(make_app):
    app = make_app()
    send_feedback(app, "order-select", overridden(progesterone_card(app, 2)["uuid"]))
    assert progesterone_card(app, 2) is not None


def test_an_override_older_than_n_days_no_longer_holds_the_card_back(make_app):
    app = make_app(**NO_REPEAT)
    send_feedback(app, "order-select", overridden(progesterone_card(app, 2)["uuid"]))
    with app.extensions["rpl"].feedback.engine.begin() as c:
        c.execute(feedback_table.update().values(received_at=datetime.now(timezone.utc) - timedelta(days=31)))
    assert progesterone_card(app, 2) is not None


def test_the_jwt_iss_and_tenant_are_recorded_with_each_card(tmp_path):
    from tests.test_auth import ISS, SERVICE, auth_settings, bearer, close, issuer, token
    from tests.test_auth import new_app as new_auth_app

    app = new_auth_app(auth_settings(tmp_path, [issuer(tenants=["hospital-a"])]))
    try:
        body = hook_request("patient-view", losses(2))
        response = app.test_client().post(SERVICE, json=body, headers=bearer(token(SERVICE, tenant="hospital-a")))
        assert response.status_code == 200 and response.get_json()["cards"]
        recorded = rows(app, issued_card_table)
        assert recorded and {(r.iss, r.tenant) for r in recorded} == {(ISS, "hospital-a")}
    finally:
        close(app)


def test_when_another_worker_stored_the_item_first_the_rest_is_still_stored(tmp_path, monkeypatch):
    """The race between the look-up and the insert: the unique key refuses the copy, the new item goes in."""
    from service.protocol import FeedbackItem

    store = FeedbackStore(f"sqlite:///{tmp_path / 'race.sqlite3'}")
    first = FeedbackItem.model_validate(overridden("card-1"))
    second = FeedbackItem.model_validate(overridden("card-2"))
    assert store.add("rpl-order-select", [first]).stored == 1
    # The other worker's row is there, but this worker's look-up did not see it.
    monkeypatch.setattr(feedback_table.c.dedupe_key, "in_", lambda keys: sa.false())
    one_by_one = []
    real = store._add_one_by_one
    monkeypatch.setattr(store, "_add_one_by_one", lambda *args: one_by_one.append(1) or real(*args))
    result = store.add("rpl-order-select", [first, second])
    assert one_by_one == [1]  # the path of the race was taken
    assert (result.stored, result.duplicates) == (1, 1)
    assert store.count() == 2
    store.close()


def test_an_override_taken_back_by_a_later_accept_does_not_hold_the_card_back(make_app):
    app = make_app(**NO_REPEAT)
    card = progesterone_card(app, 2)
    send_feedback(app, "order-select", overridden(card["uuid"], at="2026-11-23T10:00:00Z"),
                  accepted(card["uuid"], card["suggestions"][0]["uuid"], at="2026-11-23T10:01:00Z"))
    assert progesterone_card(app, 2) is not None
