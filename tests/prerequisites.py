"""What the suite needs beyond the Python packages, checked once when the session starts.

README, "Test prerequisites": a PostgreSQL server (initdb/postgres), redis-server, Chromium
for the browser tests, nginx and kubectl for the deployment tests, and sekmet-fhir (installed by the tests themselves from PyPI into a
cached virtual environment, see tests/fhir_server.py). `.ci/run` installs the others
with apt-get on a clean machine; as root with apt-get the tests that need one install it
themselves when it is missing.

Elsewhere (no root, or no apt-get), instead of a wall of failures, one message at the start
says what is missing and how to install it, and the tests that need it are skipped with that
reason; under CI (CI=true) or with RPL_CDS_TEST_REQUIRE_ALL=1 the run stops with the message
instead, so that a missing prerequisite never passes as skipped tests.

A test needs a prerequisite when it uses one of its fixtures (below), carries the marker
(``@pytest.mark.postgresql``, ``redis``, ``browser``, ``nginx``, ``kubectl``), has the
marker's name as a parameter (``params=["sqlite", "postgresql"]``) or is in a test file
listed for it; a fixture whose name contains "browser" or "chromium" counts as
the browser.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Prerequisite:
    name: str
    marker: str
    fixtures: tuple[str, ...]
    found: Callable[[], bool]
    install: str
    modules: tuple[str, ...] = ()  # test files all of whose tests need it


def _postgresql() -> bool:
    return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def _chromium() -> bool:
    return any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome"))


PREREQUISITES = (
    Prerequisite("PostgreSQL server", "postgresql", ("postgres_url",), _postgresql,
                 "sudo apt-get install postgresql   (or any PostgreSQL with initdb and postgres on PATH)",
                 ("test_multi_instance.py",)),
    Prerequisite("Redis server", "redis", ("redis_url", "shared_redis_url"), lambda: bool(shutil.which("redis-server")),
                 "sudo apt-get install redis-server   (or redis-server on PATH)", ("test_multi_instance.py",)),
    Prerequisite("Chromium", "browser", (), _chromium,
                 "sudo apt-get install chromium   (or chromium on PATH)"),
    Prerequisite("nginx", "nginx", (), lambda: bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
                 "sudo apt-get install nginx   (or nginx on PATH)", ("test_multi_instance.py",)),
    Prerequisite("kubectl", "kubectl", (), lambda: bool(shutil.which("kubectl")),
                 "sudo apt-get install kubectl   (or kubectl on PATH)", ("test_kubernetes.py",)),
)


def can_install_itself() -> bool:
    """Root with apt-get: the fixtures install what is missing (a clean CI machine).
    RPL_CDS_TEST_NO_INSTALL=1 makes a root machine behave as one that cannot."""
    if os.environ.get("RPL_CDS_TEST_NO_INSTALL"):
        return False
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def needs(item: pytest.Item, prerequisite: Prerequisite) -> bool:
    if item.get_closest_marker(prerequisite.marker) or item.path.name in prerequisite.modules:
        return True
    callspec = getattr(item, "callspec", None)  # e.g. params=["sqlite", "postgresql"] + getfixturevalue
    if callspec is not None and prerequisite.marker in [v for v in callspec.params.values() if isinstance(v, str)]:
        return True
    names = getattr(item, "fixturenames", ())
    if prerequisite.marker == "browser":
        return any("browser" in name or "chromium" in name for name in names)
    return any(name in names for name in prerequisite.fixtures)


def pytest_configure(config: pytest.Config) -> None:
    for prerequisite in PREREQUISITES:
        config.addinivalue_line("markers", f"{prerequisite.marker}: the test needs a {prerequisite.name} "
                                           "(tests/prerequisites.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if can_install_itself():
        return
    missing = []
    for prerequisite in PREREQUISITES:
        needing = [item for item in items if needs(item, prerequisite)]
        if needing and not prerequisite.found():
            missing.append((prerequisite, needing))
    if not missing:
        return
    lines = ["", "Missing test prerequisites (README, 'Test prerequisites'); not root with apt-get, so the "
                 "tests cannot install them:"]
    for prerequisite, needing in missing:
        lines.append(f"  - {prerequisite.name}, needed by {len(needing)} tests: {prerequisite.install}")
    if os.environ.get("CI") or os.environ.get("RPL_CDS_TEST_REQUIRE_ALL"):
        pytest.exit("\n".join(lines + ["Stopped: CI must run every test."]), returncode=pytest.ExitCode.USAGE_ERROR)
    lines.append("Those tests are skipped; everything else runs.")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n".join(lines), yellow=True)
    for prerequisite, needing in missing:
        skip = pytest.mark.skip(reason=f"no {prerequisite.name} here: {prerequisite.install}")
        for item in needing:
            item.add_marker(skip)
