"""The FHIR client against a real socket: retries, redirects and cookies as the server sends them."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.fhir_client import FhirClient, FhirError, FhirSettings


def send_fhir_json(handler: BaseHTTPRequestHandler, status: int, headers: dict, body) -> None:
    """Answer a request of a local FHIR stub with a JSON body and a Content-Length."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    for name, value in {"Content-Type": "application/fhir+json", **headers}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FhirStub(BaseHTTPRequestHandler):
    """Answers from a script of (status, headers, body) per path, in order; records what came in."""

    protocol_version = "HTTP/1.1"
    script: dict[str, list[tuple[int, dict[str, str], dict]]] = {}
    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path, dict(self.headers)))
        answers = self.script.get(self.path.split("?")[0], [])
        status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
        send_fhir_json(self, status, headers, body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def stub():
    FhirStub.script, FhirStub.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FhirStub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()
    server.server_close()


def client(base: str, retries: int = 2) -> FhirClient:
    return FhirClient(base, FhirSettings(connect_timeout=2, read_timeout=5, max_pages=3,
                                         max_response_bytes=100_000, retries=retries))


PATIENT = {"resourceType": "Patient", "id": "p1"}


def test_a_read_is_retried_after_a_503_and_sends_the_token_each_time(stub):
    FhirStub.script["/fhir/Patient/p1"] = [(503, {}, {"resourceType": "OperationOutcome"}), (200, {}, PATIENT)]
    assert client(stub).read("Patient/p1", "tok-1") == PATIENT
    assert [path for path, _ in FhirStub.seen] == ["/fhir/Patient/p1"] * 2
    assert {headers["Authorization"] for _, headers in FhirStub.seen} == {"Bearer tok-1"}


def test_without_retries_a_503_is_a_fhir_error(stub):
    FhirStub.script["/fhir/Patient/p1"] = [(503, {}, {"resourceType": "OperationOutcome"}), (200, {}, PATIENT)]
    with pytest.raises(FhirError, match="HTTP 503"):
        client(stub, retries=0).read("Patient/p1", None)


def test_a_redirect_on_the_same_server_is_followed_and_the_headers_go_along(stub):
    FhirStub.script["/fhir/Patient/p1"] = [(302, {"Location": "/fhir/Patient/p2"}, {})]
    FhirStub.script["/fhir/Patient/p2"] = [(200, {}, PATIENT)]
    assert client(stub).read("Patient/p1", "tok-1") == PATIENT
    assert [(path, headers.get("Authorization"), headers.get("Accept")) for path, headers in FhirStub.seen] == [
        ("/fhir/Patient/p1", "Bearer tok-1", "application/fhir+json"),
        ("/fhir/Patient/p2", "Bearer tok-1", "application/fhir+json"),
    ]


def test_a_cookie_set_by_the_server_is_not_sent_back(stub):
    FhirStub.script["/fhir/Patient/p1"] = [(200, {"Set-Cookie": "JSESSIONID=a; Path=/"}, PATIENT)]
    fhir = client(stub)
    fhir.read("Patient/p1", "tok-a")
    fhir.read("Patient/p1", None)
    assert [headers.get("Cookie") for _, headers in FhirStub.seen] == [None, None]
    assert len(fhir.session.cookies) == 0


def test_a_search_url_goes_out_as_requests_prepares_it(stub):
    """The URL is prepared once per URL (service.fhir_client._prepared_url): still requoted as
    requests does, so a code list with '|' and a space arrives percent-encoded."""
    FhirStub.script["/fhir/Observation"] = [(200, {}, {"resourceType": "Bundle", "type": "searchset"})]
    search = "Observation?patient=p1&code=http://loinc.org|11614-5,http://loinc.org|3016 3"
    for _ in range(2):  # prepared, then from the memo
        assert client(stub).search(search, None)["entry"] == []
    assert [path for path, _ in FhirStub.seen] == [
        "/fhir/Observation?patient=p1&code=http://loinc.org%7C11614-5,http://loinc.org%7C3016%203"] * 2


@pytest.mark.parametrize("token", ["tok\r\nX-Injected: 1", "tok\n"])
def test_a_token_that_cannot_be_a_header_value_is_a_fhir_error_and_nothing_is_sent(stub, token):
    FhirStub.script["/fhir/Patient/p1"] = [(200, {}, PATIENT)]
    with pytest.raises(FhirError, match="InvalidHeader"):
        client(stub).read("Patient/p1", token)
    assert FhirStub.seen == []
