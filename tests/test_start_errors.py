"""Start-up: a feedback database URL the service cannot use stops the start with one
message that names RPL_DATABASE_URL and the fix, before any gunicorn worker runs; and
the default SQLite file goes to the data folder, not the current directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service import create_app
from service.config import ConfigError, data_dir, default_database_url, load_settings
from tests.fhir_server import free_port

ROOT = Path(__file__).parent.parent
DEV = {"auth_enabled": False}


def test_an_unsupported_database_url_stops_the_start_naming_the_variable():
    with pytest.raises(ConfigError) as stop:
        load_settings(database_url="mysql://rpl:secret@db/rpl", **DEV)
    message = str(stop.value)
    assert "RPL_DATABASE_URL" in message and "mysql:// is not supported" in message
    assert "postgresql+psycopg://" in message and "sqlite:///" in message
    assert "secret" not in message


def test_a_database_url_that_is_no_url_is_refused():
    with pytest.raises(ConfigError, match=r"RPL_DATABASE_URL: 'feedback.db' is not a URL"):
        load_settings(database_url="feedback.db", **DEV)


def test_a_postgresql_url_without_the_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(ConfigError) as stop:
        load_settings(database_url="postgresql+psycopg://rpl@db/rpl", **DEV)
    assert "RPL_DATABASE_URL" in str(stop.value) and "pip install '.[postgres]'" in str(stop.value)


def test_postgresql_urls_use_the_psycopg_driver():
    for url in ("postgresql://rpl@db/rpl", "postgres://rpl@db/rpl", "postgresql+psycopg://rpl@db/rpl"):
        assert load_settings(database_url=url, **DEV).database_url == "postgresql+psycopg://rpl@db/rpl"
    with pytest.raises(ConfigError, match="postgresql\\+psycopg2:// is not supported"):
        load_settings(database_url="postgresql+psycopg2://rpl@db/rpl", **DEV)


def test_sqlite_urls_are_kept():
    for url in ("sqlite://", "sqlite:///feedback.sqlite3", "sqlite:////var/lib/rpl/feedback.sqlite3"):
        assert load_settings(database_url=url, **DEV).database_url == url


def test_serve_without_the_driver_stops_with_one_message_and_no_traceback(tmp_path):
    """rpl-cds serve as an operator runs it, in a Python where psycopg cannot be imported."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import importlib.abc, sys\n"
        "class _NoPsycopg(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'psycopg' or name.startswith('psycopg.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'psycopg'\")\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NoPsycopg())\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "RPL_AUTH_ENABLED": "false",
           "RPL_DATABASE_URL": "postgresql+psycopg://rpl@127.0.0.1:1/rpl"}
    port = str(free_port())  # never bound when the check works
    done = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--port", port], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "RPL_DATABASE_URL" in done.stderr and "'.[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr


def test_the_default_feedback_file_is_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data" / "rpl-cds"
    settings = load_settings(**DEV)
    assert settings.database_url == default_database_url() == f"sqlite:///{tmp_path / 'data' / 'rpl-cds' / 'feedback.sqlite3'}"
    app = create_app(settings)
    try:
        assert app.test_client().get("/readyz").status_code == 200
        assert (tmp_path / "data" / "rpl-cds" / "feedback.sqlite3").is_file()
    finally:
        app.extensions["rpl"].close()


def test_without_xdg_data_home_the_data_folder_is_under_the_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_dir() == tmp_path / ".local" / "share" / "rpl-cds"
