"""Settings, typed and validated at start-up, from environment variables (prefix RPL_).

A bad value stops the start with a message that names the variable. Lists are
given comma-separated (``RPL_FHIR_SERVER_ALLOWLIST=https://a/fhir,https://b/fhir``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[tuple[str, ...], NoDecode]

# Asymmetric JWS algorithms only: CDS Hooks forbids 'none' and every HMAC (shared-secret) algorithm.
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _trusted_url(url: str) -> str:
    """https, or http to this machine only (a local development JWKS)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return url
    raise ValueError(f"{url!r} is not an https URL")


def data_dir() -> Path:
    """Where the service keeps its files by default (the SQLite feedback file): the XDG data
    folder, not the current directory, so that the file does not land in whatever folder the
    service happens to be started from (a checkout, /)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rpl-cds"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'feedback.sqlite3'}"


POSTGRES_EXTRA_FIX = ("install the postgres extra, which brings the driver: .venv/bin/pip install '.[postgres]' "
                      "in the source tree (or 'rpl-cds[postgres]'); the image has it")


def checked_database_url(url: str) -> str:
    """An SQLAlchemy URL of a store the service supports, with its driver installed.

    Checked here, in the process that starts the service, so that a wrong URL stops the
    start with one message instead of a traceback in every gunicorn worker. A bare
    ``postgresql://`` (or ``postgres://``) URL means the psycopg 3 driver: SQLAlchemy would
    otherwise pick psycopg2, which the service does not install."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"{url.split('@')[-1]!r} is not a URL; use sqlite:///path/to/file.sqlite3 or "
                         "postgresql+psycopg://user:password@host:5432/db")
    dialect, _, driver = scheme.lower().partition("+")
    if dialect == "sqlite" and driver in ("", "pysqlite"):
        return url
    if dialect in ("postgresql", "postgres") and driver in ("", "psycopg"):
        try:
            import psycopg  # noqa: F401  (imported as SQLAlchemy will: a broken install fails here too)
        except ImportError as exc:
            raise ValueError(f"a PostgreSQL URL needs the psycopg driver, which cannot be imported ({exc}): "
                             f"{POSTGRES_EXTRA_FIX}") from None
        return f"postgresql+psycopg://{rest}"
    raise ValueError(
        f"{scheme}:// is not supported; the feedback store is SQLite (sqlite:///path/to/file.sqlite3) "
        "or PostgreSQL (postgresql+psycopg://user:password@host:5432/db)"
    )


