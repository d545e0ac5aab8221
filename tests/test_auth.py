"""JWT authentication of the CDS client (CDS Hooks 2.0, "Trusting CDS Clients"):
one test per attack, the key sources (pinned, jku on the allowlist, jwks_url), the
settings, and the replay cache in-process and on a real Redis shared by two apps."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import redis
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service import create_app
from service.config import ConfigError, load_settings
from service.replay import MemoryReplayCache
from tests.builders import hook_request
from tests.conftest import TODAY, make_settings
from tests.servers import redis_server

ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
OTHER_ISS = "https://other-ehr.example.net"
OTHER_JKU = "https://other-ehr.example.net/jwks"
ROOT = "http://localhost"  # the Flask test client's URL root: the default aud base
DISCOVERY = "/cds-services"
SERVICE = "/cds-services/rpl-patient-view"
FEEDBACK = "/cds-services/rpl-patient-view/feedback"
DROP = object()  # a claim or header to leave out


# -- keys and tokens -----------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key, kid: str, alg: str) -> dict:
    algorithm = jwt.algorithms.ECAlgorithm if isinstance(private_key, ec.EllipticCurvePrivateKey) else jwt.algorithms.RSAAlgorithm
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


@dataclass
class Keys:
    ec: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP384R1()))
    rsa: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    attacker: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP384R1()))

    def jwks(self) -> dict:
        return {"keys": [public_jwk(self.ec, "ec-1", "ES384"), public_jwk(self.rsa, "rsa-1", "RS384")]}


KEYS = Keys()  # generated once: RSA key generation is slow


def claims(path: str, **changes: Any) -> dict:
    now = int(time.time())
    payload = {"iss": ISS, "aud": ROOT + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not DROP}


def token(path: str = DISCOVERY, *, key=None, alg: str = "ES384", kid: Any = "ec-1", headers: dict | None = None, **changes: Any) -> str:
    """A CDS client's JWT for a call of path (changes: claims to alter, DROP to leave out)."""
    header = {"typ": "JWT", "kid": kid, **(headers or {})}
    header = {k: v for k, v in header.items() if v is not DROP}
    key = key if key is not None else (KEYS.rsa if alg.startswith(("RS", "PS")) else KEYS.ec)
    return jwt.encode(claims(path, **changes), key, algorithm=alg, headers=header)


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


# -- apps -------------------------------------------------------------------------------------
def issuer(**changes: Any) -> dict:
    config = {"iss": ISS, "jwks": KEYS.jwks()}
    config.update(changes)
    return {k: v for k, v in config.items() if v is not DROP}


def auth_settings(tmp_path, issuers: list[dict] | None = None, **overrides: Any):
    return make_settings(tmp_path, auth_enabled=True, auth_issuers=issuers if issuers is not None else [issuer()], **overrides)


def new_app(settings):
    counter = itertools.count(1)
    return create_app(settings, today=lambda: TODAY, new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}")


def close(app) -> None:
    app.extensions["rpl"].close()
    if app.extensions.get("rpl_auth") is not None:
        app.extensions["rpl_auth"].close()


@pytest.fixture
def make_app(tmp_path):
    """Apps with authentication on (pinned keys of ISS unless told otherwise), closed at the end."""
    apps = []

    def build(issuers: list[dict] | None = None, **overrides: Any):
        app = new_app(auth_settings(tmp_path, issuers, **overrides))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        close(app)


@pytest.fixture
def authed(make_app):
    return make_app()


FEEDBACK_BODY = {"feedback": [{"card": "00000000-0000-4000-8000-000000000001", "outcome": "overridden",
                               "outcomeTimestamp": "2026-11-23T10:00:00Z"}]}


def call(client, path: str, jwt_token: str | None, **kwargs):
    headers = bearer(jwt_token) if jwt_token is not None else {}
    if path == DISCOVERY:
        return client.get(path, headers=headers, **kwargs)
    body = FEEDBACK_BODY if path.endswith("/feedback") else hook_request("patient-view")
    return client.post(path, json=body, headers=headers, **kwargs)


