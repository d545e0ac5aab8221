"""The example requests shipped for curl and `rpl-cds demo` give the cards they promise,
and the production server (`rpl-cds serve`, gunicorn) answers them end to end."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from service.cli import EXAMPLES, example
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
