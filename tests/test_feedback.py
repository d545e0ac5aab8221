"""Feedback: validated, stored durably, kept across restarts."""

from __future__ import annotations

import pytest

from service import create_app

ACCEPTED = {"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "accepted",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
            "outcomeTimestamp": "2021-12-11T10:05:31Z"}
OVERRIDDEN = {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
              "overrideReason": {"reason": {"code": "other-indication", "system": "http://rpl-cds.org/fhir/CodeSystem/override-reason"},
                                 "userComment": "ITP"},
              "outcomeTimestamp": "2020-12-11T00:00:00Z"}


def test_feedback_is_stored_and_survives_a_restart(settings):
    app = create_app(settings)
    r = app.test_client().post("/cds-services/rpl-order-sign/feedback", json={"feedback": [ACCEPTED, OVERRIDDEN]})
    assert r.status_code == 200
    app.extensions["rpl"].close()
    again = create_app(settings)  # a new process on the same database
    assert again.extensions["rpl"].feedback.count() == 2
    again.extensions["rpl"].close()


def test_feedback_keeps_the_item_whole(app, client):
    client.post("/cds-services/rpl-order-sign/feedback", json={"feedback": [OVERRIDDEN]})
    import sqlalchemy as sa

    from service.feedback import feedback_table

    with app.extensions["rpl"].feedback.engine.connect() as c:
        row = c.execute(sa.select(feedback_table)).one()
    assert row.override_code == "other-indication" and row.user_comment == "ITP"
    assert '"userComment":"ITP"' in row.item_json


@pytest.mark.parametrize(
    "body,text",
    [
        ({}, "feedback: Field required"),
        ({"feedback": []}, "feedback"),
        ({"feedback": [{**ACCEPTED, "acceptedSuggestions": None}]}, "acceptedSuggestions is required"),
        ({"feedback": [{**ACCEPTED, "outcome": "ignored"}]}, "outcome"),
        ({"feedback": [{**ACCEPTED, "outcomeTimestamp": "yesterday"}]}, "RFC 3339"),
        ({"feedback": [{k: v for k, v in ACCEPTED.items() if k != "card"}]}, "card: Field required"),
    ],
)
def test_invalid_feedback_is_400_and_nothing_is_stored(app, client, body, text):
    r = client.post("/cds-services/rpl-order-sign/feedback", json=body)
    assert r.status_code == 400
    assert text in " ".join(i["diagnostics"] for i in r.get_json()["issue"])
    assert app.extensions["rpl"].feedback.count() == 0


def test_feedback_for_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json={"feedback": [ACCEPTED]}).status_code == 404


def test_unreachable_database_does_not_stop_the_service(tmp_path):
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, database_url="sqlite:////nonexistent/dir/feedback.db"))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    r = client.post("/cds-services/rpl-order-sign/feedback", json={"feedback": [ACCEPTED]})
    assert r.status_code == 503 and r.get_json()["resourceType"] == "OperationOutcome"
    assert r.headers["Retry-After"] == "30"  # when to try again, in seconds (RFC 9110)
    app.extensions["rpl"].close()
