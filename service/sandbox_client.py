"""A CDS client in a terminal, as the CDS Hooks sandbox does it in a browser.

``load_demo`` uploads the demo patients to a FHIR server; ``call_hook`` reads
the service's discovery, performs the prefetch itself (each template
rendered with the patient id, GET from the FHIR server), builds the hook
request (a fresh hookInstance, draftOrders and selections for the order
hooks, fhirServer and fhirAuthorization) and calls the service.

One ``requests.Session`` for everything, explicit (connect, read) timeouts on
every request, and the bearer token is never printed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from . import demo_data

FHIR_JSON = "application/fhir+json"
DEFAULT_TIMEOUT = (3.05, 30.0)  # seconds: connect, read
UPLOAD_TIMEOUT = (3.05, 120.0)  # a public server can be slow to commit a transaction
ORDER_HOOKS = ("order-select", "order-sign")
_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


class ClientError(Exception):
    """Something the tester must fix or know (message printed as is)."""


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc credentials picked up from the host
    return session


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _base(url: str) -> str:
    return url.rstrip("/") + "/"


# -- load-demo ------------------------------------------------------------------------
@dataclass
class LoadResult:
    patient_id: str
    status: int
    resources: int
    failed: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.failed


def load_demo(
    session: requests.Session,
    fhir_server: str,
    *,
    token: str | None = None,
    today: date | None = None,
    patient_ids: Iterable[str] | None = None,
    timeout: tuple[float, float] = UPLOAD_TIMEOUT,
) -> list[LoadResult]:
    """POST each demo patient's transaction Bundle to the server's base URL."""
    results = []
    for pid, bundle in demo_data.bundles(today or date.today(), patient_ids).items():
        try:
            response = session.post(
                fhir_server.rstrip("/"),
                data=json.dumps(bundle),
                headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, **_auth(token)},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach the FHIR server {fhir_server}: {exc}") from None
        results.append(_load_result(pid, len(bundle["entry"]), response))
    return results


def _load_result(pid: str, count: int, response: requests.Response) -> LoadResult:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not 200 <= response.status_code < 300:
        return LoadResult(pid, response.status_code, count, message=_outcome_text(body) or response.text[:500])
    failed = []
    if isinstance(body, Mapping) and body.get("resourceType") == "Bundle":
        for index, entry in enumerate(body.get("entry") or []):
            status = str((entry.get("response") or {}).get("status", ""))
            if not status[:1] == "2":
                failed.append(f"entry {index}: {status or 'no status'}")
    return LoadResult(pid, response.status_code, count, failed)


def _outcome_text(body: Any) -> str:
    if isinstance(body, Mapping) and body.get("resourceType") == "OperationOutcome":
        return "; ".join(
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code"))
            for i in body.get("issue") or []
        )
    return ""


def write_demo(directory: Path, today: date, patient_ids: Iterable[str] | None = None) -> list[Path]:
    """Write the demo bundles (of the patients named, or all) and the draft orders as JSON files
    (the files shipped in service/demo/)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for pid, bundle in demo_data.bundles(today, patient_ids).items():
        written.append(directory / f"{pid}.json")
        written[-1].write_text(demo_data.to_json(bundle), encoding="utf-8")
    for name, content in (
        ("draft-orders.json", demo_data.draft_bundle()),
        ("draft-progesterone.json", demo_data.draft_progesterone()),
    ):
        written.append(directory / name)
        written[-1].write_text(demo_data.to_json(content), encoding="utf-8")
    return written


