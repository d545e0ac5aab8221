"""The README stays true: its commands are what CI runs, and every setting is documented."""

from __future__ import annotations

from pathlib import Path

from service.config import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in README
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == TEST_COMMAND


def test_every_setting_is_in_the_readme_table():
    for name in Settings.model_fields:
        assert f"| `RPL_{name.upper()}` |" in README, name
