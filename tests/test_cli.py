"""The rpl-cds command as a tester meets it: --version, --help that shows defaults and the
RPL_* settings, starts without importing the service, tester-key outside the working tree,
and `call` and `demo` that say why a call failed (401, unknown patient)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jwt
import pytest
import responses

from service.cli import DEFAULT_SERVICE_URL, build_parser, main
from service.sandbox_client import JwtSigner, new_tester_key
from service.terminal import print_cards

ROOT = Path(__file__).parent.parent
FHIR = "http://fhir.test/fhir"
DISCOVERY = {"services": [{"id": "rpl-patient-view", "hook": "patient-view", "prefetch": {}}]}
SUBCOMMANDS = tuple(next(a for a in build_parser()._actions if a.dest == "command").choices)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"rpl-cds {version('rpl-cds')}\n"


def test_the_subcommands_are_all_checked():
    assert {"serve", "demo", "load-demo", "call", "tester-key"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_shows_its_defaults(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False) and action.dest != "help":
            assert f"(default: {action.default})" in text, action.dest
    assert "RPL_* environment variables" in text and "Configuration" in text  # where the settings are


def test_top_level_help_points_to_the_settings(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "RPL_* environment variables" in text and "Configuration" in text
    assert "--version" in text


def test_help_does_not_import_the_service():
    """--help answers without loading Flask, the FHIR models or the rules (0.7 s on a 2-core VM);
    scripts/cli_startup.py measures the time itself."""
    probe = ("import sys; from service.cli import main\n"
             "try:\n    main(['call', '--help'])\nexcept SystemExit:\n    pass\n"
             "heavy = ['flask', 'fhir', 'pydantic', 'requests', 'sqlalchemy', 'jwt', 'cards', 'fhir_mappings', "
             "'service.api', 'service.demo_data']\n"
             "print([m for m in sys.modules if m.split('.')[0] in heavy or m in heavy], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"


def test_the_readme_host_is_the_default_of_call_and_demo():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"rpl-cds serve --host 127.0.0.1 --port 8080" in readme and DEFAULT_SERVICE_URL == "http://127.0.0.1:8080"
    assert f"RPL_PUBLIC_BASE_URL={DEFAULT_SERVICE_URL}" in readme  # the tester flow with authentication on


# -- tester-key ---------------------------------------------------------------------------
def test_tester_key_goes_outside_the_working_tree_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    assert main(["tester-key"]) == 0
    key = tmp_path / "config" / "rpl-cds" / "tester-key.pem"
    assert key.is_file() and key.stat().st_mode & 0o077 == 0
    assert key.parent.stat().st_mode & 0o077 == 0
    assert list(tmp_path.glob("*.pem")) == []
    err = capsys.readouterr().err
    assert f"wrote a new private key to {key}" in err and f"--jwt-key {key}" in err
    assert main(["tester-key"]) == 0
    assert f"using the private key in {key}" in capsys.readouterr().err


def test_gitignore_covers_private_keys():
    assert "*.pem" in (ROOT / ".gitignore").read_text().splitlines()
    done = subprocess.run(["git", "check-ignore", "-q", "rpl-cds-tester-key.pem"], cwd=ROOT, timeout=30)
    assert done.returncode == 0


# -- call: why it failed --------------------------------------------------------------------
def _key(tmp_path) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(new_tester_key())
    return path


@responses.activate
def test_call_without_a_jwt_says_none_was_sent(capsys):
    responses.get(f"{DEFAULT_SERVICE_URL}/cds-services", status=401)
    assert main(["call", "patient-view", "--fhir-server", FHIR, "--patient", "p-1"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "none was sent" in err and "--jwt-key" in err and "rpl-cds tester-key" in err


@responses.activate
def test_call_with_a_refused_jwt_names_the_aud_and_the_public_base_url(tmp_path, capsys):
    service = "http://localhost:8080"
    responses.get(f"{service}/cds-services", json=DISCOVERY)
    responses.get(f"{FHIR}/Patient/p-1", json={"resourceType": "Patient", "id": "p-1"})
    responses.post(f"{service}/cds-services/rpl-patient-view", status=401,
                   json={"resourceType": "OperationOutcome", "issue": []})
    key = _key(tmp_path)
    status = main(["call", "patient-view", "--fhir-server", FHIR, "--patient", "p-1", "--service", service,
                   "--jwt-key", str(key), "--no-prefetch", "--no-color"])
    assert status == 1
    err = capsys.readouterr().err
    assert f"aud='{service}/cds-services/rpl-patient-view'" in err
    assert f"RPL_PUBLIC_BASE_URL={service}" in err
    assert f"kid='{JwtSigner.from_file(key).kid}'" in err and "iss='rpl-cds-tester'" in err
    sent = responses.calls[-1].request.headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(sent, options={"verify_signature": False})["aud"] == f"{service}/cds-services/rpl-patient-view"


@responses.activate
def test_call_for_a_patient_the_fhir_server_does_not_know(capsys):
    responses.get(f"{DEFAULT_SERVICE_URL}/cds-services", json=DISCOVERY)
    responses.get(f"{FHIR}/Patient/rpl-demo-typo", status=404,
                  json={"resourceType": "OperationOutcome", "issue": []})
    assert main(["call", "patient-view", "--fhir-server", FHIR, "--patient", "rpl-demo-typo"]) == 1
    captured = capsys.readouterr()
    assert "patient not found on the FHIR server" in captured.err and "rpl-cds load-demo" in captured.err
    assert "(no cards)" not in captured.out
    assert not any(c.request.method == "POST" for c in responses.calls)  # the service is not called


@responses.activate
def test_call_for_a_known_patient_without_cards_still_says_no_cards(capsys):
    responses.get(f"{DEFAULT_SERVICE_URL}/cds-services", json=DISCOVERY)
    responses.get(f"{FHIR}/Patient/p-1", json={"resourceType": "Patient", "id": "p-1"})
    responses.post(f"{DEFAULT_SERVICE_URL}/cds-services/rpl-patient-view", json={"cards": []})
    assert main(["call", "patient-view", "--fhir-server", FHIR, "--patient", "p-1", "--no-prefetch"]) == 0
    assert "(no cards)" in capsys.readouterr().out


# -- demo -----------------------------------------------------------------------------------
@responses.activate
def test_demo_signs_with_the_jwt_key_for_each_url(tmp_path, capsys):
    for hook in ("patient-view", "order-select", "order-sign"):
        responses.post(f"{DEFAULT_SERVICE_URL}/cds-services/rpl-{hook}", json={"cards": []})
    key = _key(tmp_path)
    assert main(["demo", "--jwt-key", str(key), "--no-color"]) == 0
    public = jwt.PyJWK(JwtSigner.from_file(key).public_jwk)
    for call in responses.calls:
        token = call.request.headers["Authorization"].removeprefix("Bearer ")
        assert jwt.decode(token, public, algorithms=["ES384"], audience=call.request.url)["iss"] == "rpl-cds-tester"


@responses.activate
def test_demo_explains_a_401(capsys):
    responses.post(f"{DEFAULT_SERVICE_URL}/cds-services/rpl-patient-view", status=401)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "none was sent" in err and "--jwt-key" in err


def test_load_demo_names_the_demo_patients_for_an_unknown_one(capsys, tmp_path):
    assert main(["load-demo", "--output", str(tmp_path), "--patient", "rpl-demo-nope"]) == 2
    err = capsys.readouterr().err
    assert "no demo patient rpl-demo-nope" in err and "rpl-demo-unexplained" in err


# -- terminal -------------------------------------------------------------------------------
def test_long_ids_are_not_broken_at_hyphens():
    long_id = "rpl-demo-subclinical-hypothyroid-with-a-very-long-identifier"
    detail = "Based on " + "x" * 70 + f" Observation/{long_id} and urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0."
    lines: list[str] = []
    print_cards({"cards": [{"summary": "s", "indicator": "info", "detail": detail,
                            "source": {"topic": {"code": "E5.1b"}}}]}, color=False, out=lines.append)
    text = "\n".join(lines)
    assert f"Observation/{long_id}" in text
    assert "urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0." in text


@responses.activate
def test_call_goes_on_when_only_the_service_can_reach_the_fhir_server(capsys):
    """E.g. `--fhir-server http://hapi:8080/fhir`, a name only the service's network knows."""
    import requests

    responses.get(f"{DEFAULT_SERVICE_URL}/cds-services", json=DISCOVERY)
    responses.get(f"{FHIR}/Patient/p-1", body=requests.ConnectionError("no such host"))
    responses.post(f"{DEFAULT_SERVICE_URL}/cds-services/rpl-patient-view", json={"cards": []})
    assert main(["call", "patient-view", "--fhir-server", FHIR, "--patient", "p-1", "--no-prefetch"]) == 0
    assert "cannot reach the FHIR server to check the patient" in capsys.readouterr().err