# -- the CDS client's JWT ----------------------------------------------------------------
TESTER_ISS = "rpl-cds-tester"
TOKEN_LIFETIME = 300  # seconds
_CURVE_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def new_tester_key() -> bytes:
    """A new EC P-384 private key (PEM), for signing as a test CDS client with ES384."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtSigner:
    """Signs a fresh JWT for every request, as a CDS client must (CDS Hooks 2.0, "Trusting CDS
    Clients"): iss, sub, aud = the exact URL called, iat, exp 5 minutes later, a new jti;
    header kid (the key's RFC 7638 thumbprint) and typ JWT."""

    def __init__(self, private_key_pem: bytes, iss: str = TESTER_ISS):
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ClientError(f"not a usable unencrypted PEM private key: {exc}") from None
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVE_ALG:
            self.alg = _CURVE_ALG[key.curve.name]
            public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            members = ("crv", "kty", "x", "y")
        elif isinstance(key, rsa.RSAPrivateKey):
            self.alg = "RS384"
            public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            members = ("e", "kty", "n")
        else:
            raise ClientError("the key must be an EC (P-256/384/521) or RSA private key")
        canonical = json.dumps({m: public[m] for m in members}, separators=(",", ":"), sort_keys=True)
        self.kid = _b64(hashlib.sha256(canonical.encode()).digest())
        self.public_jwk = {**{m: public[m] for m in members}, "kid": self.kid, "use": "sig", "alg": self.alg}
        self.iss = iss
        self._key = key

    @classmethod
    def from_file(cls, path: Path, iss: str = TESTER_ISS) -> JwtSigner:
        try:
            return cls(path.read_bytes(), iss)
        except OSError as exc:
            raise ClientError(f"cannot read the JWT key {path}: {exc}") from None

    def issuer(self) -> dict[str, Any]:
        """This client as a trusted issuer of the service (an entry of RPL_AUTH_ISSUERS)."""
        return {"iss": self.iss, "jwks": {"keys": [self.public_jwk]}}

    def headers(self, url: str) -> dict[str, str]:
        import jwt

        now = int(time.time())
        claims = {"iss": self.iss, "sub": self.iss, "aud": url, "iat": now, "exp": now + TOKEN_LIFETIME,
                  "jti": str(uuid.uuid4())}
        token = jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})
        return {"Authorization": f"Bearer {token}"}


def _signed(signer: JwtSigner | None, url: str) -> dict[str, str]:
    return signer.headers(url) if signer else {}


