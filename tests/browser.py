"""A real headless Chromium for tests: Debian's ``chromium``, driven by Playwright for Python.

Debian's browser is installed with apt-get when missing (CI runs as root on a
fresh machine), as tests/test_feedback_postgres.py does for PostgreSQL;
Playwright's own browser downloads are never used. Also: an app served on a
free port in a thread, and a screenshot when a browser test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent.parent / "test-screenshots"


def _chromium() -> str:
    if not Path(CHROMIUM).exists() and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=1200,
                       check=False)
    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Debian's chromium at /usr/bin/chromium, and it could not be installed")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        yield chromium
        chromium.close()


@contextmanager
def served(app) -> Iterator[str]:
    """The app on 127.0.0.1 at a free port (the OS picks it), in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def screenshot_on_failure(page, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failure: {path}")
        except Exception as exc:  # the page may be gone; the original failure matters
            print(f"no screenshot ({type(exc).__name__})")
        raise
