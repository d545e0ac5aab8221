"""Every URL the service requests is checked before a byte is sent (issue #13, item 1).

Real listening sockets count every connection they accept: the allowlisted FHIR server
(127.0.0.1, base path /fhir), a listener on another port of the same host, and one on
another host (127.0.0.2). For each URL trick, as a 'next' link in a prefetch Bundle, as a
'next' link in the FHIR server's answer and as a redirect's Location, the listeners off
the allowlist must see no connection at all and the caller only a generic 412.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service import create_app
from service.fhir_client import FhirNotAllowed, ServerBase
from service.prefetch import DATA_NOT_AVAILABLE
from tests.builders import bundle, hook_request, losses, prefetch
from tests.conftest import make_settings

TOKEN = "token-that-must-not-leave"
PATH = "/cds-services/rpl-patient-view"


class CountingServer(ThreadingHTTPServer):
    """An HTTP server that records every connection it accepts and every request it answers.

    ``sync()`` makes a connection of its own and waits until the server has accepted it:
    connections are accepted in the order they arrived, so whatever the service connected
    before is counted by then, without sleeping."""

    daemon_threads = True

    def __init__(self, host: str):
        self.connections: list[tuple[str, int]] = []
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization)
        self.answer = lambda path: (200, {}, bundle())
        self._seen = threading.Condition()
        super().__init__((host, 0), CountingHandler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{self.server_address[0]}:{self.server_port}"

    def verify_request(self, request, client_address) -> bool:
        with self._seen:
            self.connections.append(client_address)
            self._seen.notify_all()
        return True

    def sync(self) -> list[tuple[str, int]]:
        """The connections accepted since the last sync (the sentinel's excepted)."""
        with socket.create_connection(self.server_address[:2], timeout=10) as sentinel:
            mine = sentinel.getsockname()[:2]
            with self._seen:
                assert self._seen.wait_for(lambda: mine in self.connections, timeout=30), "listener stuck"
                index = self.connections.index(mine)
                before, self.connections = self.connections[:index], self.connections[index + 1:]
        return before

    def handle_error(self, request, client_address) -> None:
        pass  # a TLS hello or a cut connection from the tests' own probes: not worth a traceback

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        server: CountingServer = self.server  # type: ignore[assignment]
        server.requests.append((self.path, self.headers.get("Authorization")))
        status, headers, body = server.answer(self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/fhir+json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, CountingServer]]:
    started = {"fhir": CountingServer("127.0.0.1"), "other_port": CountingServer("127.0.0.1"),
               "other_host": CountingServer("127.0.0.2")}
    for server in started.values():  # a leak would get an answer the rules read: nothing hides it
        server.answer = lambda path: (200, {}, bundle(losses(3)))
    yield started
    for server in started.values():
        server.close()


@pytest.fixture
def fhir(servers):
    for server in servers.values():
        server.sync()
        server.requests.clear()
    return servers["fhir"]


@pytest.fixture
def app(tmp_path, servers):
    app = create_app(make_settings(tmp_path, fhir_server_allowlist=(f"http://{servers['fhir'].address}/fhir",),
                                   fhir_read_timeout=5, fhir_connect_timeout=2))
    yield app
    app.extensions["rpl"].close()


