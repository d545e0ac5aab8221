"""Start `rpl-cds serve` (gunicorn, as in production) in a subprocess for a test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.fhir_server import free_port

CLI = Path(sys.executable).parent / "rpl-cds"


def wait_until_healthy(url: str, process: subprocess.Popen, stdout: Path, stderr: Path, timeout: float) -> None:
    """Returns once /healthz answers 200; fails with the server's logs if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # a timeout: the worker is still loading the app
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("rpl-cds serve did not start:\n" + stdout.read_text() + stderr.read_text())
        time.sleep(0.1)


@contextmanager
def rpl_cds_serve(
    env: dict[str, str], log_dir: Path, workers: int = 1, port: int | None = None
) -> Iterator[tuple[str, Path, Path]]:
    """Yields (base URL, stdout log, stderr log) once /healthz answers; stops the server after."""
    port = port or free_port()
    stdout, stderr = log_dir / "serve-stdout.log", log_dir / "serve-stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, stdout, stderr, timeout=30)
        yield url, stdout, stderr
    finally:
        process.terminate()
        process.wait(timeout=15)
