"""A real FHIR R4 server for the integration tests: sekmet-fhir, in its own virtual environment.

sekmet-fhir (PyPI) is a FHIR R4 test server (FastAPI + SQLite). Its dependencies
are not ours, so it gets a virtual environment of its own, made once in a cache
folder and reused by later runs (``$RPL_CDS_TEST_CACHE``, else
``$XDG_CACHE_HOME/rpl-cds-test``, else ``~/.cache/rpl-cds-test``).

It is started from a settings.yaml (its config format, ``sekmet serve --config``):
bound to 127.0.0.1 on a free port, ``db_path: ":memory:"`` (nothing on disk),
its workflow simulator off (it would answer orders with results), traffic
logging of inbound calls off, inbound validation "warn" (structure checked,
never refused for a profile detail) and either no authentication or a static
bearer token it requires on every /fhir request. It is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

SEKMET_PACKAGE = "sekmet-fhir==0.1.1"
INSTALL_TIMEOUT = 900  # seconds: a cold install on a fresh CI machine downloads ~40 wheels
START_TIMEOUT = 60


class FhirServerUnavailable(RuntimeError):
    """The FHIR server could not be installed or started (the message says why)."""


def cache_dir() -> Path:
    if os.environ.get("RPL_CDS_TEST_CACHE"):
        return Path(os.environ["RPL_CDS_TEST_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rpl-cds-test"


def sekmet_executable() -> Path:
    """The `sekmet` command of the cached virtual environment, installed on first use."""
    root = cache_dir()
    name = SEKMET_PACKAGE.replace("==", "-") + f"-py{sys.version_info.major}{sys.version_info.minor}"
    venv = root / name
    exe = venv / "bin" / "sekmet"
    ready = venv / ".installed"
    if ready.exists() and exe.exists():
        return exe
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once install only once
        if ready.exists() and exe.exists():
            return exe
        steps = (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", SEKMET_PACKAGE],
        )
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise FhirServerUnavailable(f"installing {SEKMET_PACKAGE} into {venv} failed: {exc}") from None
            if done.returncode != 0:
                raise FhirServerUnavailable(
                    f"installing {SEKMET_PACKAGE} into {venv} failed ({' '.join(step[:4])} ... exit {done.returncode}):\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )
        if not exe.exists():
            raise FhirServerUnavailable(f"{SEKMET_PACKAGE} installed but {exe} is missing")
        ready.write_text(SEKMET_PACKAGE + "\n")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FhirServer:
    base_url: str
    token: str | None
    process: subprocess.Popen
    log: Path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _settings_yaml(port: int, workdir: Path, token: str | None) -> str:
    auth = f"{{types: [bearer], tokens: ['{token}']}}" if token else "{types: [none]}"
    return "\n".join([
        f"base_url: http://127.0.0.1:{port}/fhir",
        "host: 127.0.0.1",
        f"port: {port}",
        'db_path: ":memory:"',
        f"data_dir: {workdir / 'data'}",
        f"own_private_key_path: {workdir / 'keys' / 'sekmet_private.pem'}",
        "simulator: {enabled: false}",
        "log_inbound: false",
        "validation: {inbound: warn}",
        f"server_auth: {auth}",
        "",
    ])


def start(workdir: Path, *, require_token: bool = False, port: int | None = None) -> FhirServer:
    """Start one sekmet-fhir server; raises FhirServerUnavailable with its log when it does not come up."""
    exe = sekmet_executable()
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    token = secrets.token_urlsafe(24) if require_token else None
    config = workdir / "settings.yaml"
    config.write_text(_settings_yaml(port, workdir, token))
    log = workdir / "sekmet.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEKMET_", "VIRTUAL_ENV"))}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(exe), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = FhirServer(f"http://127.0.0.1:{port}/fhir", token, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FhirServerUnavailable(f"sekmet-fhir exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.base_url}/metadata", timeout=(1, 5)).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise FhirServerUnavailable(f"sekmet-fhir did not answer within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running(workdir: Path, *, require_token: bool = False) -> Iterator[FhirServer]:
    server = start(workdir, require_token=require_token)
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fhir_server``: the FHIR server of the integration tests, for a tester
    without the public HAPI server (README, "Try it offline"). Runs until Ctrl-C; the data is
    in memory only."""
    import argparse
    import signal
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m tests.fhir_server", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8090, help="port on 127.0.0.1 (default: 8090; 0: any free port)")
    parser.add_argument("--token", action="store_true", help="require a bearer token (printed) on every request")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rpl-cds-fhir-") as workdir:
        print(f"installing or reusing {SEKMET_PACKAGE} in {cache_dir()} ...", file=sys.stderr, flush=True)
        try:
            server = start(Path(workdir), require_token=args.token, port=args.port or None)
        except FhirServerUnavailable as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"FHIR R4 server at {server.base_url}" + (f" (bearer token: {server.token})" if server.token else "")
              + "; Ctrl-C stops it", flush=True)
        for stop_signal in (signal.SIGINT, signal.SIGTERM):  # SIGINT too where a shell ignored it (`&`)
            signal.signal(stop_signal, lambda *_: server.process.terminate())
        try:
            server.process.wait()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