def assert_refused(response) -> None:
    """A bare 401: WWW-Authenticate: Bearer and a minimal body that gives no reason."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["issue"][0]["diagnostics"] == "authentication required"


# -- the happy path ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_valid_token_opens_every_endpoint(authed, path, alg):
    r = call(authed, path, token(path, alg=alg, kid="ec-1" if alg == "ES384" else "rsa-1"))
    assert r.status_code == 200, r.get_data(as_text=True)


def test_aud_may_be_an_array_holding_the_endpoint_url(authed):
    assert call(authed, DISCOVERY, token(aud=["https://elsewhere.example.org/x", ROOT + DISCOVERY])).status_code == 200


def test_aud_is_the_public_base_url_behind_a_proxy(make_app):
    client = make_app(public_base_url="https://cds.example.org/rpl/")
    assert call(client, SERVICE, token(SERVICE, aud="https://cds.example.org/rpl" + SERVICE)).status_code == 200
    assert_refused(call(client, SERVICE, token(SERVICE)))  # the internal URL is not the audience


def test_small_clock_differences_are_tolerated(authed):
    now = int(time.time())
    assert call(authed, DISCOVERY, token(exp=now - 30, iat=now - 330)).status_code == 200  # expired 30 s ago, skew 60
    assert call(authed, DISCOVERY, token(iat=now + 30, exp=now + 330)).status_code == 200  # clock 30 s ahead


def test_health_and_cors_preflight_need_no_token(authed):
    assert authed.get("/healthz").status_code == 200
    assert authed.get("/readyz").status_code == 200
    r = authed.options(SERVICE, headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
                                          "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status_code == 200
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()


def test_401_carries_cors_headers_so_a_browser_client_sees_it(authed):
    r = authed.get(DISCOVERY, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert_refused(r)
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_unknown_service_needs_a_token_before_it_is_404(authed):
    assert_refused(authed.post("/cds-services/nope", json={}))
    path = "/cds-services/nope"
    assert authed.post(path, json={}, headers=bearer(token(path))).status_code == 404


# -- attacks: each one is a bare 401, the reason only in the log ------------------------------------
def _unsigned() -> str:
    head, payload, _ = token().split(".")
    return f"{head}.{payload}."


def _alg_none() -> str:
    return jwt.encode(claims(DISCOVERY), None, algorithm="none", headers={"kid": "ec-1", "typ": "JWT"})


def _hs256_with_public_key() -> str:
    """The classic key-confusion attack: HMAC keyed with the (public) verification key."""
    secret = KEYS.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(claims(DISCOVERY)).encode())
    signature = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{_b64(signature)}"


def _tampered() -> str:
    head, payload, signature = token().split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["exp"] += 3600
    return f"{head}.{_b64(json.dumps(data).encode())}.{signature}"


def _now() -> int:
    return int(time.time())


ATTACKS = {
    "unsigned token": _unsigned,
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "tampered payload": _tampered,
    "wrong aud": lambda: token(aud="https://other-service.example.org/cds-services"),
    "aud of another endpoint": lambda: token(aud=ROOT + SERVICE),
    "no aud": lambda: token(aud=DROP),
    "expired": lambda: token(exp=_now() - 120, iat=_now() - 420),
    "iat in the future": lambda: token(iat=_now() + 300, exp=_now() + 600),
    "nbf in the future": lambda: token(nbf=_now() + 300),
    "lifetime longer than allowed": lambda: token(exp=_now() + 7200),
    "exp not a number": lambda: token(exp="tomorrow"),
    "no exp": lambda: token(exp=DROP),
    "no iat": lambda: token(iat=DROP),
    "no jti": lambda: token(jti=DROP),
    "empty jti": lambda: token(jti=""),
    "unknown iss": lambda: token(iss="https://evil.example.com"),
    "no iss": lambda: token(iss=DROP),
    "signed by another key under a trusted kid": lambda: token(key=KEYS.attacker),
    "unknown kid": lambda: token(kid="nope"),
    "no kid": lambda: token(kid=DROP),
    "typ not JWT": lambda: token(headers={"typ": "at+jwt"}),
    "RSA signature under the EC key's kid": lambda: token(alg="RS384", kid="ec-1"),
    "algorithm not allowed (ES256)": lambda: token(key=ec.generate_private_key(ec.SECP256R1()), alg="ES256"),
    "garbage": lambda: "not-a-jwt",
    "three dots of garbage": lambda: "a.b.c",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused(authed, attack, caplog):
    with caplog.at_level("WARNING", logger="rpl_cds.auth"):
        assert_refused(call(authed, DISCOVERY, ATTACKS[attack]()))
    assert any(r.name == "rpl_cds.auth" and r.audit.get("reason") for r in caplog.records)


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer  ", "Bearer a b", "bearer"])
def test_missing_or_malformed_authorization_is_refused(authed, header):
    headers = {} if header is None else {"Authorization": header}
    assert_refused(authed.get(DISCOVERY, headers=headers))


def test_the_reason_is_logged_not_answered(authed, caplog):
    with caplog.at_level("WARNING", logger="rpl_cds.auth"):
        r = call(authed, DISCOVERY, token(aud="https://other.example.org/cds-services"))
    assert_refused(r)
    assert "audience" not in r.get_data(as_text=True).lower()
    assert any("audience" in r.audit["reason"].lower() for r in caplog.records if r.name == "rpl_cds.auth")


def test_a_replayed_jti_is_refused(authed):
    jwt_token = token()
    assert call(authed, DISCOVERY, jwt_token).status_code == 200
    assert_refused(call(authed, DISCOVERY, jwt_token))
    same_jti = token(jti=jwt.decode(jwt_token, options={"verify_signature": False})["jti"])
    assert_refused(call(authed, DISCOVERY, same_jti))  # a new signature does not make the jti new


def test_a_refused_token_does_not_use_up_its_jti(authed):
    jti = str(uuid.uuid4())
    assert_refused(call(authed, DISCOVERY, token(jti=jti, aud="https://other.example.org")))
    assert call(authed, DISCOVERY, token(jti=jti)).status_code == 200


def test_a_weak_rsa_key_is_refused(make_app):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    client = make_app([issuer(jwks={"keys": [public_jwk(weak, "weak", "RS384")]})])
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):  # PyJWT warns the signer too
        weak_token = token(key=weak, alg="RS384", kid="weak")
    assert_refused(call(client, DISCOVERY, weak_token))


def test_a_key_of_another_trusted_issuer_does_not_sign_for_this_one(make_app):
    other = ec.generate_private_key(ec.SECP384R1())
    client = make_app([issuer(), {"iss": OTHER_ISS, "jwks": {"keys": [public_jwk(other, "other-1", "ES384")]}}])
    assert call(client, DISCOVERY, token(key=other, kid="other-1", iss=OTHER_ISS)).status_code == 200
    assert_refused(call(client, DISCOVERY, token(key=other, kid="other-1")))  # claims iss ISS


def test_tenant_allowlist(make_app):
    client = make_app([issuer(tenants=["hospital-a"])])
    assert call(client, DISCOVERY, token(tenant="hospital-a")).status_code == 200
    assert_refused(call(client, DISCOVERY, token(tenant="hospital-b")))
    assert_refused(call(client, DISCOVERY, token()))


def test_other_algorithms_only_by_explicit_setting(make_app):
    p256 = ec.generate_private_key(ec.SECP256R1())
    client = make_app([issuer(jwks={"keys": [public_jwk(p256, "p256", "ES256")]})], auth_algorithms="ES256")
    assert call(client, DISCOVERY, token(key=p256, alg="ES256", kid="p256")).status_code == 200


# -- JWK Sets from URLs: jku on the allowlist, jwks_url ---------------------------------------------
@pytest.fixture
def jku_client(make_app):
    return make_app([issuer(jwks=DROP, jku_allowlist=[JKU])])


@responses.activate
def test_jku_on_the_allowlist_is_fetched_once_and_cached(jku_client):
    responses.add(responses.GET, JKU, json=KEYS.jwks())
    for _ in range(3):
        assert call(jku_client, DISCOVERY, token(headers={"jku": JKU})).status_code == 200
    assert len(responses.calls) == 1


@responses.activate
def test_jwks_cache_expires(make_app):
    client = make_app([issuer(jwks=DROP, jku_allowlist=[JKU])], auth_jwks_cache_seconds=0)
    responses.add(responses.GET, JKU, json=KEYS.jwks())
    for _ in range(2):
        assert call(client, DISCOVERY, token(headers={"jku": JKU})).status_code == 200
    assert len(responses.calls) == 2


@responses.activate
def test_an_outage_of_the_key_server_keeps_the_cached_keys(make_app, caplog):
    client = make_app([issuer(jwks=DROP, jku_allowlist=[JKU])], auth_jwks_cache_seconds=0)
    responses.add(responses.GET, JKU, json=KEYS.jwks())
    assert call(client, DISCOVERY, token(headers={"jku": JKU})).status_code == 200
    responses.replace(responses.GET, JKU, status=503)
    with caplog.at_level("WARNING", logger="rpl_cds.auth"):
        assert call(client, DISCOVERY, token(headers={"jku": JKU})).status_code == 200
        assert call(client, DISCOVERY, token(headers={"jku": JKU})).status_code == 200
    assert len(responses.calls) == 2  # one failed refresh, then a pause before the next try
    assert "not refreshed" in caplog.text


@responses.activate
def test_a_new_kid_refetches_the_jwks_but_not_too_often():
    from service.auth import JwksFetcher

    now = [0.0]
    fetcher = JwksFetcher(timeout=1, ttl=300, clock=lambda: now[0])
    responses.add(responses.GET, JKU, json={"keys": [public_jwk(KEYS.ec, "ec-1", "ES384")]})
    assert fetcher.key(JKU, "ec-1") is not None
    assert fetcher.key(JKU, "rsa-1") is None  # unknown, but the set was fetched just now
    now[0] = 31.0
    responses.replace(responses.GET, JKU, json=KEYS.jwks())  # the client added a key
    assert fetcher.key(JKU, "rsa-1") is not None
    assert len(responses.calls) == 2
    fetcher.close()


@responses.activate
def test_jku_not_on_the_allowlist_is_never_fetched(jku_client):
    evil = "https://evil.example.com/jwks.json"
    responses.add(responses.GET, evil, json={"keys": [public_jwk(KEYS.attacker, "ec-1", "ES384")]})
    assert_refused(call(jku_client, DISCOVERY, token(key=KEYS.attacker, headers={"jku": evil})))
    assert len(responses.calls) == 0


@responses.activate
def test_an_unlisted_jku_does_not_replace_pinned_keys(authed):
    evil = "https://evil.example.com/jwks.json"
    responses.add(responses.GET, evil, json={"keys": [public_jwk(KEYS.attacker, "ec-1", "ES384")]})
    assert_refused(call(authed, DISCOVERY, token(key=KEYS.attacker, headers={"jku": evil})))
    assert call(authed, DISCOVERY, token(headers={"jku": evil})).status_code == 200  # the pinned key verifies
    assert len(responses.calls) == 0


@responses.activate
def test_jku_redirect_is_not_followed(jku_client):
    responses.add(responses.GET, JKU, status=302, headers={"Location": "https://evil.example.com/jwks.json"})
    assert_refused(call(jku_client, DISCOVERY, token(headers={"jku": JKU})))
    assert [c.request.url for c in responses.calls] == [JKU]


@pytest.mark.parametrize("answer", [
    {"status": 500, "json": {}},
    {"body": "not json"},
    {"json": {"no": "keys"}},
    {"json": {"keys": [{"kid": "ec-1", "kty": "oct", "k": "c2VjcmV0"}]}},
    {"body": json.dumps({"keys": [], "padding": "x" * 100_000})},
])
@responses.activate
def test_an_unusable_jwks_is_refused(jku_client, answer):
    responses.add(responses.GET, JKU, **answer)
    assert_refused(call(jku_client, DISCOVERY, token(headers={"jku": JKU})))


@responses.activate
def test_an_unreachable_jwks_is_refused(jku_client):
    import requests

    responses.add(responses.GET, JKU, body=requests.ConnectTimeout("slow"))
    assert_refused(call(jku_client, DISCOVERY, token(headers={"jku": JKU})))


@responses.activate
def test_a_configured_jwks_url_is_used_without_jku(make_app):
    client = make_app([issuer(jwks=DROP, jwks_url="https://ehr.example.org/keys")])
    responses.add(responses.GET, "https://ehr.example.org/keys", json=KEYS.jwks())
    assert call(client, DISCOVERY, token()).status_code == 200


def test_a_jwks_file_is_read_at_start(make_app, tmp_path):
    path = tmp_path / "ehr-jwks.json"
    path.write_text(json.dumps(KEYS.jwks()))
    client = make_app([issuer(jwks=DROP, jwks_file=str(path))])
    assert call(client, DISCOVERY, token()).status_code == 200


# -- settings ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,message", [
    ({"auth_algorithms": "ES384,HS256"}, "HS256 is not allowed"),
    ({"auth_algorithms": "none"}, "none is not allowed"),
    ({"auth_algorithms": "XY999"}, "not a known asymmetric"),
    ({"auth_issuers": "[{"}, "RPL_AUTH_ISSUERS: not valid JSON"),
    ({"auth_issuers": [{"iss": ISS}]}, "needs jku_allowlist, jwks_url, jwks or jwks_file"),
    ({"auth_issuers": [{"iss": ISS, "jku_allowlist": ["http://ehr.example.org/jwks"]}]}, "is not an https URL"),
    ({"auth_issuers": [{"iss": ISS, "jwks": {"keys": [{"kid": "k", "kty": "oct", "k": "c2VjcmV0"}]}}]}, "no shared-secret keys"),
    ({"auth_issuers": [issuer(), issuer()]}, "configured twice"),
    ({"auth_issuers_file": "/nonexistent/issuers.json"}, "RPL_AUTH_ISSUERS_FILE: cannot read"),
    ({"replay_cache_url": "memcached://x"}, "RPL_REPLAY_CACHE_URL"),
    ({}, "no issuer is trusted"),
])
def test_bad_auth_settings_stop_the_start_with_a_readable_message(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_settings(database_url="sqlite://", **overrides)
    assert message in str(info.value)


def test_a_private_key_in_a_configured_jwks_is_refused():
    private = jwt.algorithms.ECAlgorithm.to_jwk(KEYS.ec, as_dict=True) | {"kid": "k"}
    with pytest.raises(ConfigError, match="private key"):
        load_settings(auth_issuers=[{"iss": ISS, "jwks": {"keys": [private]}}])


def test_auth_settings_from_the_environment(monkeypatch, tmp_path):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": OTHER_ISS, "jku_allowlist": [OTHER_JKU]}]))
    monkeypatch.setenv("RPL_AUTH_ISSUERS", json.dumps([{"iss": ISS, "jku_allowlist": [JKU], "tenants": ["t1"]}]))
    monkeypatch.setenv("RPL_AUTH_ISSUERS_FILE", str(path))
    monkeypatch.setenv("RPL_AUTH_ALGORITHMS", "ES384, PS384")
    settings = load_settings()
    assert [i.iss for i in settings.trusted_issuers] == [ISS, OTHER_ISS]
    assert settings.trusted_issuers[0].tenants == ("t1",)
    assert settings.auth_algorithms == ("ES384", "PS384")
    assert settings.auth_enabled and settings.replay_cache_url == ""


def test_disabled_auth_warns_at_every_start(tmp_path, caplog):
    for _ in range(2):
        with caplog.at_level("WARNING", logger="rpl_cds.auth"):
            app = new_app(make_settings(tmp_path, auth_enabled=False))
        close(app)
        assert app.test_client().get(DISCOVERY).status_code == 200
    warnings = [r for r in caplog.records if r.name == "rpl_cds.auth" and r.levelname == "WARNING"]
    assert len(warnings) == 2 and "RPL_AUTH_ENABLED=false" in warnings[0].getMessage()


# -- replay cache ---------------------------------------------------------------------------------
def test_memory_replay_cache_forgets_after_the_ttl():
    now = [1000.0]
    cache = MemoryReplayCache(clock=lambda: now[0])
    assert cache.first_use(ISS, "a", 60)
    assert not cache.first_use(ISS, "a", 60)
    assert cache.first_use(OTHER_ISS, "a", 60)  # jti is unique per issuer
    now[0] += 61
    assert cache.first_use(ISS, "b", 60) and len(cache) == 1  # expired keys are dropped
    assert cache.first_use(ISS, "a", 60)


def test_memory_replay_cache_is_thread_safe():
    cache = MemoryReplayCache()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: cache.first_use(ISS, "same", 60), range(200)))
    assert results.count(True) == 1


def test_an_unreachable_redis_is_503_not_a_pass(make_app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    client = make_app(replay_cache_url=f"redis://127.0.0.1:{port}/0")
    r = call(client, DISCOVERY, token())
    assert r.status_code == 503
    assert r.get_json()["resourceType"] == "OperationOutcome"


@pytest.fixture(scope="module")
def redis_url():
    """A real, throw-away Redis server on a free port, for this module's tests."""
    with redis_server() as server:
        yield server.url


