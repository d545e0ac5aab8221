"""The session-start check of the suite's prerequisites (tests/prerequisites.py): on a machine
that cannot install them, one message and skipped tests, or under CI one message and a stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

CONFTEST = "from tests.prerequisites import pytest_collection_modifyitems, pytest_configure  # noqa: F401\n"
TESTS = '''
import pytest

@pytest.fixture
def redis_url():
    return "redis://127.0.0.1:1/0"

@pytest.fixture
def browser():
    return None

def test_needs_redis(redis_url):
    pass

def test_needs_a_browser(browser):
    pass

@pytest.mark.redis
def test_marked_for_redis():
    pass

def test_needs_nothing():
    pass

@pytest.fixture(params=["sqlite", "redis"])
def store(request):
    return request.param

def test_parametrized_over_stores(store):
    pass
'''


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_sample.py").write_text(TESTS)
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "RPL_CDS_TEST_REQUIRE_ALL")}
    environment = {**base, "PATH": str(empty), "PYTHONPATH": str(ROOT), "RPL_CDS_TEST_NO_INSTALL": "1", **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)


def test_missing_prerequisites_give_one_message_and_skips(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Missing test prerequisites") == 1
    assert "Redis server, needed by 3 tests: sudo apt-get install redis-server" in done.stdout
    assert "Chromium, needed by 1 tests: sudo apt-get install chromium" in done.stdout
    assert "2 passed, 4 skipped" in done.stdout  # the sqlite variant runs


def test_under_ci_missing_prerequisites_stop_the_run(tmp_path):
    done = _run(tmp_path, CI="true")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "Missing test prerequisites" in done.stdout + done.stderr
    assert "CI must run every test" in done.stdout + done.stderr
    assert "passed" not in done.stdout


def test_with_the_prerequisites_there_is_no_message(tmp_path):
    for name in ("redis-server", "chromium"):
        tool = tmp_path / "tools" / name
        tool.parent.mkdir(exist_ok=True)
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    done = _run(tmp_path, PATH=str(tmp_path / "tools"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Missing test prerequisites" not in done.stdout
    assert "6 passed" in done.stdout
