"""One deadline and one byte budget per hook call; a slow FHIR server stalls only its own calls (issue #13).

The slow servers are real sockets: one that never answers, and ones that send a byte at a
time, well inside every socket timeout, so that only the call's deadline can end the read.
No assertion is on a duration: a read the deadline did not cut would still be running when
the test asks the server whether the client hung up (or would end with another reason).
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service import create_app
from service.fhir_budget import CallBudget, WorkerBytes
from service.fhir_client import FhirClient, FhirOverBudget, FhirSettings
from service.prefetch import DATA_NOT_AVAILABLE
from tests.builders import bundle, hook_request, losses, prefetch
from tests.conftest import make_settings

PATH = "/cds-services/rpl-patient-view"
GUARD = 60  # seconds a test waits for something that must happen at once; only a broken service hits it


class SlowServer:
    """Accepts connections and answers each with ``behaviour(connection)`` in its own thread;
    counts connections and records whether the client hung up before the answer was complete."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.connected = threading.Semaphore(0)
        self.hung_up = threading.Semaphore(0)
        self.release = threading.Event()  # ends every answer still going at the end of a test
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(connection)
            self.connected.release()
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket):
        try:
            connection.recv(65536)  # the request
            self.behaviour(self, connection)
        except OSError:  # the client closed or reset the connection: it hung up
            self.hung_up.release()

    def close(self):
        self.release.set()
        self.sock.close()
        for connection in self._open:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes its thread; close() alone would not
            except OSError:
                pass
            connection.close()


def hang(server: SlowServer, connection: socket.socket) -> None:
    """Never answers; notices (recv returns b'') when the client gives up."""
    connection.settimeout(GUARD)
    if connection.recv(1) == b"" and not server.release.is_set():
        raise ConnectionResetError


def trickle_body(server: SlowServer, connection: socket.socket) -> None:
    """Headers at once, then a byte of the body every 50 ms: a read timeout never trips."""
    body = json.dumps(bundle(losses(2))).encode()
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                       + f"Content-Length: {len(body)}\r\n\r\n".encode())
    for byte in body:
        if server.release.wait(0.05):
            return
        connection.sendall(bytes([byte]))


def trickle_headers(server: SlowServer, connection: socket.socket) -> None:
    """The status line and headers a byte every 50 ms, without end."""
    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100_000:
        if server.release.wait(0.05):
            return
        connection.sendall(bytes([byte]))


@pytest.fixture
def slow_servers():
    started: list[SlowServer] = []

    def start(behaviour) -> SlowServer:
        started.append(SlowServer(behaviour))
        return started[-1]

    yield start
    for server in started:
        server.close()


def settings(**overrides) -> FhirSettings:
    values = dict(connect_timeout=5, read_timeout=30, max_pages=3, max_response_bytes=100_000, retries=0,
                  call_deadline=1.0)
    values.update(overrides)
    return FhirSettings(**values)


@pytest.mark.parametrize("behaviour", [hang, trickle_body, trickle_headers])
def test_a_read_is_cut_at_the_calls_deadline_whatever_the_server_does(slow_servers, behaviour):
    server = slow_servers(behaviour)
    client = FhirClient(server.base, settings())
    with pytest.raises(FhirOverBudget, match="deadline of 1 s"):
        client.read("Patient/p1", "tok")
    assert server.hung_up.acquire(timeout=GUARD)  # the connection was cut, not left to run on
    client.close()


def test_the_deadline_is_for_all_reads_of_a_call_together(slow_servers):
    """Two reads of one call, the second after the deadline: refused before it connects."""
    server = slow_servers(hang)
    client = FhirClient(server.base, settings())
    budget = client.budget()
    with pytest.raises(FhirOverBudget):
        client.read("Patient/p1", "tok", budget)
    assert server.connected.acquire(timeout=GUARD)
    with pytest.raises(FhirOverBudget, match="deadline"):
        client.search("Observation?patient=p1", "tok", budget)
    assert not server.connected.acquire(blocking=False)  # no second connection
    client.close()


def test_retries_and_retry_after_stay_within_the_deadline(slow_servers):
    """A server that answers 503 with 'Retry-After: 3600' every time: the retries do not sleep an hour."""
    def busy(server, connection):
        while True:  # every request on the kept-alive connection
            connection.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n")
            if not connection.recv(65536):
                return

    server = slow_servers(busy)
    client = FhirClient(server.base, settings(retries=3, call_deadline=30))
    with pytest.raises(Exception, match="HTTP 503"):
        client.read("Patient/p1", None)
    client.close()


