"""Feedback in PostgreSQL: RPL_DATABASE_URL switches the store, and nothing is lost on restart.

Runs a real, throw-away PostgreSQL server (Debian's, installed with apt-get when
missing, as CI runs as root on a fresh machine), like the Redis tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from service import create_app
from tests.conftest import make_settings
from tests.fhir_server import free_port
from tests.test_feedback import ACCEPTED, OVERRIDDEN

PG_BIN = Path("/usr/lib/postgresql")


def _postgres_bin() -> Path:
    """The folder with initdb and postgres; installs Debian's postgresql when missing."""
    def find() -> Path | None:
        on_path = shutil.which("initdb")
        if on_path:
            return Path(os.path.realpath(on_path)).parent
        versions = sorted(PG_BIN.glob("*/bin/initdb")) if PG_BIN.exists() else []
        return versions[-1].parent if versions else None

    found = find()
    problem = "apt-get is not available or this is not root"
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        problem = (done.stderr or done.stdout)[-2000:]
        found = find()
    if found is None:
        pytest.fail(f"the PostgreSQL feedback test needs a PostgreSQL server, and none could be installed:\n{problem}")
    return found


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _postgres_bin()
    # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="rpl-cds-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "rpl", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    server = subprocess.Popen(
        [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"postgresql+psycopg://rpl@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"postgresql://rpl@127.0.0.1:{port}/postgres", connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the throw-away PostgreSQL server did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def test_feedback_is_stored_in_postgresql_and_survives_a_restart(tmp_path, postgres_url):
    settings = make_settings(tmp_path, database_url=postgres_url)
    app = create_app(settings)
    assert app.test_client().get("/readyz").get_json() == {"status": "ready", "database": "ok"}
    response = app.test_client().post("/cds-services/rpl-order-sign/feedback", json={"feedback": [ACCEPTED, OVERRIDDEN]})
    assert response.status_code == 200
    app.extensions["rpl"].close()
    again = create_app(settings)
    assert again.extensions["rpl"].feedback.count() == 2
    again.extensions["rpl"].close()


def test_postgresql_stores_replayed_feedback_once_and_records_every_card(tmp_path, postgres_url):
    import sqlalchemy as sa

    from service.feedback import issued_card_table
    from tests.builders import hook_request, losses, progesterone_order

    app = create_app(make_settings(tmp_path, database_url=postgres_url))
    try:
        client = app.test_client()
        body = hook_request("order-select", losses(2), drafts=(progesterone_order(rid="p1"),))
        cards = client.post("/cds-services/rpl-order-select", json=body).get_json()["cards"]
        with app.extensions["rpl"].feedback.engine.connect() as c:
            recorded = set(c.execute(sa.select(issued_card_table.c.card_uuid)).scalars())
        assert cards and {card["uuid"] for card in cards} <= recorded
        item = {"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"}
        before = app.extensions["rpl"].feedback.count()
        assert client.post("/cds-services/rpl-order-select/feedback", json={"feedback": [item]}).get_json()["stored"] == 1
        assert client.post("/cds-services/rpl-order-select/feedback", json={"feedback": [item, item]}).get_json() == {
            "stored": 0, "duplicates": 2}
        assert app.extensions["rpl"].feedback.count() == before + 1
    finally:
        app.extensions["rpl"].close()


def test_postgresql_holds_back_a_card_overridden_for_the_same_patient(tmp_path, postgres_url):
    from tests.test_governance import NO_REPEAT, overridden, progesterone_card, send_feedback

    app = create_app(make_settings(tmp_path, database_url=postgres_url, **NO_REPEAT))
    try:
        card = progesterone_card(app, 2, pid="pg-patient")
        send_feedback(app, "order-select", overridden(card["uuid"]))
        assert progesterone_card(app, 2, pid="pg-patient") is None
        assert progesterone_card(app, 3, pid="pg-patient") is not None  # the facts changed
    finally:
        app.extensions["rpl"].close()