def explain_401(url: str, signer: JwtSigner | None) -> str:
    """Why the service may have refused the call, as far as this client can know it. The
    service says no more than 401 (the reason is in its log), but the client knows whether it
    sent a JWT, and its iss, kid and aud; the aud is the one a tester gets wrong most often."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    if signer is None:
        return ("The service requires a signed JWT (RPL_AUTH_ENABLED is on) and none was sent. Make a key with "
                "`rpl-cds tester-key`, start the service with the RPL_AUTH_ISSUERS line it prints, and give the key "
                "with --jwt-key; or, for development only, start the service with RPL_AUTH_ENABLED=false.")
    return (
        f"The service refused the JWT signed with --jwt-key (it does not say why; its log line "
        f"'authentication refused' does). This client sent iss={signer.iss!r}, kid={signer.kid!r}, "
        f"aud={url!r}. The service accepts it when\n"
        f"  - RPL_AUTH_ISSUERS trusts this iss with this key: the line `rpl-cds tester-key` prints for the "
        f"same key (and --iss);\n"
        f"  - the aud is the URL it was called at: start the service with RPL_PUBLIC_BASE_URL={base} "
        f"(or without RPL_PUBLIC_BASE_URL), or call it at the URL its RPL_PUBLIC_BASE_URL names;\n"
        f"  - the clocks of this machine and the service agree within RPL_AUTH_CLOCK_SKEW_SECONDS."
    )


# -- call -----------------------------------------------------------------------------
def discover(session: requests.Session, service_url: str, signer: JwtSigner | None = None,
             timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    url = urljoin(_base(service_url), "cds-services")
    try:
        response = session.get(url, headers={"Accept": "application/json", **_signed(signer, url)}, timeout=timeout)
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the CDS service at {url}: {exc}") from None
    if response.status_code == 401:
        raise ClientError(f"discovery {url} answered HTTP 401.\n{explain_401(url, signer)}")
    if response.status_code != 200:
        raise ClientError(f"discovery {url} answered HTTP {response.status_code}: {response.text[:300]}")
    services = response.json().get("services")
    if not isinstance(services, list):
        raise ClientError(f"discovery {url} has no 'services' list")
    return services


def pick_service(services: list[dict[str, Any]], hook_or_id: str) -> dict[str, Any]:
    """The service with this id, or the only service for this hook."""
    for service in services:
        if service.get("id") == hook_or_id:
            return service
    matches = [s for s in services if s.get("hook") == hook_or_id]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{s.get('id')} ({s.get('hook')})" for s in services)
    if not matches:
        raise ClientError(f"no service for {hook_or_id!r}; the service offers: {known}")
    raise ClientError(f"several services for hook {hook_or_id!r}; name one by id: {known}")


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Replace {{context.x}} (and {{userPractitionerId}} and friends) as the sandbox does."""
    user = str(context.get("userId", ""))
    user_type, _, user_id = user.partition("/")
    values = {
        "userPractitionerId": user_id if user_type == "Practitioner" else "",
        "userPractitionerRoleId": user_id if user_type == "PractitionerRole" else "",
        "userPatientId": user_id if user_type == "Patient" else "",
        "userRelatedPersonId": user_id if user_type == "RelatedPerson" else "",
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("context."):
            found = context.get(name[len("context."):])
            return str(found) if isinstance(found, (str, int, float)) else ""
        return values.get(name, "")

    return _TOKEN.sub(value, template)


def prefetch(
    session: requests.Session,
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    fhir_server: str,
    *,
    token: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    warn=None,
) -> dict[str, Any]:
    """Each template rendered and read from the FHIR server. A key the server cannot answer is
    left out (the service then fetches it itself); a read that finds nothing is null."""
    data: dict[str, Any] = {}
    for key, template in templates.items():
        url = urljoin(_base(fhir_server), render_template(template, context))
        try:
            response = session.get(url, headers={"Accept": FHIR_JSON, **_auth(token)}, timeout=timeout)
        except requests.RequestException as exc:
            if warn:
                warn(f"prefetch {key}: {type(exc).__name__}; left to the service")
            continue
        if response.status_code in (404, 410) and "?" not in template:
            data[key] = None
        elif response.status_code == 200:
            data[key] = response.json()
        elif warn:
            warn(f"prefetch {key}: HTTP {response.status_code}; left to the service")
    return data


def read_drafts(path: Path | None) -> dict[str, Any]:
    """A draft-orders Bundle from a file holding a Bundle or a single resource (demo drafts without a file)."""
    if path is None:
        return demo_data.draft_bundle()
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read draft orders from {path}: {exc}") from None
    if not isinstance(content, dict) or "resourceType" not in content:
        raise ClientError(f"{path} holds no FHIR resource")
    if content["resourceType"] == "Bundle":
        return content
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": content}]}


def prepare_drafts(drafts: Mapping[str, Any], patient_id: str) -> dict[str, Any]:
    """The drafts for this patient: each gets an id if it has none and the patient as subject."""
    bundle = copy.deepcopy(dict(drafts))
    bundle["type"] = bundle.get("type") or "collection"
    bundle.pop("id", None)
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, dict):
            continue
        resource.setdefault("id", f"draft-{uuid.uuid4().hex[:12]}")
        resource.setdefault("status", "draft")
        key = "patient" if resource.get("resourceType") in ("NutritionOrder", "VisionPrescription") else "subject"
        resource[key] = {"reference": f"Patient/{patient_id}"}
        entries.append({"resource": resource})
    bundle["entry"] = entries
    return bundle


