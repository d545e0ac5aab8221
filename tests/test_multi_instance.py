"""Several instances behave as one, for real on loopback: two `rpl-cds serve` instances (A
and B, gunicorn as in production) behind nginx (round robin, retries to the other instance),
sharing one Redis (JWT replay memory) and one PostgreSQL (feedback), as the replicas of the
Kubernetes Deployment do (deploy/kubernetes).

Every server is started by the tests on a free port and stopped in a finalizer; every call
has a timeout."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests

from service.cli import example
from service.sandbox_client import JwtSigner, new_tester_key
from tests.fhir_server import free_port
from tests.servers import (
    Balancer,
    ServiceInstance,
    nginx_balancer,
    postgres_server,
    redis_server,
    start_service,
    wait_healthy,
)

TIMEOUT = (5, 30)  # connect, read: no call of these tests can hang
DISCOVERY = "/cds-services"
HOOK = "/cds-services/rpl-patient-view"
FEEDBACK = "/cds-services/rpl-patient-view/feedback"
SIGNER = JwtSigner(new_tester_key(), iss="https://ehr.hospital.example")


@dataclass
class Pair:
    a: ServiceInstance
    b: ServiceInstance
    balancer: str  # nginx's URL: the public base URL of both, so the JWT audience
    nginx: Balancer
    env: dict[str, str]  # what A and B were started with

    def headers(self, path: str) -> dict[str, str]:
        """A fresh JWT (new jti) for a call of path, as the EHR sends through the balancer."""
        return SIGNER.headers(self.balancer + path)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def shared_redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@contextmanager
def running_pair(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Pair]:
    """A and B started at the same time (as the pods of a new Deployment), then nginx in front."""
    balancer_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env.update(
        RPL_DATABASE_URL=database_url,
        RPL_REPLAY_CACHE_URL=redis_url,
        RPL_AUTH_ISSUERS=json.dumps([SIGNER.issuer()]),
        RPL_PUBLIC_BASE_URL=f"http://127.0.0.1:{balancer_port}",
        RPL_LOG_LEVEL="INFO",
    )
    with ExitStack() as stack:
        instances = []
        for name in ("a", "b"):
            instance = start_service(env, tmp_path / name)
            stack.callback(instance.stop)
            instances.append(instance)
        for instance in instances:
            wait_healthy(instance)
            _wait_ready(instance)
        nginx = stack.enter_context(
            nginx_balancer([f"127.0.0.1:{i.port}" for i in instances], tmp_path / "nginx", port=balancer_port))
        yield Pair(instances[0], instances[1], nginx.url, nginx, env)


def _wait_ready(instance: ServiceInstance, timeout: float = 30) -> None:
    """/readyz answers 200: the shared database is reachable and its table exists."""
    deadline = time.monotonic() + timeout
    while requests.get(f"{instance.url}/readyz", timeout=TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, instance.stdout.read_text() + instance.stderr.read_text()
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, postgres_url, shared_redis_url) -> Iterator[Pair]:
    with running_pair(tmp_path_factory.mktemp("pair"), postgres_url, shared_redis_url) as running:
        yield running


def hook_body() -> dict:
    body = example("patient-view")
    body["hookInstance"] = str(uuid.uuid4())
    return body


def feedback_body(*cards: str) -> dict:
    return {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-12-02T10:00:00Z"}
                         for card in cards]}


def audit_records(instance: ServiceInstance) -> list[dict]:
    records = []
    # The instance may be writing a line right now: only complete lines (up to a newline) count.
    for line in instance.stdout.read_text().split("\n")[:-1]:
        if line.strip():
            record = json.loads(line)
            if record.get("logger") == "rpl_cds.audit":
                records.append(record)
    return records


def stored_feedback(database_url: str, cards: list[str]) -> dict[str, int]:
    """How many rows each card has in the shared PostgreSQL."""
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, connect_timeout=5) as connection:
        rows = connection.execute("SELECT card_uuid, count(*) FROM feedback WHERE card_uuid = ANY(%s) GROUP BY card_uuid",
                                  (cards,)).fetchall()
    return dict(rows)


# -- one replay memory ---------------------------------------------------------------------------
def test_a_jwt_used_through_instance_a_is_refused_through_instance_b(pair):
    headers = pair.headers(DISCOVERY)
    assert requests.get(pair.a.url + DISCOVERY, headers=headers, timeout=TIMEOUT).status_code == 200
    assert requests.get(pair.b.url + DISCOVERY, headers=headers, timeout=TIMEOUT).status_code == 401
    assert requests.get(pair.balancer + DISCOVERY, headers=headers, timeout=TIMEOUT).status_code == 401
    body = hook_body()
    headers = pair.headers(HOOK)  # and the other way round, on a hook call
    assert requests.post(pair.b.url + HOOK, json=body, headers=headers, timeout=TIMEOUT).status_code == 200
    assert requests.post(pair.a.url + HOOK, json=body, headers=headers, timeout=TIMEOUT).status_code == 401


def test_the_balancer_spreads_the_calls_over_both_instances(pair):
    instances = [str(uuid.uuid4()) for _ in range(6)]
    for hook_instance in instances:
        body = {**hook_body(), "hookInstance": hook_instance}
        response = requests.post(pair.balancer + HOOK, json=body, headers=pair.headers(HOOK), timeout=TIMEOUT)
        assert response.status_code == 200
        assert {"D3.2", "D5.1a"} <= {rec for card in response.json()["cards"] for rec in card["extension"]["org.rpl-cds.carried-ids"]}
    served = {}
    deadline = time.monotonic() + 10
    while len(served) < len(instances) and time.monotonic() < deadline:
        served = {r["hookInstance"]: name for name, i in (("a", pair.a), ("b", pair.b))
                  for r in audit_records(i) if r.get("hookInstance") in instances}
        time.sleep(0.1)
    assert set(served) == set(instances)
    assert set(served.values()) == {"a", "b"}, "round robin: both instances answered"


# -- one feedback store -----------------------------------------------------------------------------
def test_feedback_through_both_instances_is_stored_once_each(pair, postgres_url):
    cards = []
    for target in [pair.balancer] * 6 + [pair.a.url, pair.b.url] * 2:
        batch = [str(uuid.uuid4()), str(uuid.uuid4())]
        response = requests.post(target + FEEDBACK, json=feedback_body(*batch), headers=pair.headers(FEEDBACK),
                                 timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        assert response.json() == {"stored": 2, "duplicates": 0}
        cards += batch
    # The client resends a batch through the other instance (the spec allows it): stored once.
    again = requests.post(pair.b.url + FEEDBACK, json=feedback_body(*cards[-4:-2]), headers=pair.headers(FEEDBACK),
                          timeout=TIMEOUT)
    assert again.status_code == 200 and again.json() == {"stored": 0, "duplicates": 2}, again.text
    assert stored_feedback(postgres_url, cards) == {card: 1 for card in cards}  # none lost, none doubled


# -- one governance record ---------------------------------------------------------------------------------
def test_the_cards_issued_by_both_instances_are_in_one_report(tmp_path, postgres_url, shared_redis_url):
    """The cards each instance issued (and the feedback on them) are recorded in the shared
    database, so `rpl-cds report` counts all of them, whichever instance answered."""
    import csv
    import subprocess
    from datetime import datetime, timedelta, timezone

    import sqlalchemy as sa

    from tests.builders import carried_ids
    from tests.servers import CLI

    database = f"rpl_report_{uuid.uuid4().hex[:8]}"  # its own database: only this test's cards
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    finally:
        admin.dispose()
    database_url = postgres_url.rsplit("/", 1)[0] + "/" + database
    since = datetime.now(timezone.utc).date() - timedelta(days=1)  # the database holds only this test's cards
    with running_pair(tmp_path, database_url, shared_redis_url) as pair:
        d3_2_cards = []
        for _ in range(6):
            body = hook_body()
            response = requests.post(pair.balancer + HOOK, json=body, headers=pair.headers(HOOK), timeout=TIMEOUT)
            assert response.status_code == 200
            # D3.2 rides on the work-up card (topic D); the report counts each row a card carries.
            d3_2_cards += [card["uuid"] for card in response.json()["cards"] if "D3.2" in carried_ids(card)]
        assert len(d3_2_cards) == 6
        # An override of one card through each instance.
        for instance, card in ((pair.a, d3_2_cards[0]), (pair.b, d3_2_cards[1])):
            response = requests.post(instance.url + FEEDBACK, json=feedback_body(card), headers=pair.headers(FEEDBACK),
                                     timeout=TIMEOUT)
            assert response.status_code == 200, response.text
        served = {name for name, i in (("a", pair.a), ("b", pair.b))
                  for r in audit_records(i) if r.get("service") == "rpl-patient-view" and r.get("status") == 200}
        assert served == {"a", "b"}, "both instances issued cards"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    done = subprocess.run([str(CLI), "report", "--since", since.isoformat(), "--format", "csv", "--database-url",
                           database_url], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [row for row in csv.DictReader(done.stdout.splitlines()) if row["recommendation"] == "D3.2"]
    assert sum(int(row["shown"]) for row in rows) == 6
    assert sum(int(row["overridden"]) for row in rows) == 2
    assert sum(int(row["no_feedback"]) for row in rows) == 4


# -- one instance dies, or is replaced -------------------------------------------------------------------
@dataclass
class Call:
    kind: str
    status: int  # 0: no answer at all
    phase: int  # what had happened when the call started (see Load.phase)
    card: str | None = None


class Load:
    """Four clients calling discovery, a hook and feedback through nginx without pause, each
    call with a fresh JWT, as EHRs do."""

    def __init__(self, pair: Pair, clients: int = 4):
        self.pair = pair
        self.calls: list[Call] = []
        self.phase = 0  # the test moves it on: calls remember the phase they started in
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=40)
        assert not any(t.is_alive() for t in self.threads)

    def _client(self) -> None:
        session, pair, n = requests.Session(), self.pair, 0
        while not self._stop.is_set():
            kind = ("discovery", "hook", "feedback")[n % 3]
            n += 1
            phase = self.phase
            card = str(uuid.uuid4()) if kind == "feedback" else None
            try:
                if kind == "discovery":
                    r = session.get(pair.balancer + DISCOVERY, headers=pair.headers(DISCOVERY), timeout=TIMEOUT)
                elif kind == "hook":
                    r = session.post(pair.balancer + HOOK, json=hook_body(), headers=pair.headers(HOOK), timeout=TIMEOUT)
                else:
                    r = session.post(pair.balancer + FEEDBACK, json=feedback_body(card), headers=pair.headers(FEEDBACK),
                                     timeout=TIMEOUT)
                status = r.status_code
            except requests.RequestException:
                status = 0
            with self._lock:
                self.calls.append(Call(kind, status, phase, card))

    def wait_for_calls(self, phase: int, count: int) -> None:
        def enough() -> bool:
            with self._lock:
                return sum(1 for c in self.calls if c.phase == phase) >= count

        _wait_for(enough, f"{count} calls in phase {phase}")


def test_a_crashed_instance_loses_no_acknowledged_feedback_and_calls_go_on(tmp_path, postgres_url, shared_redis_url):
    """B is killed (SIGKILL to the master and its workers, like a pod that dies) under load."""
    with running_pair(tmp_path, postgres_url, shared_redis_url) as pair, Load(pair) as load:
        load.wait_for_calls(0, 24)
        assert audit_records(pair.b), "B served calls before it was killed"
        pair.b.crash()
        load.phase = 1  # B refuses connections
        load.wait_for_calls(1, 36)

    calls = load.calls
    # A call that B had received when it died is lost: a POST gets nginx's 502 (a POST that
    # reached a server is not sent again: see tests/servers.py), a GET is sent to A again but
    # its JWT, already recorded by B, is refused there as a replay (401), and an answer B was
    # in the middle of sending is cut off (nginx closes the connection: no status, 0). At most
    # one such call per client; every other call is answered.
    failed = [c for c in calls if c.status != 200]
    assert all(c.phase == 0 and c.status in ({0, 401} if c.kind == "discovery" else {0, 502}) for c in failed), failed
    assert len(failed) <= len(load.threads)
    after = [c for c in calls if c.phase == 1]
    assert {c.kind for c in after} == {"discovery", "hook", "feedback"} and all(c.status == 200 for c in after)
    # Every feedback acknowledged with 200 is in PostgreSQL, once.
    acknowledged = [c.card for c in calls if c.kind == "feedback" and c.status == 200]
    assert stored_feedback(postgres_url, acknowledged) == {card: 1 for card in acknowledged}


def test_a_rolling_update_drops_no_call(tmp_path, postgres_url, shared_redis_url):
    """What Kubernetes does in a rolling update (deploy/kubernetes, maxSurge 1, maxUnavailable
    0), under load: a new instance C starts and, once ready, gets calls; B is taken out of the
    balancer (its endpoint removed), the preStop pause passes, then B gets SIGTERM and drains."""
    with running_pair(tmp_path, postgres_url, shared_redis_url) as pair:
        new = start_service(pair.env, tmp_path / "c")
        try:
            with Load(pair) as load:  # ends before the new instance is stopped (that is no update)
                load.wait_for_calls(0, 15)
                wait_healthy(new)
                _wait_ready(new)
                pair.nginx.route([f"127.0.0.1:{i.port}" for i in (pair.a, pair.b, new)])
                load.phase = 1  # the new instance takes calls
                load.wait_for_calls(1, 15)
                pair.nginx.route([f"127.0.0.1:{i.port}" for i in (pair.a, new)])
                load.phase = 2  # B gets no new calls; then the preStop pause
                load.wait_for_calls(2, 9)
                os.killpg(pair.b.process.pid, signal.SIGTERM)
                assert pair.b.process.wait(timeout=40) == 0, "B stopped cleanly within its graceful timeout"
                load.phase = 3  # B is gone
                load.wait_for_calls(3, 15)
        finally:
            new.stop()

    calls = load.calls
    failed = [c for c in calls if c.status != 200]
    assert failed == [], f"{failed}\nnginx:\n{(pair.nginx.home / 'error.log').read_text()[-3000:]}"
    assert {c.kind for c in calls if c.phase == 3} == {"discovery", "hook", "feedback"}
    assert audit_records(new), "the new instance answered calls"
    acknowledged = [c.card for c in calls if c.kind == "feedback"]
    assert stored_feedback(postgres_url, acknowledged) == {card: 1 for card in acknowledged}


def _wait_for(condition, what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- the replay memory is down ---------------------------------------------------------------------------
def test_with_redis_down_authenticated_calls_get_503_on_both_never_200(tmp_path, postgres_url):
    with redis_server() as own_redis, running_pair(tmp_path, postgres_url, own_redis.url) as pair:
        assert requests.get(pair.balancer + DISCOVERY, headers=pair.headers(DISCOVERY), timeout=TIMEOUT).status_code == 200
        own_redis.stop()
        for base in (pair.a.url, pair.b.url, pair.balancer, pair.balancer):
            discovery = requests.get(base + DISCOVERY, headers=pair.headers(DISCOVERY), timeout=TIMEOUT)
            hook = requests.post(base + HOOK, json=hook_body(), headers=pair.headers(HOOK), timeout=TIMEOUT)
            feedback = requests.post(base + FEEDBACK, json=feedback_body(str(uuid.uuid4())), headers=pair.headers(FEEDBACK),
                                     timeout=TIMEOUT)
            assert (discovery.status_code, hook.status_code, feedback.status_code) == (503, 503, 503), base
            assert hook.json()["resourceType"] == "OperationOutcome"
        for instance in (pair.a, pair.b):  # alive: liveness must not restart pods for a Redis outage
            assert requests.get(instance.url + "/healthz", timeout=TIMEOUT).status_code == 200


# -- a rolling update: SIGTERM drains ------------------------------------------------------------------
@contextmanager
def slow_fhir_server(delay: float) -> Iterator[tuple[str, threading.Event]]:
    """A FHIR server that answers every read after delay seconds (a Patient, or an empty
    searchset); the event is set when the first read arrives."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.set()
            time.sleep(delay)
            path = self.path.split("?", 1)[0]
            if "/Patient/" in path:
                body = {"resourceType": "Patient", "id": path.rsplit("/", 1)[1], "gender": "female"}
            else:
                body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(("graceful_timeout", "fhir_delay", "finished"), [(10, 2, True), (1, 4, False)])