def _check_jwks(jwks: Any) -> dict[str, Any]:
    """A JWK Set of public signing keys, each with a unique kid."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('jwks must be a JWK Set: {"keys": [...]}')
    kids = set()
    for key in jwks["keys"]:
        kid = key.get("kid") if isinstance(key, dict) else None
        if not isinstance(kid, str) or not kid or kid in kids:
            raise ValueError("every key in jwks needs its own kid")
        kids.add(kid)
        if key.get("kty") not in ("EC", "RSA", "OKP"):
            raise ValueError(f"jwks key {kid!r}: kty must be EC, RSA or OKP (no shared-secret keys)")
        if "d" in key:
            raise ValueError(f"jwks key {kid!r} holds a private key; give the public key only")
        try:
            jwt.PyJWK(key)
        except jwt.PyJWTError as exc:
            raise ValueError(f"jwks key {kid!r} is not a usable key ({type(exc).__name__})") from None
    return jwks


class IssuerConfig(BaseModel):
    """One trusted CDS client (JWT issuer) and where its public keys come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1)
    jku_allowlist: tuple[str, ...] = ()
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_file: Path | None = None
    tenants: tuple[str, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_jwks_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("jwks_file"):
            if data.get("jwks") is not None:
                raise ValueError("give jwks or jwks_file, not both")
            try:
                data = {**data, "jwks": json.loads(Path(data["jwks_file"]).read_text(encoding="utf-8"))}
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read jwks_file {data['jwks_file']}: {exc}") from None
        return data

    @field_validator("jku_allowlist")
    @classmethod
    def _jkus(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_trusted_url(url) for url in value)

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        return _trusted_url(value) if value is not None else None

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_jwks(value) if value is not None else None

    @model_validator(mode="after")
    def _has_keys(self) -> IssuerConfig:
        if not (self.jku_allowlist or self.jwks_url or self.jwks):
            raise ValueError(f"issuer {self.iss!r} needs jku_allowlist, jwks_url, jwks or jwks_file")
        return self


IssuerList = Annotated[tuple[IssuerConfig, ...], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RPL_", extra="forbid", frozen=True)

    # -- HTTP ---------------------------------------------------------------
    public_base_url: str | None = Field(
        None, description="The URL clients use to reach the service (behind a reverse proxy); used for JWT aud."
    )
    max_body_bytes: int = Field(5_000_000, ge=1_000, description="Largest request body accepted (413 above).")
    cors_origins: CommaList = Field(("*",), description="Origins allowed by CORS; '*' for the public sandbox.")

    # -- FHIR access --------------------------------------------------------------
    fhir_server_allowlist: CommaList = Field(
        (),
        description="FHIR base URLs the service may fetch from; empty: never fetch (prefetch only). '*' allows any (development only).",
    )
    fhir_connect_timeout: float = Field(3.05, gt=0, le=60, description="Seconds to connect to the FHIR server.")
    fhir_read_timeout: float = Field(10.0, gt=0, le=120, description="Seconds to wait for FHIR server data.")
    fhir_max_pages: int = Field(10, ge=1, le=1000, description="Bundle 'next' pages followed per search.")
    fhir_page_size: int = Field(200, ge=1, le=1000, description="_count asked for per search page.")
    fhir_max_response_bytes: int = Field(20_000_000, ge=1_000, description="Largest FHIR response accepted.")
    fhir_gzip: bool = Field(False, description="Ask the FHIR server for gzip-compressed answers: for a server behind a slow link; off saves CPU on both sides for one next to the service.")
    fhir_retries: int = Field(1, ge=0, le=5, description="Retries of idempotent FHIR reads on connection errors and 502/503/504.")
    fhir_call_deadline_seconds: float = Field(8.0, gt=0, le=120, description="Seconds one hook call may spend on all its FHIR reads, retries and slow senders included; then 412. Keep it well under the EHR's own timeout.")
    fhir_max_call_bytes: int = Field(10_000_000, ge=1_000, description="Bytes of FHIR answers one hook call may read in all; 412 above.")
    fhir_max_worker_bytes: int = Field(20_000_000, ge=1_000, description="Bytes of FHIR answers the calls of one worker process may hold at once; a call that would go over gets 412.")
    fhir_max_calls_per_worker: int = Field(6, ge=1, le=256, description="Calls of one worker reading from any FHIR servers at once; another waits at most 0.5 s for a turn, then gets 412, so that several hanging servers together cannot hold every thread. Keep it under --threads.")
    fhir_max_calls_per_server: int = Field(2, ge=1, le=64, description="Calls of one worker reading from one FHIR server at once; another waits at most 0.5 s for a turn, then gets 412, so a hanging server cannot hold every thread. Keep it under --threads.")

    # -- clinical ---------------------------------------------------------------
    language: Literal["nl", "en"] = Field("nl", description="Card language when the call has no usable Accept-Language.")
    loss_week_limit: int = Field(24, ge=12, le=28, description="Pregnancy losses count up to this many weeks (ESHRE 24; older Dutch definition 20).")
    antibody_cutoff: float = Field(40.0, gt=0, description="aCL/anti-beta2GPI units above which a result without interpretation or reference range is positive.")
    extra_valuesets_dir: Path | None = Field(None, description="Folder of extra FHIR ValueSets (local codes) merged with the shipped ones.")
    region: Literal["nl", "be", "us"] = Field("nl", description="Country of the deployment: the products ordered (acetylsalicylzuur 80 mg / aspirin 81 mg) and the support organisations linked.")
    order_templates_dir: Path | None = Field(None, description="Folder of the hospital's order templates (JSON, same id as a shipped one): its own products and codes (G-Standaard, local).")
    missed_miscarriage_protocol_file: Path | None = Field(None, description='JSON file {"nl": [lines], "en": [lines]}: the department\'s own management of a missed miscarriage, shown on the S4 card instead of the AZ Turnhout 2024 leaflet text.')
    workup_order_all: bool = Field(False, description="The work-up card also offers 'order all N tests' with selectionBehavior at-most-one; only for clients documented to honour at-most-one. Off: one recommended suggestion per test under 'any', which every client (Epic) handles without ordering a test twice.")
    validation_cache_size: int = Field(2000, ge=0, le=1_000_000, description="Validated FHIR resources remembered per worker by their content (about 11 kB each); 0 validates every time.")
    facts_cache_size: int = Field(64, ge=0, le=100_000, description="Records whose facts each worker remembers by their exact content (the record's JSON is the key: about its size per record); 0 reads every record anew.")

    # -- storage and logs --------------------------------------------------------
    database_url: str = Field(
        default_factory=lambda: default_database_url(),
        description="Feedback store: SQLAlchemy URL (sqlite:///file or postgresql+psycopg://...); "
                    "default: feedback.sqlite3 in the data folder ($XDG_DATA_HOME/rpl-cds, else ~/.local/share/rpl-cds).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")

    # -- governance (issue 17): issued-card records, silent mode, no repeat, dashboard ------
    retention_days: int = Field(0, ge=0, le=36_500, description="Delete issued-card and feedback rows older than this many days (0: keep); feedback userComment is free text and may hold patient data.")
    silent_recommendations: CommaList = Field((), description="Catalogue IDs whose cards are evaluated and recorded but never returned (pilot).")
    silent_hooks: CommaList = Field((), description="Hooks (patient-view, order-select, order-sign) whose cards are evaluated and recorded but never returned (pilot).")
    no_repeat_after_override_days: int = Field(0, ge=0, le=365, description="After an override, the same recommendation for the same patient is not shown again for this many days unless its facts changed (0: off).")
    patient_hmac_secret: SecretStr | None = Field(None, description="Secret of the HMAC that keeps the patient as a keyed hash (needed by no_repeat_after_override_days); at least 32 characters.")
    admin_token: SecretStr | None = Field(None, description="Bearer token for /admin/ (the governance dashboard); unset with no admin user: no dashboard.")
    admin_user: str | None = Field(None, description="Basic-auth user for /admin/ (with RPL_ADMIN_PASSWORD).")
    admin_password: SecretStr | None = Field(None, description="Basic-auth password for /admin/, at least 12 characters.")

    # -- authentication of the CDS client (JWT) and hostile input -----------------
    auth_enabled: bool = Field(True, description="Require a signed JWT from the CDS client; false only for development (logs a WARNING at every start).")
    auth_issuers: IssuerList = Field((), description="Trusted JWT issuers as JSON: [{iss, jku_allowlist, jwks_url, jwks, jwks_file, tenants}].")
    auth_issuers_file: IssuerList = Field((), description="Path of a JSON file with more trusted issuers (same shape as RPL_AUTH_ISSUERS).")
    auth_algorithms: CommaList = Field(("ES384", "RS384"), description="JWS algorithms accepted; asymmetric only (never none or HS*).")
    auth_clock_skew_seconds: int = Field(60, ge=0, le=600, description="Clock skew allowed when checking JWT exp and iat.")
    auth_max_token_age_seconds: int = Field(3600, ge=60, le=86_400, description="Longest JWT lifetime (exp - iat) accepted.")
    auth_jwks_cache_seconds: int = Field(300, ge=0, le=86_400, description="Seconds a fetched JWK Set is kept.")
    auth_jwks_timeout: float = Field(5.0, gt=0, le=60, description="Seconds to connect to, and to read, a JWK Set URL.")
    replay_cache_url: str = Field("", description="Where used JWT ids are remembered: empty = in the feedback database (RPL_DATABASE_URL), shared by every worker and instance on it; redis://host:6379/0 = in Redis.")
    max_bundle_entries: int = Field(10_000, ge=1, description="Most entries in a Bundle of the request (draftOrders, prefetch); 400 above.")
    max_json_depth: int = Field(64, ge=8, le=500, description="Deepest JSON nesting accepted in a request body; 400 above.")
    max_string_length: int = Field(100_000, ge=1_000, description="Longest JSON string accepted in a request body; 400 above.")

    @field_validator("cors_origins", "fhir_server_allowlist", "silent_recommendations", "silent_hooks", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("fhir_server_allowlist")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if url != "*" and not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
            parts = urlsplit(url)
            if url != "*" and ("@" in parts.netloc or parts.query or parts.fragment or "\\" in url):
                # every URL fetched must share its scheme, host, port and base path (issue #13)
                raise ValueError(f"{url!r} must be a plain base URL: no user, query, fragment or backslash")
        return tuple(u.rstrip("/") for u in value)

    @field_validator("auth_issuers", mode="before")
    @classmethod
    def _json_issuers(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else ()
            except ValueError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
        return value

    @field_validator("auth_issuers_file", mode="before")
    @classmethod
    def _issuers_file(cls, value: object) -> object:
        if isinstance(value, (str, Path)):
            if not str(value).strip():
                return ()
            try:
                return json.loads(Path(value).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read issuers from {value}: {exc}") from None
        return value

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        return cls._split(value)

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one algorithm")
        for alg in value:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(f"{alg} is not allowed: CDS Hooks forbids unsigned and HMAC (shared-secret) JWTs")
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(f"{alg} is not a known asymmetric JWS algorithm ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return checked_database_url(value)

    @field_validator("replay_cache_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty (in-process) or a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _issuers_trusted(self) -> Settings:
        names = [i.iss for i in self.trusted_issuers]
        if len(names) != len(set(names)):
            raise ValueError("RPL_AUTH_ISSUERS / RPL_AUTH_ISSUERS_FILE: an iss is configured twice")
        if self.auth_enabled and not names:
            raise ValueError(
                "RPL_AUTH_ENABLED is true but no issuer is trusted: set RPL_AUTH_ISSUERS or RPL_AUTH_ISSUERS_FILE "
                "(or RPL_AUTH_ENABLED=false for development only)"
            )
        return self

    @field_validator("silent_recommendations")
    @classmethod
    def _catalogue_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from cards.catalog import CATALOGUE

        unknown = [rec for rec in value if rec not in CATALOGUE]
        if unknown:
            raise ValueError(f"not catalogue IDs: {', '.join(unknown)}")
        return value

    @field_validator("silent_hooks")
    @classmethod
    def _hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        hooks = ("patient-view", "order-select", "order-sign")
        unknown = [hook for hook in value if hook not in hooks]
        if unknown:
            raise ValueError(f"not hooks this service answers: {', '.join(unknown)} (use {', '.join(hooks)})")
        return value

    @model_validator(mode="after")
    def _governance(self) -> Settings:
        secret = self.patient_hmac_secret.get_secret_value() if self.patient_hmac_secret else ""
        if self.no_repeat_after_override_days and len(secret) < 32:
            raise ValueError("RPL_NO_REPEAT_AFTER_OVERRIDE_DAYS needs RPL_PATIENT_HMAC_SECRET of at least 32 characters")
        if (self.admin_user is None) != (self.admin_password is None):
            raise ValueError("RPL_ADMIN_USER and RPL_ADMIN_PASSWORD go together")
        if self.admin_password is not None and len(self.admin_password.get_secret_value()) < 12:
            raise ValueError("RPL_ADMIN_PASSWORD: at least 12 characters")
        if self.admin_token is not None and len(self.admin_token.get_secret_value()) < 24:
            raise ValueError("RPL_ADMIN_TOKEN: at least 24 characters")
        return self

    @property
    def trusted_issuers(self) -> tuple[IssuerConfig, ...]:
        return self.auth_issuers + self.auth_issuers_file

    @field_validator("extra_valuesets_dir", "order_templates_dir")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("missed_miscarriage_protocol_file")
    @classmethod
    def _file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value


class ConfigError(SystemExit):
    """Stops the start with a readable message instead of a traceback."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # a check across settings: the message names the variables
                lines.append(f"  {message}")
                continue
            head, *rest = error["loc"]
            where = f"RPL_{str(head).upper()}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
            lines.append(f"  {where}: {message}")
        raise ConfigError("Invalid configuration:\n" + "\n".join(lines)) from None
