"""Reading from the CDS client's FHIR server.

One ``requests.Session`` per FHIR base URL, kept for the life of the worker
(keep-alive saves a TLS handshake per call), explicit (connect, read)
timeouts on every request, retries only for idempotent reads. Every failure
becomes a ``FhirError``; the bearer token is sent per request and never logged,
and no cookie is kept, since one Session serves the calls of every user.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from urllib3.util.retry import Retry

FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 3


class FhirError(Exception):
    """The FHIR server could not give the data (message safe to show to the client)."""


class FhirUnauthorized(FhirError):
    pass


class FhirNotAllowed(FhirError):
    """The request would leave the allowlisted FHIR servers."""


@dataclass(frozen=True)
class FhirSettings:
    connect_timeout: float
    read_timeout: float
    max_pages: int
    max_response_bytes: int
    retries: int
    gzip: bool = False


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class FhirClient:
    """Reads and searches one FHIR server with one Session."""

    def __init__(self, base_url: str, settings: FhirSettings, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/") + "/"
        self.settings = settings
        self.session = session or self._new_session(settings)
        self._headers = dict(self.session.headers)  # sent with every read, the token added per call

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
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
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
        self.session.close()

    # -- the two interactions prefetch templates use --------------------------------
    def read(self, relative: str, token: str | None) -> dict[str, Any] | None:
        """GET [base]/Type/id; None when the server says 404/410."""
        return self._get(urljoin(self.base_url, relative), token, missing_ok=True)

    def search(self, relative: str, token: str | None) -> dict[str, Any]:
        """GET [base]/Type?params, following 'next' links up to the page cap;
        returns one searchset Bundle with every entry."""
        url = urljoin(self.base_url, relative)
        entries: list[Any] = []
        for page in range(self.settings.max_pages):
            bundle = self._get(url, token, missing_ok=False)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise FhirError(f"search {relative.split('?')[0]} did not return a Bundle")
            entries.extend(bundle.get("entry") or [])
            url = _next_link(bundle)
            if url is None:
                return {"resourceType": "Bundle", "type": "searchset", "entry": entries}
            if origin(url) != origin(self.base_url):
                raise FhirNotAllowed("a Bundle 'next' link points to another server")
        raise FhirError(f"search {relative.split('?')[0]} has more than {self.settings.max_pages} pages")

    # -- one GET, with the safety checks -----------------------------------------------
    def _get(self, url: str, token: str | None, missing_ok: bool) -> dict[str, Any] | None:
        headers = {**self._headers, "Authorization": f"Bearer {token}"} if token else self._headers
        for _ in range(MAX_REDIRECTS + 1):
            try:
                # Straight to the Session's transport adapter (its pool, retries and TLS
                # verification): what Session.get adds around it (merging settings from the
                # environment, cookies, hooks, following redirects) is nothing this client
                # uses, and cost a third of the client's CPU per read: 8 reads a call (issue #7).
                request = _get_request(url, headers)
                response = self.session.get_adapter(url).send(
                    request,
                    stream=True,
                    timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                )
            except requests.RequestException as exc:
                raise FhirError(f"FHIR server not reachable ({type(exc).__name__})") from None
            with response:
                if response.is_redirect:
                    target = urljoin(url, response.headers.get("Location", ""))
                    if origin(target) != origin(self.base_url):
                        raise FhirNotAllowed("the FHIR server redirected to another host; not followed")
                    url = target
                    continue
                return self._body(response, missing_ok)
        raise FhirError("too many redirects from the FHIR server")

    def _body(self, response: requests.Response, missing_ok: bool) -> dict[str, Any] | None:
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
        body = bytearray()
        for chunk in response.iter_content(chunk_size=65536):
            body.extend(chunk)
            if len(body) > limit:
                raise FhirError("the FHIR response is larger than allowed")
        try:
            data = orjson.loads(body)  # strict JSON: no NaN or Infinity
        except (ValueError, UnicodeDecodeError):
            raise FhirError("the FHIR server did not return JSON") from None
        if not isinstance(data, dict):
            raise FhirError("the FHIR server did not return a resource")
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


@lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    """The URL as requests sends it (IDNA host, percent-encoding requoted); raises as prepare() does."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request.url


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


class FhirClients:
    """One FhirClient (and Session) per allowlisted FHIR server, shared by the worker's threads."""

    def __init__(self, allowlist: tuple[str, ...], settings: FhirSettings):
        self._allow_any = "*" in allowlist
        self._allowlist = tuple(u.rstrip("/") for u in allowlist if u != "*")
        self._settings = settings
        self._clients: dict[str, FhirClient] = {}
        self._lock = threading.Lock()

    def allowed(self, base_url: str) -> bool:
        return self._allow_any or base_url.rstrip("/") in self._allowlist

    def for_server(self, base_url: str) -> FhirClient:
        base_url = base_url.rstrip("/")
        if not self.allowed(base_url):
            raise FhirNotAllowed(f"fhirServer {base_url} is not on this service's allowlist (RPL_FHIR_SERVER_ALLOWLIST)")
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                client = self._clients[base_url] = FhirClient(base_url, self._settings)
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
