"""Feedback in PostgreSQL: RPL_DATABASE_URL switches the store, and nothing is lost on restart.

Runs a real, throw-away PostgreSQL server (Debian's, installed with apt-get when
missing, as CI runs as root on a fresh machine), like the Redis tests do.
"""

from __future__ import annotations

import pytest

from service import create_app
from tests.conftest import make_settings
from tests.servers import postgres_server
from tests.test_feedback import ACCEPTED, OVERRIDDEN


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def test_feedback_is_stored_in_postgresql_and_survives_a_restart(tmp_path, postgres_url):
    settings = make_settings(tmp_path, database_url=postgres_url)
    app = create_app(settings)
    assert app.test_client().get("/readyz").get_json() == {"status": "ready", "database": "ok"}
    response = app.test_client().post("/cds-services/rpl-order-sign/feedback", json={"feedback": [ACCEPTED, OVERRIDDEN]})
    assert response.status_code == 200
    app.extensions["rpl"].close()
    again = create_app(settings)
    assert again.extensions["rpl"].feedback.count() == 2
    again.extensions["rpl"].close()


def test_postgresql_stores_replayed_feedback_once_and_records_every_card(tmp_path, postgres_url):
    import sqlalchemy as sa

    from service.feedback import issued_card_table
    from tests.builders import hook_request, losses, progesterone_order

    app = create_app(make_settings(tmp_path, database_url=postgres_url))
    try:
        client = app.test_client()
        body = hook_request("order-select", losses(2), drafts=(progesterone_order(rid="p1"),))
        cards = client.post("/cds-services/rpl-order-select", json=body).get_json()["cards"]
        with app.extensions["rpl"].feedback.engine.connect() as c:
            recorded = set(c.execute(sa.select(issued_card_table.c.card_uuid)).scalars())
        assert cards and {card["uuid"] for card in cards} <= recorded
        item = {"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"}
        before = app.extensions["rpl"].feedback.count()
        assert client.post("/cds-services/rpl-order-select/feedback", json={"feedback": [item]}).get_json()["stored"] == 1
        assert client.post("/cds-services/rpl-order-select/feedback", json={"feedback": [item, item]}).get_json() == {
            "stored": 0, "duplicates": 2}
        assert app.extensions["rpl"].feedback.count() == before + 1
    finally:
        app.extensions["rpl"].close()


def test_postgresql_holds_back_a_card_overridden_for_the_same_patient(tmp_path, postgres_url):
    from tests.test_governance import NO_REPEAT, overridden, progesterone_card, send_feedback

    app = create_app(make_settings(tmp_path, database_url=postgres_url, **NO_REPEAT))
    try:
        card = progesterone_card(app, 2, pid="pg-patient")
        send_feedback(app, "order-select", overridden(card["uuid"]))
        assert progesterone_card(app, 2, pid="pg-patient") is None
        assert progesterone_card(app, 3, pid="pg-patient") is not None  # the facts changed
    finally:
        app.extensions["rpl"].close()
