"""Settings, typed and validated at start-up, from environment variables (prefix RPL_).

A bad value stops the start with a message that names the variable. Lists are
given comma-separated (``RPL_FHIR_SERVER_ALLOWLIST=https://a/fhir,https://b/fhir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[tuple[str, ...], NoDecode]


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
    fhir_retries: int = Field(1, ge=0, le=5, description="Retries of idempotent FHIR reads on connection errors and 502/503/504.")

    # -- clinical ---------------------------------------------------------------
    language: Literal["nl", "en"] = Field("nl", description="Card language when the call has no usable Accept-Language.")
    loss_week_limit: int = Field(24, ge=12, le=28, description="Pregnancy losses count up to this many weeks (ESHRE 24; older Dutch definition 20).")
    antibody_cutoff: float = Field(40.0, gt=0, description="aCL/anti-beta2GPI units above which a result without interpretation or reference range is positive.")
    extra_valuesets_dir: Path | None = Field(None, description="Folder of extra FHIR ValueSets (local codes) merged with the shipped ones.")

    # -- storage and logs --------------------------------------------------------
    database_url: str = Field("sqlite:///rpl-cds-feedback.sqlite3", description="Feedback store: SQLAlchemy URL (sqlite:///file or postgresql+psycopg://...).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")

    @field_validator("cors_origins", "fhir_server_allowlist", mode="before")
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
        return tuple(u.rstrip("/") for u in value)

    @field_validator("extra_valuesets_dir")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value


class ConfigError(SystemExit):
    """Stops the start with a readable message instead of a traceback."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            lines.append(f"  RPL_{field.upper()}: {error['msg']}")
        raise ConfigError("Invalid configuration:\n" + "\n".join(lines)) from None