# Each a URL the service must never request; {A} the allowlisted server's host:port (base
# path /fhir), {E} another port on its host, {O} another host.
FORMS = [
    "http://{O}/fhir/Observation?page=2",                # another host
    "HTTP://{O}/fhir/Observation",                       # the same, in capitals
    "http://{E}/fhir/Observation",                       # another port on the same host
    "https://{A}/fhir/Observation",                      # another scheme
    "https://{E}/fhir/Observation",
    "ftp://{A}/fhir/Observation",
    "file:///etc/passwd",
    "//{O}/fhir/Observation",                            # scheme-relative
    "//{E}/fhir/Observation",
    "http://{A}@{O}/fhir/Observation",                   # the allowed server as userinfo
    "http://user:pw@{A}/fhir/Observation",               # userinfo even to the allowed server
    "http://{A}:pw@{O}/fhir/Observation",
    "http://{O}#@{A}/fhir/Observation",                  # parsers disagreeing about the authority
    "http://{O}?@{A}/fhir/Observation",
    "http://{O}\\@{A}/fhir/Observation",                 # backslashes
    "http:\\\\{O}\\fhir\\Observation",
    "http://{A}\\@{O}/fhir/Observation",
    "/\\{O}/fhir/Observation",
    "http://{A}/admin/secret",                           # the same server, outside the base path
    "/admin/secret",
    "../admin/secret",
    "http://{A}/fhirx/Observation",
    "http://{A}/fhir@{O}/Observation",
    "http://{A}/fhir/../admin/secret",                   # dot segments, plain and encoded
    "http://{A}/fhir/./../admin/secret",
    "http://{A}/fhir/%2e%2e/admin/secret",
    "http://{A}/fhir/%2E%2E/admin/secret",
    "http://{A}/fhir/.%2e/admin/secret",
    "http://{A}/fhir/%252e%252e/admin/secret",
    "http://{A}/fhir/..%2fadmin%2fsecret",
    "http://{A}/fhir%2f..%2fadmin/secret",
    "http://{A}/fhir/..;/admin/secret",
    "http://{A}/fhir/..%5cadmin/secret",
    "http://localhost:{A_PORT}/fhir/Observation",       # the same machine under another name
    "http://127.0.0.1.:{A_PORT}/fhir/Observation",
    "http://2130706434:{O_PORT}/fhir/Observation",       # 127.0.0.2 as one number
    "http://0x7f000001:{E_PORT}/fhir/Observation",
    "http://[::ffff:127.0.0.2]:{O_PORT}/fhir/Observation",
    " http://{O}/fhir/Observation",                      # whitespace and control characters
    "http://{O}/fhir/Observation ",
    "\thttp://{O}/fhir/Observation",
    "http://{O}/fhir/Observation\n",
    "http://{A}/fhir/Observation\r\nX-Injected: 1",
    "http://{O}%2f@{A}/fhir/Observation",
    "http://{A}%40{O}/fhir/Observation",
    "http://{A}%2540{O}/fhir/Observation",
]


def form(template: str, servers: dict[str, CountingServer]) -> str:
    return template.format(A=servers["fhir"].address, E=servers["other_port"].address, O=servers["other_host"].address,
                           A_PORT=servers["fhir"].server_port, E_PORT=servers["other_port"].server_port,
                           O_PORT=servers["other_host"].server_port)


def call(app, data: dict, servers) -> object:
    body = hook_request("patient-view", data=data, fhirServer=f"http://{servers['fhir'].address}/fhir",
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "rpl-cds"})
    return app.test_client().post(PATH, json=body)


def assert_generic_412(response) -> None:
    assert response.status_code == 412, response.get_data(as_text=True)
    assert [i["diagnostics"] for i in response.get_json()["issue"]] == [DATA_NOT_AVAILABLE]


def assert_nothing_reached_off_the_allowlist(servers) -> None:
    assert servers["other_port"].sync() == [] and servers["other_host"].sync() == []
    assert servers["other_port"].requests == [] and servers["other_host"].requests == []


@pytest.mark.parametrize("template", FORMS)
def test_a_next_link_in_a_prefetch_bundle_is_checked_before_anything_is_sent(app, fhir, servers, template):
    data = prefetch()
    data["observations"]["link"] = [{"relation": "next", "url": form(template, servers)}]
    assert_generic_412(call(app, data, servers))
    assert_nothing_reached_off_the_allowlist(servers)
    assert fhir.sync() == [] and fhir.requests == []  # not even the allowlisted server, under another path


@pytest.mark.parametrize("template", FORMS)
def test_a_next_link_in_the_fhir_servers_answer_is_checked_before_anything_is_sent(app, fhir, servers, template):
    link = form(template, servers)
    fhir.answer = lambda path: (200, {}, {**bundle(losses(2)), "link": [{"relation": "next", "url": link}]})
    data = prefetch()
    del data["observations"]
    assert_generic_412(call(app, data, servers))
    assert_nothing_reached_off_the_allowlist(servers)
    assert [path.split("?")[0] for path, _ in fhir.requests] == ["/fhir/Observation"]  # the first page only


@pytest.mark.parametrize("template", [f for f in FORMS if "\n" not in f])  # no header holds a line break
def test_a_redirect_of_the_fhir_server_is_checked_before_anything_is_sent(app, fhir, servers, template):
    location = form(template, servers)
    fhir.answer = lambda path: (302, {"Location": location}, {})
    data = prefetch()
    del data["observations"]
    assert_generic_412(call(app, data, servers))
    assert_nothing_reached_off_the_allowlist(servers)
    assert [path.split("?")[0] for path, _ in fhir.requests] == ["/fhir/Observation"]