def test_two_apps_sharing_redis_refuse_the_second_use_of_a_jti(make_app, redis_url):
    first, second = make_app(replay_cache_url=redis_url), make_app(replay_cache_url=redis_url)
    jwt_token = token()
    assert call(first, DISCOVERY, jwt_token).status_code == 200
    assert_refused(call(second, DISCOVERY, jwt_token))
    assert_refused(call(first, DISCOVERY, jwt_token))
    fresh = token()
    assert call(second, DISCOVERY, fresh).status_code == 200
    assert_refused(call(first, DISCOVERY, fresh))


def test_redis_remembers_a_jti_until_the_token_expires(make_app, redis_url):
    client = make_app(replay_cache_url=redis_url)
    probe = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        probe.flushdb()
        assert call(client, DISCOVERY, token(exp=int(time.time()) + 120)).status_code == 200
        ttls = [probe.ttl(key) for key in probe.scan_iter("rpl-cds:jti:*")]
    finally:
        probe.close()
    assert len(ttls) == 1 and 120 < ttls[0] <= 120 + 60  # until exp + clock skew, then forgotten


def test_concurrent_replays_across_two_apps_pass_once(make_app, redis_url):
    clients = [make_app(replay_cache_url=redis_url), make_app(replay_cache_url=redis_url)]
    jwt_token = token()
    with ThreadPoolExecutor(max_workers=8) as pool:  # a test client per call: they are not thread-safe
        statuses = list(pool.map(lambda i: call(clients[i % 2].application.test_client(), DISCOVERY, jwt_token).status_code,
                                 range(24)))
    assert statuses.count(200) == 1 and statuses.count(401) == 23


def test_the_readme_sandbox_configurations_are_valid():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    security = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    jku_config = security.split("RPL_AUTH_ISSUERS='", 1)[1].split("'", 1)[0]
    pinned_config = security.split("```json", 1)[1].split("```", 1)[0]
    for config in (jku_config, pinned_config):
        (sandbox,) = load_settings(auth_issuers=config, database_url="sqlite://").trusted_issuers
        assert sandbox.iss == "https://sandbox.cds-hooks.org"
    assert sandbox.jwks["keys"][0]["kid"] == "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
