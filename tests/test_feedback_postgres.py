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