# -- through the service: 412, and a hanging server stalls only its own calls ---------------------------
class Healthy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        data = json.dumps(bundle(losses(3))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def healthy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()
    server.server_close()


def missing_observations(fhir_server: str) -> dict:
    data = prefetch()
    del data["observations"]
    return hook_request("patient-view", data=data, fhirServer=fhir_server)


def test_a_call_to_a_trickling_server_gets_412_at_its_deadline_and_the_reason_is_logged(tmp_path, slow_servers, caplog):
    server = slow_servers(trickle_body)
    app = create_app(make_settings(tmp_path, fhir_server_allowlist=(server.base,), fhir_call_deadline_seconds=1))
    response = app.test_client().post(PATH, json=missing_observations(server.base))
    assert response.status_code == 412 and response.get_json()["issue"][0]["diagnostics"] == DATA_NOT_AVAILABLE
    reasons = [r for record in caplog.records for r in getattr(record, "audit", {}).get("reasons", [])]
    assert any("deadline" in reason for reason in reasons), reasons
    assert server.hung_up.acquire(timeout=GUARD)
    app.extensions["rpl"].close()


def test_a_hanging_server_holds_only_its_own_calls_and_no_more_of_them_than_allowed(tmp_path, slow_servers, healthy):
    hanging = slow_servers(hang)
    app = create_app(make_settings(tmp_path, fhir_server_allowlist=(hanging.base, healthy),
                                   fhir_call_deadline_seconds=GUARD, fhir_max_calls_per_server=2))
    pool = ThreadPoolExecutor(4)
    stuck = [pool.submit(app.test_client().post, PATH, json=missing_observations(hanging.base)) for _ in range(2)]
    for _ in stuck:  # both calls are reading from the hanging server
        assert hanging.connected.acquire(timeout=GUARD)
    # a third call to the hanging server is refused after a short wait, not queued behind the two...
    refused = app.test_client().post(PATH, json=missing_observations(hanging.base))
    assert refused.status_code == 412
    # ...and a call to the healthy server is answered, while the other two still hang
    answered = app.test_client().post(PATH, json=missing_observations(healthy))
    assert answered.status_code == 200, answered.get_data(as_text=True)
    assert not any(call.done() for call in stuck)
    hanging.close()  # the hanging server gives up: the stuck calls end (412)
    assert [call.result(timeout=GUARD).status_code for call in stuck] == [412, 412]
    pool.shutdown()
    app.extensions["rpl"].close()


def test_hanging_servers_together_hold_no_more_calls_of_a_worker_than_allowed(tmp_path, slow_servers, healthy):
    first, second = slow_servers(hang), slow_servers(hang)
    app = create_app(make_settings(tmp_path, fhir_server_allowlist=(first.base, second.base, healthy),
                                   fhir_call_deadline_seconds=GUARD, fhir_max_calls_per_server=2,
                                   fhir_max_calls_per_worker=3))
    pool = ThreadPoolExecutor(3)
    stuck = [pool.submit(app.test_client().post, PATH, json=missing_observations(server.base))
             for server in (first, first, second)]
    for server in (first, first, second):
        assert server.connected.acquire(timeout=GUARD)
    # the second server has a turn left, the worker has none: refused after the short wait
    assert app.test_client().post(PATH, json=missing_observations(second.base)).status_code == 412
    assert app.test_client().post(PATH, json=missing_observations(healthy)).status_code == 412
    assert not second.connected.acquire(blocking=False) and not any(call.done() for call in stuck)
    first.close()  # two calls end: the healthy server gets its turn again
    second.close()
    assert [call.result(timeout=GUARD).status_code for call in stuck] == [412] * 3
    assert app.test_client().post(PATH, json=missing_observations(healthy)).status_code == 200
    pool.shutdown()
    app.extensions["rpl"].close()


# -- bytes: per call and per worker ------------------------------------------------------------------
def test_the_bytes_of_all_reads_of_a_call_count_against_its_budget(healthy):
    size = len(json.dumps(bundle(losses(3))))
    client = FhirClient(healthy, settings(max_call_bytes=size + size // 2, call_deadline=GUARD))
    budget = client.budget()
    client.search("Observation?patient=p1", None, budget)
    with pytest.raises(FhirOverBudget, match="RPL_FHIR_MAX_CALL_BYTES"):
        client.search("Observation?patient=p1", None, budget)
    assert client.search("Observation?patient=p1", None) is not None  # a new call has a new budget
    client.close()


def test_the_calls_of_a_worker_share_its_byte_budget_until_they_end(healthy):
    size = len(json.dumps(bundle(losses(3))))
    worker = WorkerBytes(size + size // 2)
    client = FhirClient(healthy, settings(call_deadline=GUARD), worker_bytes=worker)
    first, second = client.budget(), client.budget()
    client.search("Observation?patient=p1", None, first)
    assert worker.used == first.used > size // 2  # (the answers' ids differ: a few bytes more or less)
    with pytest.raises(FhirOverBudget, match="RPL_FHIR_MAX_WORKER_BYTES"):
        client.search("Observation?patient=p1", None, second)
    first.release()
    second.release()
    assert worker.used == 0
    client.search("Observation?patient=p1", None, client.budget())
    client.close()


def test_the_service_gives_the_bytes_of_a_call_back_when_it_has_answered(tmp_path, healthy):
    app = create_app(make_settings(tmp_path, fhir_server_allowlist=(healthy,)))
    assert app.test_client().post(PATH, json=missing_observations(healthy)).status_code == 200
    assert app.extensions["rpl"].fhir_clients.worker_bytes.used == 0
    app.extensions["rpl"].close()


def test_a_budget_refuses_bytes_over_either_limit_and_counts_nothing_it_refused():
    worker = WorkerBytes(100)
    budget = CallBudget(10, 60, worker)
    budget.take(50)
    with pytest.raises(Exception, match="RPL_FHIR_MAX_CALL_BYTES"):
        budget.take(20)
    other = CallBudget(10, 100, worker)
    with pytest.raises(Exception, match="RPL_FHIR_MAX_WORKER_BYTES"):
        other.take(60)
    assert (budget.used, other.used, worker.used) == (50, 0, 50)
    budget.release()
    budget.release()  # idempotent
    assert worker.used == 0


# -- as deployed: gunicorn, one worker of 8 threads -----------------------------------------------------
def test_under_gunicorn_a_hanging_server_leaves_healthz_and_other_servers_free(tmp_path, slow_servers, healthy):
    """The default settings: 8 calls to a hanging server at once, as many as a worker has threads."""
    import os

    import requests

    from service.config import Settings
    from tests.serve import rpl_cds_serve

    per_server = Settings.model_fields["fhir_max_calls_per_server"].default
    hanging = slow_servers(hang)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_") and k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), RPL_AUTH_ENABLED="false", RPL_FHIR_SERVER_ALLOWLIST=f"{hanging.base},{healthy}",
               RPL_DATABASE_URL=f"sqlite:///{tmp_path / 'feedback.sqlite3'}", RPL_FHIR_RETRIES="0",
               RPL_FHIR_CALL_DEADLINE_SECONDS=str(GUARD), RPL_FHIR_READ_TIMEOUT=str(GUARD))
    with rpl_cds_serve(env, tmp_path, workers=1) as (url, _out, _err), requests.Session() as session:
        pool = ThreadPoolExecutor(8)
        post = lambda base: requests.post(f"{url}{PATH}", json=missing_observations(base), timeout=GUARD * 2)  # noqa: E731
        calls = [pool.submit(post, hanging.base) for _ in range(8)]
        for _ in range(per_server):  # RPL_FHIR_MAX_CALLS_PER_SERVER calls reading from the hanging server...
            assert hanging.connected.acquire(timeout=GUARD)
        refused: list = []
        while len(refused) < 8 - per_server:  # ...and the others answered 412 after a short wait
            ended, _ = wait([call for call in calls if call not in refused], timeout=GUARD, return_when=FIRST_COMPLETED)
            assert ended
            refused += ended
        assert {call.result().status_code for call in refused} == {412}
        stuck = [call for call in calls if call not in refused]
        assert session.get(f"{url}/healthz", timeout=GUARD).status_code == 200
        answered = session.post(f"{url}{PATH}", json=missing_observations(healthy), timeout=GUARD)
        assert answered.status_code == 200, answered.text
        assert len(stuck) == per_server and not any(call.done() for call in stuck)
        hanging.close()
        assert [call.result(timeout=GUARD).status_code for call in stuck] == [412] * per_server
        pool.shutdown()
    assert not (home / ".gunicorn").exists()  # no control socket shared by every instance of the user
