"""The example requests shipped for curl and `rpl-cds demo` give the cards they promise,
and the production server (`rpl-cds serve`, gunicorn) answers them end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from service.cli import EXAMPLES, example

EXPECTED = {
    "patient-view": {"C", "D3.2", "D5.1a", "D6", "E1", "E5.6", "E8.5", "S1"},
    "order-select": {"E8.2"},
    "order-sign": {"E8.2", "E8.6a"},
}


@pytest.mark.parametrize("hook", EXAMPLES)
def test_example_gives_the_expected_cards(cds, hook):
    assert set(cds.topics(hook, example(hook))) == EXPECTED[hook]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_service(tmp_path):
    port = _free_port()
    env = {**os.environ, "RPL_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.sqlite3'}",
           "RPL_AUTH_ENABLED": "false"}  # the demo sends no JWT; tests/test_auth.py covers authentication
    cli = Path(sys.executable).parent / "rpl-cds"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError("service did not start: " + log.read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_and_demo_end_to_end(running_service):
    server = requests.get(f"{running_service}/healthz", timeout=5).headers.get("Server", "")
    assert "gunicorn" in server.lower()  # the production server, not Flask's development server
    cli = Path(sys.executable).parent / "rpl-cds"
    result = subprocess.run([str(cli), "demo", "--url", running_service, "--no-color"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for hook, topics in EXPECTED.items():
        assert f"=== {hook}" in result.stdout
        for topic in topics:
            assert f"] {topic}:" in result.stdout
    assert "-> suggestion:" in result.stdout
