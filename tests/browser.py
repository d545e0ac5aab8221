"""A real browser for tests: Debian's Chromium, headless, driven by Playwright for Python.

Shared by every test that needs a browser (CORS and JWTs from a page, as the CDS Hooks
sandbox sends them; the feedback dashboard). Playwright's own browser downloads are never
used: the system Chromium is launched through ``executable_path``. When Chromium is missing
it is installed with apt-get (CI runs as root on a fresh machine), like PostgreSQL for the
feedback tests; when that is impossible the test fails and says why.

Use: the ``browser`` fixture (tests/conftest.py imports it, once for the session: a test module
must not import it again, or it gets a second Playwright that fails), then ``page = browser.new_page()``;
``from tests.browser import serve_page, serve_wsgi``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fhir_server import free_port

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Headless and quiet: no sandbox (tests run as root in CI), no GPU, nothing fetched from Google.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def system_chromium() -> str:
    """The path of Debian's Chromium; installs the package 'chromium' when it is missing."""
    def find() -> str | None:
        for path in CHROMIUM_CANDIDATES:
            if Path(path).exists():
                return path
        return shutil.which("chromium")

    found = find()
    problem = "apt-get is not available or this is not root"
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True,
                              text=True, timeout=1200, check=False)
        problem = (done.stderr or done.stdout)[-2000:]
        found = find()
    if found is None:
        pytest.fail("the browser tests need Debian's Chromium (apt-get install chromium), "
                    f"and it could not be installed:\n{problem}")
    return found


@pytest.fixture(scope="session")
def browser():
    """A headless system Chromium for the whole test session."""
    executable = system_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright for Python: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def serve_page(html: str) -> Iterator[str]:
    """Serve one HTML page at / on a free port (an origin of its own); yields its URL."""
    body = html.encode("utf-8")

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serve_wsgi(app) -> Iterator[str]:
    """Serve a WSGI app (e.g. create_app(...)) on a free port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
