"""Deployment files: Dockerfile and docker-compose.yml use only real settings and
sane container practice (no Docker engine here: the files are read, not run),
and the production server writes logs a platform can ship and answers /readyz."""

from __future__ import annotations

from datetime import date

import argparse
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests
import yaml
from tests.serve import rpl_cds_serve

from service.cli import build_parser, example
from service.config import ConfigError, Settings, load_settings

from .fhir_server import free_port

ROOT = Path(__file__).parent.parent
CLI = Path(sys.executable).parent / "rpl-cds"
FIELDS = {f"RPL_{name.upper()}" for name in Settings.model_fields}
_DEFAULT = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default}, taking the default (what `docker compose up` uses with no .env)."""
    return _DEFAULT.sub(lambda m: m.group(2) or "", value)


# -- compose ---------------------------------------------------------------------------
def test_compose_sets_only_real_settings(compose):
    seen = set()
    for name, service in compose["services"].items():
        for key in _environment(service):
            if key.startswith("RPL_"):
                assert key in FIELDS, f"{name}: {key} is not a setting of service.config.Settings"
                seen.add(key)
    assert {"RPL_DATABASE_URL", "RPL_FHIR_SERVER_ALLOWLIST"} <= seen
    if "RPL_AUTH_ENABLED" in FIELDS:
        assert "RPL_AUTH_ENABLED" in seen


def test_compose_settings_are_valid(compose, tmp_path, monkeypatch):
    """The service's environment, with compose defaults and config files in place, passes Settings' checks."""
    service = compose["services"]["rpl-cds"]
    files = {}
    for mount in service.get("configs") or []:
        content = compose["configs"][mount["source"]]["content"]
        local = tmp_path / Path(mount["target"]).name
        local.write_text(content)
        files[mount["target"]] = str(local)
    for key in list(os.environ):
        if key.startswith("RPL_"):
            monkeypatch.delenv(key)
    for key, value in _environment(service).items():
        monkeypatch.setenv(key, files.get(_interpolate(value), _interpolate(value)))
    try:
        settings = load_settings()
    except ConfigError as exc:
        pytest.fail(f"docker-compose.yml gives an invalid configuration:\n{exc}")
    assert settings.fhir_server_allowlist == ("http://hapi:8080/fhir",)
    assert settings.database_url.startswith("postgresql+psycopg://rpl:")
    assert settings.database_url.endswith("@postgres:5432/rpl")
    if "auth_enabled" in Settings.model_fields:
        assert settings.auth_enabled is True  # secure by default; false only by the tester's choice


def test_compose_service_waits_for_healthy_postgres_and_hapi(compose):
    services = compose["services"]
    app = services["rpl-cds"]
    needed = {"postgres", "hapi"}
    if "RPL_REPLAY_CACHE_URL" in FIELDS:  # several gunicorn workers share the JWT replay memory
        needed.add("redis")
        assert _environment(app)["RPL_REPLAY_CACHE_URL"] == "redis://redis:6379/0"
    assert app["depends_on"] == {name: {"condition": "service_healthy"} for name in needed}
    for name in ("rpl-cds", *needed):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert app["ports"] == ["8080:8080"]


def test_compose_hapi_is_r4_and_its_healthcheck_needs_no_shell(compose):
    hapi = compose["services"]["hapi"]
    assert hapi["image"].startswith("hapiproject/hapi:")
    assert _environment(hapi)["hapi.fhir.fhir_version"] == "R4"
    test = hapi["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "java"  # the image is distroless: no CMD-SHELL, no curl
    target = {m["target"]: m["source"] for m in hapi["configs"]}[test[2]]
    source = compose["configs"][target]["content"]
    assert "/fhir/metadata" in source and "$" not in source  # compose would interpolate a $
    assert "public class HealthCheck" in source and test[2].endswith("HealthCheck.java")


def test_compose_postgres_matches_the_database_url(compose):
    postgres = _environment(compose["services"]["postgres"])
    url = _interpolate(_environment(compose["services"]["rpl-cds"])["RPL_DATABASE_URL"])
    user, password, db = postgres["POSTGRES_USER"], _interpolate(postgres["POSTGRES_PASSWORD"]), postgres["POSTGRES_DB"]
    assert url == f"postgresql+psycopg://{user}:{password}@postgres:5432/{db}"


# -- Dockerfile ------------------------------------------------------------------------
def test_dockerfile_sets_only_real_settings():
    for instruction, args in _dockerfile():
        if instruction == "ENV":
            for key in re.findall(r"\b(RPL_[A-Z0-9_]+)=", args):
                assert key in FIELDS, key


def test_dockerfile_slim_python_non_root_healthcheck():
    steps = _dockerfile()
    froms = [args for instruction, args in steps if instruction == "FROM"]
    assert re.match(r"python:3\.1[12]-slim\b", froms[-1])
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    installs = " ".join(args for instruction, args in steps if instruction == "RUN")
    assert re.search(r"pip install [\"']?\.\[postgres\][\"']?", installs)
    healthchecks = [args for instruction, args in steps if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert '"python"' in healthchecks[0] and "curl" not in healthchecks[0] and "wget" not in healthchecks[0]
    assert any(instruction == "EXPOSE" and args == "8080" for instruction, args in steps)


def test_dockerfile_runs_the_readme_server_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme_serve = re.search(r"rpl-cds serve --host \S+ --port (\d+)", readme)
    assert readme_serve, "the README's server command"
    cmd = [args for instruction, args in _dockerfile() if instruction == "CMD"][-1]
    argv = json.loads(cmd)  # exec form: gunicorn gets the signals, no shell in between
    assert argv == ["rpl-cds", "serve", "--host", "0.0.0.0", "--port", readme_serve.group(1)]


def test_dockerignore_keeps_the_context_small():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "tests"} <= ignored


def test_the_package_ships_the_demo_patients():
    """What `pip install .` (and so the image) gets: the demo bundles are package data."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    files = sorted((ROOT / "service" / "demo").glob("*.json"))
    assert files
    for path in files:
        assert any(fnmatch.fnmatch(f"demo/{path.name}", pattern) for pattern in patterns), path.name
    assert any(req.lower().startswith("pyyaml") for req in config["project"]["optional-dependencies"]["test"])