def build_request(
    hook: str,
    patient_id: str,
    fhir_server: str,
    *,
    user_id: str = "Practitioner/rpl-cds-tester",
    drafts: Mapping[str, Any] | None = None,
    prefetched: Mapping[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": user_id, "patientId": patient_id}
    if hook in ORDER_HOOKS:
        context["draftOrders"] = prepare_drafts(drafts or demo_data.draft_bundle(), patient_id)
        if hook == "order-select":
            context["selections"] = [
                f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in context["draftOrders"]["entry"]
            ]
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": fhir_server.rstrip("/"),
        "context": context,
    }
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "rpl-cds-call",
            "patient": patient_id,
        }
    if prefetched is not None:
        body["prefetch"] = dict(prefetched)
    return body


@dataclass
class CallResult:
    service: dict[str, Any]
    request: dict[str, Any]
    status: int
    response: Any
    warnings: list[str] = field(default_factory=list)
    url: str = ""  # the service's URL that was called (the JWT's aud)


def check_patient(
    session: requests.Session,
    fhir_server: str,
    patient_id: str,
    *,
    token: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    warn=None,
) -> None:
    """Stop when the FHIR server does not know the patient: the service would answer an
    unknown patient with no cards, which looks like a patient for whom no rule fires."""
    url = urljoin(_base(fhir_server), f"Patient/{quote(patient_id, safe='')}")
    try:
        response = session.get(url, headers={"Accept": FHIR_JSON, **_auth(token)}, timeout=timeout)
    except requests.RequestException as exc:
        # Perhaps reachable only from the service (a container network): it may still fetch.
        if warn:
            warn(f"cannot reach the FHIR server to check the patient ({type(exc).__name__}); "
                 "the service reads the data itself")
        return
    if response.status_code in (404, 410):
        raise ClientError(
            f"Patient/{patient_id}: patient not found on the FHIR server {fhir_server.rstrip('/')} "
            f"(GET {url} -> HTTP {response.status_code}). Check the id, or put the demo patients there with "
            f"`rpl-cds load-demo --fhir-server {fhir_server.rstrip('/')}`."
        )
    if response.status_code != 200 and warn:
        hint = " (give its bearer token with --token)" if response.status_code in (401, 403) else ""
        warn(f"the FHIR server answered GET {url} with HTTP {response.status_code}{hint}")


def call_hook(
    session: requests.Session,
    service_url: str,
    hook: str,
    patient_id: str,
    fhir_server: str,
    *,
    token: str | None = None,
    drafts: Mapping[str, Any] | None = None,
    use_prefetch: bool = True,
    language: str = "en",
    user_id: str = "Practitioner/rpl-cds-tester",
    signer: JwtSigner | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> CallResult:
    """Discovery, prefetch (unless use_prefetch is False), one hook call: what the sandbox does."""
    service = pick_service(discover(session, service_url, signer, timeout), hook)
    warnings: list[str] = []
    check_patient(session, fhir_server, patient_id, token=token, timeout=timeout, warn=warnings.append)
    body = build_request(service["hook"], patient_id, fhir_server, user_id=user_id, drafts=drafts, token=token)
    if use_prefetch:
        body["prefetch"] = prefetch(
            session, service.get("prefetch") or {}, body["context"], fhir_server,
            token=token, timeout=timeout, warn=warnings.append,
        )
    url = urljoin(_base(service_url), f"cds-services/{service['id']}")
    try:
        response = session.post(
            url, json=body, timeout=timeout,
            headers={"Accept": "application/json", "Accept-Language": language, **_signed(signer, url)},
        )
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the CDS service at {url}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    return CallResult(service, body, response.status_code, answer, warnings, url)


def card_signature(card: Mapping[str, Any]) -> dict[str, Any]:
    """A card without its generated uuids (card and suggestions), for comparing two calls."""
    clean = copy.deepcopy(dict(card))
    clean.pop("uuid", None)
    for suggestion in clean.get("suggestions") or []:
        suggestion.pop("uuid", None)
    return clean