def test_sigterm_lets_the_calls_in_progress_finish_within_the_graceful_timeout(tmp_path, graceful_timeout, fhir_delay,
                                                                               finished):
    """What Kubernetes does to an old pod in a rolling update (after the preStop pause): SIGTERM.
    A hook call waiting for the FHIR server still gets its cards when it finishes within
    `--graceful-timeout` (deploy/kubernetes sets it below terminationGracePeriodSeconds), and is
    cut when it takes longer: the flag is what decides."""
    with slow_fhir_server(fhir_delay) as (fhir_url, asked):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
        env.update(RPL_AUTH_ENABLED="false", RPL_DATABASE_URL=f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
                   RPL_FHIR_SERVER_ALLOWLIST=fhir_url)
        instance = start_service(env, tmp_path / "svc", extra_args=("--graceful-timeout", str(graceful_timeout)))
        try:
            wait_healthy(instance)
            body = {k: v for k, v in hook_body().items() if k != "prefetch"}
            body["fhirServer"] = fhir_url
            outcome: dict = {}

            def call() -> None:
                try:
                    outcome["status"] = requests.post(instance.url + HOOK, json=body, timeout=TIMEOUT).status_code
                except requests.RequestException as exc:
                    outcome["error"] = exc

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            assert asked.wait(timeout=20), "the service did not read from the FHIR server"
            os.killpg(instance.process.pid, signal.SIGTERM)
            caller.join(timeout=40)
            assert not caller.is_alive()
            instance.process.wait(timeout=30)
        finally:
            instance.stop()
    if finished:
        assert outcome == {"status": 200}
        assert instance.process.returncode == 0  # a clean stop, not a kill
    else:
        assert "status" not in outcome and isinstance(outcome["error"], requests.ConnectionError), outcome


# -- several instances start at once on an empty database -------------------------------------------------
def test_instances_starting_at_once_on_an_empty_database_all_find_the_table(postgres_url, caplog):
    """The replicas of a new Deployment start together: each creates the feedback table if it
    is missing, and none may fail for the others doing the same (it would log the database as
    unreachable and stay unready until its next probe)."""
    import sqlalchemy as sa

    from service.feedback import FeedbackStore

    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        for round_ in range(5):
            database = f"rpl_start_{round_}_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
            url = postgres_url.rsplit("/", 1)[0] + "/" + database
            barrier = threading.Barrier(4)
            stores: list = []

            def start() -> None:
                barrier.wait(timeout=20)
                stores.append(FeedbackStore(url))

            threads = [threading.Thread(target=start) for _ in range(4)]
            with caplog.at_level("ERROR", logger="service.feedback"):
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=30)
            try:
                assert len(stores) == 4
                assert all(store._schema_ready for store in stores), caplog.text
                assert not caplog.records, caplog.text
            finally:
                for store in stores:
                    store.close()
    finally:
        admin.dispose()