# -- logs and readiness under gunicorn --------------------------------------------------
@pytest.fixture
def served(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env["RPL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    env["RPL_AUTH_ENABLED"] = "false"
    with rpl_cds_serve(env, tmp_path) as (url, stdout, _stderr):
        yield url, stdout


def test_json_audit_lines_on_stdout_and_readiness_under_gunicorn(served):
    url, stdout = served
    assert requests.get(f"{url}/readyz", timeout=5).json() == {"status": "ready", "database": "ok"}
    body = example("patient-view", date.today())  # its dates moved to today, as `rpl-cds demo` sends it
    response = requests.post(f"{url}/cds-services/rpl-patient-view", json=body, timeout=30)
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    audit = []
    while not audit and time.monotonic() < deadline:
        lines = [line for line in stdout.read_text().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]  # every stdout line is one JSON object
        audit = [r for r in records if r.get("logger") == "rpl_cds.audit" and r.get("hookInstance") == body["hookInstance"]]
        time.sleep(0.1)
    assert audit, stdout.read_text()
    record = audit[0]
    assert record["service"] == "rpl-patient-view" and record["status"] == 200
    assert {"C", "D"} <= set(record["cards"])  # the counselling and the work-up card
    assert {"D3.2", "D5.1a"} <= {row for rows in record["rows"] for row in rows}
    assert {"time", "level", "message"} <= set(record)


def _readme_commands(readme: str, subcommands) -> list[list[str]]:
    """Every `rpl-cds <subcommand> ...` in the README's shell blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;|\|", line):  # a pipe ends a command too
                argv = shlex.split(part, comments=True)
                for i, word in enumerate(argv[:-1]):
                    if (word == "rpl-cds" or word.endswith("/rpl-cds")) and argv[i + 1] in subcommands:
                        commands.append(argv[i + 1:])
                        break
    return commands


def test_readme_try_and_deploy_sections_use_real_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("## Try it") < readme.index("## Deploy") < readme.index("## Layout")
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    commands = _readme_commands(readme, subcommands)
    used = {argv[0] for argv in commands}
    assert {"serve", "load-demo", "call"} <= used
    for argv in commands:
        parser.parse_args(argv)  # exits (fails the test) on an unknown command or option
    assert "docker compose up" in readme and "http://hapi.fhir.org/baseR4" in readme


@pytest.mark.skipif("RPL_REPLAY_CACHE_URL" not in FIELDS, reason="no JWT replay memory in this version")
def test_serve_warns_when_workers_do_not_share_the_replay_memory(tmp_path):
    """Only with an in-memory database: a database file or server is the shared memory (issue #13)."""
    from service.sandbox_client import JwtSigner, new_tester_key

    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env["RPL_DATABASE_URL"] = "sqlite://"
    env["RPL_AUTH_ISSUERS"] = json.dumps([JwtSigner(new_tester_key()).issuer()])
    err = tmp_path / "stderr.log"
    with err.open("wb") as out:
        process = subprocess.Popen([str(CLI), "serve", "--port", str(free_port()), "--workers", "2"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "Booting worker" not in err.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert "WARNING: 2 workers keep separate JWT replay memories with an in-memory database" in err.read_text()
