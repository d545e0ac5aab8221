"""Who is calling: the CDS client's signed JWT (CDS Hooks 2.0, "Trusting CDS Clients").

Every discovery, service and feedback call must carry ``Authorization: Bearer <jwt>``,
signed with the client's private key. The service accepts it only when

- ``alg`` is one of RPL_AUTH_ALGORITHMS (asymmetric only: never ``none``, never HMAC),
  ``typ`` is JWT and ``kid`` names a key;
- ``iss`` is a trusted issuer, and the signature checks with that issuer's key: from the
  JWK Set at the ``jku`` header URL only when that URL is on the issuer's allowlist,
  otherwise from the JWK Set configured for the issuer (inline, file or URL);
- ``aud`` is the URL of the endpoint called; ``exp``/``iat`` are valid within the clock
  skew, and the token does not live longer than RPL_AUTH_MAX_TOKEN_AGE_SECONDS;
- ``jti`` was not seen before (replay), and ``tenant`` is allowed if the issuer lists tenants.

Any failure is a 401 with ``WWW-Authenticate: Bearer`` and an OperationOutcome that says
only "authentication required"; the reason goes only to the log, and the token never does. JWK Sets are fetched with explicit timeouts, without
redirects, with a size cap, and cached per URL for RPL_AUTH_JWKS_CACHE_SECONDS.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from flask import Flask, Response, current_app, request

from .config import IssuerConfig, Settings
from .errors import error_response
from .replay import ReplayCache, build_replay_cache

log = logging.getLogger("rpl_cds.auth")

EXTENSION = "rpl_auth"
MAX_TOKEN_CHARS = 16_384
MAX_JTI_CHARS = 256
JWKS_MAX_BYTES = 65_536
JWKS_MIN_REFRESH_SECONDS = 30.0  # an unknown kid refetches a cached JWK Set at most this often
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


class AuthError(Exception):
    """The call is not authenticated; the message is for the log only."""


@dataclass(frozen=True)
class Client:
    iss: str
    tenant: str | None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _keys_by_kid(jwks: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise AuthError("the JWK Set has no 'keys' array")
    return {k["kid"]: k for k in jwks["keys"] if isinstance(k, dict) and isinstance(k.get("kid"), str)}


class JwksFetcher:
    """JWK Sets from trusted URLs, cached per URL with a TTL."""

    def __init__(self, timeout: float, ttl: float, clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None, max_bytes: int = JWKS_MAX_BYTES):
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._max_bytes = max_bytes
        self._cache: dict[str, tuple[float, float, dict[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._session = session or requests.Session()
        self._session.trust_env = False  # no proxy or netrc credentials from the host
        self._session.headers["Accept"] = "application/jwk-set+json, application/json"

    def key(self, url: str, kid: str) -> dict[str, Any] | None:
        """The key with this kid from the JWK Set at url (refetched, not too often, if the kid is new)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(url)  # (expires at, may refresh from, keys by kid)
        if cached is None or now >= cached[0] or (kid not in cached[2] and now >= cached[1]):
            try:
                cached = (now + self._ttl, now + JWKS_MIN_REFRESH_SECONDS, self._fetch(url))
            except AuthError as exc:
                if cached is None:
                    raise
                # an outage of the client's key server does not lock it out: keep its keys, retry later
                log.warning("JWK Set not refreshed, the cached one is used", extra={"audit": {"reason": str(exc)}})
                retry = now + JWKS_MIN_REFRESH_SECONDS
                cached = (retry, retry, cached[2])
            with self._lock:
                self._cache[url] = cached
        return cached[2].get(kid)

    def _fetch(self, url: str) -> dict[str, dict[str, Any]]:
        try:
            response = self._session.get(url, timeout=(self._timeout, self._timeout), allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise AuthError(f"JWK Set {url} not reachable ({type(exc).__name__})") from None
        with response:
            if response.status_code != 200:
                raise AuthError(f"JWK Set {url} answered HTTP {response.status_code} (redirects are not followed)")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=8192):
                body.extend(chunk)
                if len(body) > self._max_bytes:
                    raise AuthError(f"JWK Set {url} is larger than {self._max_bytes} bytes")
        try:
            return _keys_by_kid(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            raise AuthError(f"JWK Set {url} is not JSON") from None

    def close(self) -> None:
        self._session.close()


class Authenticator:
    """Checks one bearer JWT against the trusted issuers; no Flask in here."""

    def __init__(self, settings: Settings, replay: ReplayCache, jwks: JwksFetcher,
                 clock: Callable[[], float] = time.time):
        self._issuers = {issuer.iss: issuer for issuer in settings.trusted_issuers}
        self._pinned = {i.iss: _keys_by_kid(i.jwks) for i in settings.trusted_issuers if i.jwks}
        self._algorithms = tuple(settings.auth_algorithms)
        self._skew = settings.auth_clock_skew_seconds
        self._max_age = settings.auth_max_token_age_seconds
        self.replay = replay
        self.jwks = jwks
        self._clock = clock

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed JWT ({type(exc).__name__})") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._algorithms:
            raise AuthError(f"alg {_short(alg)} is not allowed (RPL_AUTH_ALGORITHMS)")
        if not isinstance(header.get("typ"), str) or header["typ"].upper() != "JWT":
            raise AuthError("typ header must be JWT")
        if not isinstance(kid, str) or not kid:
            raise AuthError("kid header missing")
        issuer = self._issuers.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            raise AuthError(f"iss {_short(unverified.get('iss'))} is not a trusted issuer")
        claims = self._verified_claims(token, alg, self._key(issuer, header.get("jku"), kid, alg), issuer, audience)
        now = self._clock()
        self._check_times(claims, now)
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            raise AuthError("jti must be a non-empty string")
        tenant = claims.get("tenant")
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise AuthError(f"tenant {_short(tenant)} is not allowed for {issuer.iss}")
        ttl = math.ceil(claims["exp"] + self._skew - now)
        if not self.replay.first_use(issuer.iss, jti, ttl):
            raise AuthError("jti already used: replayed token")
        return Client(iss=issuer.iss, tenant=tenant if isinstance(tenant, str) else None)

    def _key(self, issuer: IssuerConfig, jku: Any, kid: str, alg: str) -> dict[str, Any]:
        if jku is not None and not isinstance(jku, str):
            raise AuthError("jku header must be a URL")
        if jku is not None and jku in issuer.jku_allowlist:
            key = self.jwks.key(jku, kid)
        elif issuer.iss in self._pinned:
            key = self._pinned[issuer.iss].get(kid)
        elif issuer.jwks_url:
            key = self.jwks.key(issuer.jwks_url, kid)
        elif jku is not None:
            raise AuthError(f"jku {_short(jku)} is not on the allowlist of {issuer.iss}; not fetched")
        else:
            raise AuthError(f"no jku header and no JWK Set configured for {issuer.iss}")
        if key is None:
            raise AuthError(f"kid {_short(kid)} is not in the JWK Set of {issuer.iss}")
        if key.get("kty") not in ("EC", "RSA", "OKP"):
            raise AuthError(f"key {_short(kid)} is not an asymmetric key")
        if key.get("use", "sig") != "sig" or key.get("alg", alg) != alg:
            raise AuthError(f"key {_short(kid)} is not for signing with {alg}")
        return key

    def _verified_claims(self, token: str, alg: str, key: dict[str, Any], issuer: IssuerConfig, audience: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                jwt.PyJWK(key, algorithm=alg),
                algorithms=[alg],
                audience=audience,
                issuer=issuer.iss,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False,
                         "verify_nbf": False, "enforce_minimum_key_length": True},  # times: _check_times
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # ValueError: a key that is no valid point/number
            raise AuthError(f"JWT refused: {type(exc).__name__}: {_short(str(exc))}") from None

    def _check_times(self, claims: dict[str, Any], now: float) -> None:
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AuthError(f"{name} must be a number of seconds")
        exp, iat = claims["exp"], claims["iat"]
        if now > exp + self._skew:
            raise AuthError("token expired (exp)")
        if iat > now + self._skew:
            raise AuthError("token issued in the future (iat)")
        if "nbf" in claims and claims["nbf"] > now + self._skew:
            raise AuthError("token not yet valid (nbf)")
        if exp <= iat or exp - iat > self._max_age:
            raise AuthError(f"token lifetime exp - iat must be between 0 and {self._max_age} s")

    def close(self) -> None:
        self.jwks.close()
        self.replay.close()


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthError("Authorization is not 'Bearer <jwt>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError("token too long")
    return token


# -- Flask ------------------------------------------------------------------------------
def init_app(app: Flask, settings: Settings) -> None:
    """Build the authenticator (or, in development, say loudly that there is none)."""
    if not settings.auth_enabled:
        log.warning("AUTHENTICATION IS DISABLED (RPL_AUTH_ENABLED=false): any caller can use this service; "
                    "development only, never in production")
        app.extensions[EXTENSION] = None
        return
    app.extensions[EXTENSION] = Authenticator(
        settings,
        build_replay_cache(settings.replay_cache_url, settings.database_url),
        JwksFetcher(settings.auth_jwks_timeout, settings.auth_jwks_cache_seconds),
    )


def audience(settings: Settings) -> str:
    """The URL the client called, as it sees it: RPL_PUBLIC_BASE_URL behind a proxy."""
    return (settings.public_base_url or request.url_root).rstrip("/") + request.path


def authenticate_request(settings: Settings) -> Client | None:
    """The authenticated client; None when auth is off. Raises AuthError, after logging why."""
    authenticator: Authenticator | None = current_app.extensions.get(EXTENSION)
    if authenticator is None:
        return None
    expected = audience(settings)
    try:
        return authenticator.authenticate(request.headers.get("Authorization"), expected)
    except AuthError as exc:
        # The audience is the usual mistake in a new set-up (a proxy, http vs https, a trailing
        # slash): the line says which was expected and which the token holds. Neither is secret.
        came = _claimed_audience(request.headers.get("Authorization"))
        log.warning(
            "authentication refused: %s (expected aud %s, token aud %s)", exc, expected[:300], _short(came),
            extra={"audit": {"reason": str(exc), "path": request.path[:200], "expected_aud": expected[:300],
                             "token_aud": _short(came)}},
        )
        raise


def _claimed_audience(authorization: str | None) -> Any:
    """The aud claim of a bearer token, unverified, for the log only; None when unreadable."""
    try:
        claims = jwt.decode(_bearer(authorization), options={"verify_signature": False})
    except (AuthError, jwt.PyJWTError, ValueError, TypeError):
        return None
    return claims.get("aud") if isinstance(claims, dict) else None


def unauthorized() -> Response:
    response = error_response(401, ["authentication required"])
    response.headers["WWW-Authenticate"] = "Bearer"
    return response