# -- the controls: the listeners do count, and links that stay on the server are followed --------
def test_the_listeners_count_what_reaches_them(servers):
    import requests

    for name in ("other_port", "other_host"):
        servers[name].sync()
        servers[name].requests.clear()
        assert requests.get(f"http://{servers[name].address}/fhir/x", timeout=5).status_code == 200
        assert len(servers[name].sync()) == 1 and len(servers[name].requests) == 1


@pytest.mark.parametrize("template", [
    "http://{A}/fhir/Observation?page=2",
    "HTTP://{A}/fhir/Observation?page=2",                # scheme and host are case-insensitive
    "http://{A}/fhir/Observation?page=2&q=..%2F..",      # dots and slashes in the query are data
    "Observation?page=2",                                # relative to the base
])
def test_a_next_link_on_the_allowlisted_server_under_its_base_is_followed_with_the_token(app, fhir, servers, template):
    fhir.answer = lambda path: (200, {}, bundle(losses(3)))
    data = prefetch()
    data["observations"]["link"] = [{"relation": "next", "url": form(template, servers)}]
    response = call(app, data, servers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [(path.split("?")[0], auth) for path, auth in fhir.requests] == [("/fhir/Observation", f"Bearer {TOKEN}")]
    assert_nothing_reached_off_the_allowlist(servers)


# -- the check itself ----------------------------------------------------------------------------------
BASE = ServerBase.of("https://fhir.example.org/r4")


@pytest.mark.parametrize("url,sent", [
    ("Patient/p1", "https://fhir.example.org/r4/Patient/p1"),
    ("https://fhir.example.org/r4/Observation?patient=p1", "https://fhir.example.org/r4/Observation?patient=p1"),
    ("https://FHIR.example.org:443/r4/Patient/p1", "https://fhir.example.org:443/r4/Patient/p1"),
    ("https://fhir.example.org/r4", "https://fhir.example.org/r4"),
    ("Observation?code=a\\,b|c d", "https://fhir.example.org/r4/Observation?code=a%5C,b%7Cc%20d"),
])
def test_urls_on_the_server_under_its_base_pass_as_requests_will_send_them(url, sent):
    assert BASE.check(url) == sent


@pytest.mark.parametrize("url", [
    "https://fhir.example.org/r4x/Patient", "https://fhir.example.org/", "http://fhir.example.org/r4/Patient",
    "https://fhir.example.org:8443/r4/Patient", "https://u@fhir.example.org/r4/Patient", "//evil.example/r4/Patient",
    "https://evil.example/r4/Patient", "https://fhir.example.org.evil.example/r4/Patient", "", None, 42,
    "Patient/" + "x" * 9000,
])
def test_urls_off_the_server_or_its_base_path_are_refused(url):
    with pytest.raises(FhirNotAllowed):
        BASE.check(url)


@pytest.mark.parametrize("base", ["ftp://fhir.example.org/r4", "https://u:p@fhir.example.org/r4",
                                  "https://fhir.example.org/r4?x=1", "https://fhir.example.org/r4/../admin",
                                  "https://fhir.example.org/r4 /x", "https:///r4"])
def test_a_fhir_server_base_that_is_no_plain_http_base_url_is_refused(base):
    with pytest.raises(FhirNotAllowed):
        ServerBase.of(base)


@pytest.mark.parametrize("allowlist", ["https://u:p@fhir.example.org/r4", "https://fhir.example.org/r4?x=1",
                                       "https://fhir.example.org/r4#f", "https://fhir.example.org\\@evil/r4"])
def test_an_allowlist_entry_that_is_no_plain_base_url_stops_the_start(allowlist):
    from service.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="RPL_FHIR_SERVER_ALLOWLIST"):
        load_settings(fhir_server_allowlist=allowlist, auth_enabled=False, database_url="sqlite://")


def test_with_any_server_allowed_a_worker_keeps_clients_for_a_bounded_number_of_servers():
    """'*' (development only) makes a client, with its Session and threads, per fhirServer named."""
    from service.fhir_client import FhirClients, FhirSettings

    clients = FhirClients(("*",), FhirSettings(connect_timeout=1, read_timeout=1, max_pages=1,
                                                max_response_bytes=1000, retries=0))
    with pytest.raises(FhirNotAllowed, match="without user"):
        clients.for_server("https://user@fhir0.example.org/r4")  # userinfo: never, even with '*'
    for n in range(FhirClients.MAX_SERVERS):
        clients.for_server(f"https://fhir{n}.example.org/r4")
    assert clients.for_server("https://fhir0.example.org/r4/")  # a known one still
    with pytest.raises(FhirNotAllowed, match="different fhirServers"):
        clients.for_server("https://one-more.example.org/r4")
    clients.close()
