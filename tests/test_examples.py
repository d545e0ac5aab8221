"""The example requests shipped for curl and `rpl-cds demo` give the cards they promise,
and the production server (`rpl-cds serve`, gunicorn) answers them end to end."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, timedelta

import pytest
import requests

from service import create_app
from service.cli import EXAMPLES, EXAMPLES_WRITTEN_FOR, example
from tests.builders import carried_ids
from tests.conftest import TODAY
from tests.serve import CLI, rpl_cds_serve

# The cards' topics; on patient-view two merged cards (counselling C, work-up D) carry the rows.
EXPECTED = {
    "patient-view": {"C", "D"},
    "order-select": {"E8.2"},
    "order-sign": {"E8.2", "E8.6a"},
}
CARRIED_ON_PATIENT_VIEW = {"C", "D3.2", "D5.1a", "D6", "E1", "E5.6", "E8.5", "S1"}


@pytest.mark.parametrize("hook", EXAMPLES)
def test_example_gives_the_expected_cards(cds, hook):
    assert {c["source"]["topic"]["code"] for c in cds.cards(hook, example(hook))} == EXPECTED[hook]
    if hook == "patient-view":
        assert CARRIED_ON_PATIENT_VIEW <= set(cds.topics(hook, example(hook)))


LATER = TODAY + timedelta(days=500)  # well beyond the counselling window of the examples as written


@pytest.fixture
def app_later(settings):
    app = create_app(settings, today=lambda: LATER)
    yield app
    app.extensions["rpl"].close()


@pytest.mark.parametrize("hook", EXAMPLES)
def test_an_example_moved_to_a_later_day_gives_the_same_cards_then(app_later, hook):
    client = app_later.test_client()

    def topics(body: dict) -> set[str]:
        response = client.post(f"/cds-services/rpl-{hook}", json=body, headers={"Accept-Language": "en"})
        assert response.status_code == 200
        return {rec_id for card in response.get_json()["cards"] for rec_id in carried_ids(card)}

    moved = topics(example(hook, LATER))
    assert {t for t in moved if t in EXPECTED[hook]} == EXPECTED[hook]
    if hook == "patient-view":
        assert CARRIED_ON_PATIENT_VIEW <= moved
        assert not {"C", "E1", "S1"} & topics(example(hook))  # as written, its losses are too long ago then


def test_example_moves_every_date_and_nothing_else():
    written, moved = example("patient-view"), example("patient-view", EXAMPLES_WRITTEN_FOR + timedelta(days=10))
    assert moved["prefetch"]["patient"]["birthDate"] == "1991-03-18" == _plus_days(written["prefetch"]["patient"]["birthDate"], 10)
    assert moved["hookInstance"] == written["hookInstance"] and moved["context"] == written["context"]
    assert example("patient-view", EXAMPLES_WRITTEN_FOR) == written


def _plus_days(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def test_the_example_command_prints_the_request_moved_to_the_day_given():
    result = subprocess.run([str(CLI), "example", "order-sign", "--today", "2027-11-23"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == example("order-sign", date(2027, 11, 23))
    assert '"2027-09-02"' in result.stdout  # the last loss, one year on


@pytest.fixture
def running_service(tmp_path):
    env = {**os.environ, "RPL_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.sqlite3'}",
           "RPL_AUTH_ENABLED": "false"}  # the demo sends no JWT; tests/test_auth.py covers authentication
    with rpl_cds_serve(env, tmp_path) as (url, _stdout, _stderr):
        yield url


def test_serve_and_demo_end_to_end(running_service):
    server = requests.get(f"{running_service}/healthz", timeout=5).headers.get("Server", "")
    assert "gunicorn" in server.lower()  # the production server, not Flask's development server
    result = subprocess.run([str(CLI), "demo", "--url", running_service, "--no-color"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for hook, topics in EXPECTED.items():
        assert f"=== {hook}" in result.stdout
        for topic in topics:
            assert f"] {topic}:" in result.stdout
    assert "-> suggestion:" in result.stdout
