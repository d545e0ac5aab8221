"""Reading from the CDS client's FHIR server.

One ``requests.Session`` per FHIR base URL, kept for the life of the worker
(keep-alive saves a TLS handshake per call), explicit (connect, read)
timeouts on every request, retries only for idempotent reads. Every failure
becomes a ``FhirError``; the bearer token is sent per request and never logged,
and no cookie is kept, since one Session serves the calls of every user.

Every URL is checked against the server's base before anything is sent
(``ServerBase.check``). All reads of one hook call share a deadline and a byte
budget (``service.fhir_budget``), and each server has its own threads and a cap
on the calls waiting on it, so a hanging server stalls only its own calls.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from .fhir_budget import BudgetExceeded, CallBudget, WatchedAdapter, WorkerBytes, detach_now, reading_for

FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 3


class FhirError(Exception):
    """The FHIR server could not give the data (message safe to show to the client)."""


class FhirUnauthorized(FhirError):
    pass


class FhirNotAllowed(FhirError):
    """The request would leave the allowlisted FHIR servers."""


class FhirOverBudget(FhirError):
    """The call's deadline passed, or its answers exceed its or its worker's byte budget."""


class FhirBusy(FhirError):
    """Too many calls of this worker are waiting on this FHIR server already."""


@dataclass(frozen=True)
class FhirSettings:
    connect_timeout: float
    read_timeout: float
    max_pages: int
    max_response_bytes: int
    retries: int
    gzip: bool = False
    call_deadline: float = 8.0  # seconds for all the FHIR reads of one hook call, retries included
    max_call_bytes: int = 10_000_000  # bytes of FHIR answers one call may read
    max_worker_bytes: int = 20_000_000  # bytes of FHIR answers the calls of one worker may hold at once
    max_calls_per_server: int = 2  # calls of one worker reading from one server at once; more get 412 soon
    max_calls_per_worker: int = 6  # calls of one worker reading from any servers at once (several hanging)
    slot_wait: float = 0.5  # seconds a call waits for one of those: a burst on a healthy server passes,
    # while the threads of calls waiting on a hanging one are given back well within a second (/healthz)
    threads_per_call: int = 8  # reads of one call in parallel (a call has 8 prefetch keys)


# -- the one check for every URL the client will request -----------------------------------
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_CHARS = 8192


@dataclass(frozen=True)
class ServerBase:
    """What a URL must share with the allowlisted fhirServer: scheme, host, port and base path."""

    scheme: str
    host: str
    port: int
    path: str  # no trailing slash; '' for a server at the root
    url: str  # as requests sends it, with a trailing slash

    @classmethod
    def of(cls, base_url: str) -> ServerBase:
        """The base of an allowlisted fhirServer; FhirNotAllowed if it is no plain http(s) base URL."""
        if not isinstance(base_url, str) or _UNSAFE_CHARS.search(base_url) or _has_dot_segment(urlsplit(base_url).path):
            raise FhirNotAllowed("fhirServer is not a plain http(s) URL")
        try:
            parsed = parse_url(_prepared_url(base_url))
        except (requests.RequestException, ValueError):
            raise FhirNotAllowed("fhirServer is not a valid URL") from None
        if parsed.scheme not in DEFAULT_PORTS or not parsed.host or parsed.auth is not None or parsed.query is not None \
                or parsed.fragment is not None or _has_dot_segment(parsed.path or ""):
            raise FhirNotAllowed("fhirServer must be http(s)://host[:port]/path, without user, query or fragment")
        path = (parsed.path or "").rstrip("/")
        url = parsed._replace(path=path + "/").url
        return cls(parsed.scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS[parsed.scheme], path, url)

    def check(self, url: Any, relative_to: str | None = None) -> str:
        """The absolute URL to request, as requests will send it, if it stays on this server under its
        base path; FhirNotAllowed otherwise. Relative URLs are resolved against relative_to (default:
        the base). Anything odd is refused rather than interpreted: userinfo, a scheme-relative URL,
        backslashes, whitespace or control characters, '.' or '..' path segments (also percent-encoded),
        encoded slashes in the path."""
        if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
            raise FhirNotAllowed("URL refused: not a string of reasonable length")
        if _CONTROL_CHARS.search(url) or url != url.strip() or "\\" in url.split("?", 1)[0]:
            # A backslash is a path separator to some parsers (WHATWG); in the query it is
            # FHIR's search escape (a comma inside a value), and stays.
            raise FhirNotAllowed("URL refused: a control character, surrounding space, or a backslash before the query")
        if url.startswith("//"):
            raise FhirNotAllowed("URL refused: scheme-relative")
        joined = urljoin(relative_to or self.url, url)
        if "@" in urlsplit(joined).netloc:
            raise FhirNotAllowed("URL refused: user information in the URL")
        try:
            prepared = _prepared_url(joined)
            parsed = parse_url(prepared)
        except (requests.RequestException, ValueError):
            raise FhirNotAllowed("URL refused: not a valid URL") from None
        # both parsers (the stdlib's, as used above, and urllib3's, which opens the connection) must agree
        split = urlsplit(prepared)
        if parsed.auth is not None or "@" in split.netloc:
            raise FhirNotAllowed("URL refused: user information in the URL")
        scheme = (parsed.scheme or "").lower()
        host = (parsed.host or "").lower()
        port = parsed.port or DEFAULT_PORTS.get(scheme)
        if (scheme, host, port) != (self.scheme, self.host, self.port) or (split.hostname or "") != host.strip("[]"):
            raise FhirNotAllowed(f"URL refused: {_where(scheme, host, port)} is not the fhirServer {_where(self.scheme, self.host, self.port)}")
        for path in (split.path, parsed.path or ""):
            if _has_dot_segment(path) or not (path == self.path or path.startswith(self.path + "/")):
                raise FhirNotAllowed(f"URL refused: the path is not under the fhirServer's base path {self.path or '/'}")
        return prepared


_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")  # a space is requoted as %20 like any other character


def _has_dot_segment(path: str) -> bool:
    """A '.' or '..' segment, or one a server may decode into a path separator or a dot segment
    (%2e%2e, ..%2f, ..;jsessionid); refused rather than normalized, since servers disagree."""
    for segment in path.split("/"):
        decoded = segment
        for _ in range(3):  # double encoding too
            decoded = unquote(decoded)
        if decoded.split(";", 1)[0] in (".", "..") or "/" in decoded or "\\" in decoded:
            return True
    return False


def _where(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host[:100]}:{port}"


class FhirClient:
    """Reads and searches one FHIR server with one Session."""

    def __init__(self, base_url: str, settings: FhirSettings, session: requests.Session | None = None,
                 worker_bytes: WorkerBytes | None = None, worker_calls: threading.Semaphore | None = None):
        self.base = ServerBase.of(base_url.rstrip("/") + "/")
        self.base_url = self.base.url
        self.settings = settings
        self.session = session or self._new_session(settings)
        self._headers = dict(self.session.headers)  # sent with every read, the token added per call
        self.worker_bytes = worker_bytes or WorkerBytes(settings.max_worker_bytes)
        # This server's own threads, enough for every call it may have at once: a call never
        # waits for a thread that another server's (or another call's) reads are holding.
        self.executor = ThreadPoolExecutor(max_workers=settings.max_calls_per_server * settings.threads_per_call,
                                           thread_name_prefix="fhir")
        self._calls = threading.BoundedSemaphore(settings.max_calls_per_server)
        self._worker_calls = worker_calls or threading.BoundedSemaphore(settings.max_calls_per_worker)

    def budget(self) -> CallBudget:
        return CallBudget(self.settings.call_deadline, self.settings.max_call_bytes, self.worker_bytes)

    @contextmanager
    def call_slot(self, budget: CallBudget) -> Iterator[None]:
        """A turn to read from this server, or FhirBusy after a short wait: a hanging server
        holds at most max_calls_per_server request threads of a worker for long, and hanging
        servers together at most max_calls_per_worker; the other threads stay free for other
        servers' calls and /healthz."""
        until = time.monotonic() + min(self.settings.slot_wait, budget.left())
        if not self._calls.acquire(timeout=until - time.monotonic()):
            raise FhirBusy(f"{self.settings.max_calls_per_server} calls of this worker are reading from this FHIR "
                           "server already (RPL_FHIR_MAX_CALLS_PER_SERVER)")
        try:
            if not self._worker_calls.acquire(timeout=max(0.0, until - time.monotonic())):
                raise FhirBusy(f"{self.settings.max_calls_per_worker} calls of this worker are reading from FHIR "
                               "servers already (RPL_FHIR_MAX_CALLS_PER_WORKER)")
            try:
                yield
            finally:
                self._worker_calls.release()
        finally:
            self._calls.release()

    @staticmethod
    def _new_session(settings: FhirSettings) -> requests.Session:
        session = requests.Session()
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.1,
            raise_on_status=False,
            redirect=0,
            respect_retry_after_header=False,  # 'Retry-After: 120' would sleep through the call's deadline
        )
        adapter = WatchedAdapter(max_retries=retry, pool_maxsize=settings.max_calls_per_server * settings.threads_per_call)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["Accept"] = FHIR_JSON
        # requests asks for gzip by default; a FHIR server next to the service then spends more
        # time compressing than the network saves (about 4 ms of a 10 ms search of 48 kB, issue #7).
        session.headers["Accept-Encoding"] = "gzip, deflate" if settings.gzip else "identity"
        session.trust_env = False  # no proxy or netrc credentials picked up from the host
        # The Session serves every user of the service: a cookie the FHIR server set for one
        # call (a login session bound to that user's token, say) must never go out with
        # another user's call, or with a call that has no token. _get sends through the
        # adapter, which never touches the jar; the jar refuses cookies all the same, should
        # anyone send through the Session again.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        return session

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    # -- the two interactions prefetch templates use --------------------------------
    def read(self, relative: str, token: str | None, budget: CallBudget | None = None) -> dict[str, Any] | None:
        """GET [base]/Type/id; None when the server says 404/410."""
        return self._get(relative, token, missing_ok=True, budget=budget or self.budget())

    def search(self, relative: str, token: str | None, budget: CallBudget | None = None) -> dict[str, Any]:
        """GET [base]/Type?params, following 'next' links up to the page cap;
        returns one searchset Bundle with every entry."""
        budget = budget or self.budget()
        url: str | None = relative
        entries: list[Any] = []
        for page in range(self.settings.max_pages):
            bundle = self._get(url, token, missing_ok=False, budget=budget)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise FhirError(f"search {relative.split('?')[0]} did not return a Bundle")
            entries.extend(bundle.get("entry") or [])
            url = _next_link(bundle)  # checked in _get like every URL, before anything is sent
            if url is None:
                return {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        raise FhirError(f"search {relative.split('?')[0]} has more than {self.settings.max_pages} pages")

    # -- one GET, with the safety checks -----------------------------------------------
    def _get(self, url: Any, token: str | None, missing_ok: bool, budget: CallBudget,
             relative_to: str | None = None) -> dict[str, Any] | None:
        """GET one URL: a template's relative URL, a 'next' link of a Bundle (from the request's
        prefetch or from the server) or a redirect's Location. Whatever its source, the URL is
        checked against the server's base (ServerBase.check) before a byte is sent; the token
        goes nowhere else. The call's budget bounds the time (the connection is cut at the
        deadline) and the bytes."""
        headers = {**self._headers, "Authorization": f"Bearer {token}"} if token else self._headers
        for _ in range(MAX_REDIRECTS + 1):
            url = self.base.check(url, relative_to)
            try:
                with reading_for(budget):
                    left = budget.check_time()
                    # Straight to the Session's transport adapter (its pool, retries and TLS
                    # verification): what Session.get adds around it (merging settings from the
                    # environment, cookies, hooks, following redirects) is nothing this client
                    # uses, and cost a third of the client's CPU per read: 8 reads a call (issue #7).
                    request = _get_request(url, headers)
                    response = self.session.get_adapter(url).send(
                        request,
                        stream=True,
                        timeout=(min(self.settings.connect_timeout, left), min(self.settings.read_timeout, left)),
                    )
                    try:
                        if response.is_redirect:
                            url, relative_to = response.headers.get("Location", ""), url  # checked at the loop's top
                            continue
                        return self._body(response, missing_ok, budget)
                    finally:
                        detach_now()  # before close() gives the connection back to the pool
                        response.close()
            except BudgetExceeded as exc:
                raise FhirOverBudget(str(exc)) from None
            except (requests.RequestException, FhirError) as exc:
                if budget.left() <= 0:  # the cut connection made the read fail, whatever the error says
                    raise FhirOverBudget(f"the call's deadline of {budget.seconds:g} s passed") from None
                if isinstance(exc, FhirError):
                    raise
                raise FhirError(f"FHIR server not reachable ({type(exc).__name__})") from None
        raise FhirError("too many redirects from the FHIR server")

    def _body(self, response: requests.Response, missing_ok: bool, budget: CallBudget) -> dict[str, Any] | None:
        status = response.status_code
        if status in (401, 403):
            raise FhirUnauthorized(f"the FHIR server refused access (HTTP {status})")
        if status in (404, 410) and missing_ok:
            return None
        if status >= 400:
            raise FhirError(f"the FHIR server answered HTTP {status}")
        limit = self.settings.max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FhirError("the FHIR response is larger than allowed")
        # The bytes count against the call's and the worker's budget until the call ends (the
        # parsed answer lives as long), or until this read fails. A declared length is taken
        # whole before reading: concurrent calls that each got part of the worker's budget
        # would otherwise all fail, where some can finish.
        taken = int(declared) if declared and declared.isdigit() else 0
        budget.take(taken)
        body = bytearray()
        try:
            for chunk in response.iter_content(chunk_size=65536):
                body.extend(chunk)
                if len(body) > limit:
                    raise FhirError("the FHIR response is larger than allowed")
                if len(body) > taken:
                    budget.take(len(body) - taken)
                    taken = len(body)
            try:
                data = orjson.loads(body)  # strict JSON: no NaN or Infinity
            except (ValueError, UnicodeDecodeError):
                raise FhirError("the FHIR server did not return JSON") from None
            if not isinstance(data, dict):
                raise FhirError("the FHIR server did not return a resource")
        except BaseException:
            # Freed now: the traceback keeps this frame, and with it the buffer, alive in a
            # reference cycle until the cyclic collector runs, which tune_gc makes rare.
            body.clear()
            budget.give(taken)
            raise
        return data


def _get_request(url: str, headers: dict[str, str]) -> requests.PreparedRequest:
    """A GET as PreparedRequest.prepare makes it, with the URL prepared once per URL: the same
    searches go out at every call (the prefetch templates of each patient), and prepare()
    spent about 0.1 ms per read parsing the URL and headers again, in series with the other
    reads of the call, before any of them was sent (issue #7)."""
    for header in headers.items():  # as prepare() does: a token with a line break is refused
        check_header_validity(header)
    request = requests.PreparedRequest()
    request.method = "GET"
    request.url = _prepared_url(url)
    request.headers = CaseInsensitiveDict(headers)
    request.body = None
    return request


def _prepared_url(url: str) -> str:
    """The URL as requests sends it (IDNA host, percent-encoding requoted); raises as prepare() does.
    Memoized up to a length: URLs from a caller's Bundle links must not fill the memo (4 MB at most)."""
    return _prepared_url_memo(url) if len(url) <= 1024 else _prepare_url(url)


@lru_cache(maxsize=4096)
def _prepared_url_memo(url: str) -> str:
    return _prepare_url(url)


def _prepare_url(url: str) -> str:
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request.url


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


class FhirClients:
    """One FhirClient (Session, threads) per allowlisted FHIR server, shared by the worker's threads,
    and the worker's byte budget that all their calls share."""

    MAX_SERVERS = 64  # with '*' (development only) every fhirServer gets a client: not without end

    def __init__(self, allowlist: tuple[str, ...], settings: FhirSettings):
        self._allow_any = "*" in allowlist
        self._allowlist = tuple(u.rstrip("/") for u in allowlist if u != "*")
        self._settings = settings
        self._clients: dict[str, FhirClient] = {}
        self._lock = threading.Lock()
        self.worker_bytes = WorkerBytes(settings.max_worker_bytes)
        self._worker_calls = threading.BoundedSemaphore(settings.max_calls_per_worker)

    def allowed(self, base_url: str) -> bool:
        return self._allow_any or base_url.rstrip("/") in self._allowlist

    def budget(self) -> CallBudget:
        """A new call's deadline and byte budget (starting now)."""
        return CallBudget(self._settings.call_deadline, self._settings.max_call_bytes, self.worker_bytes)

    def for_server(self, base_url: str) -> FhirClient:
        base_url = base_url.rstrip("/")
        if not self.allowed(base_url):
            raise FhirNotAllowed(f"fhirServer {base_url[:200]} is not on this service's allowlist (RPL_FHIR_SERVER_ALLOWLIST)")
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                if len(self._clients) >= self.MAX_SERVERS:
                    raise FhirNotAllowed(f"more than {self.MAX_SERVERS} different fhirServers in this worker")
                client = self._clients[base_url] = FhirClient(base_url, self._settings, worker_bytes=self.worker_bytes,
                                                              worker_calls=self._worker_calls)
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
