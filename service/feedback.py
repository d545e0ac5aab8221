"""Durable feedback storage (CDS Hooks feedback endpoint).

SQLAlchemy Core, so one code path serves the default SQLite file and
PostgreSQL (``RPL_DATABASE_URL=postgresql+psycopg://...``). Each item is kept
whole (the JSON as received) beside the columns used for analysis, and the
transaction commits before the client gets its 200: nothing accepted is lost
when the process restarts.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import sqlalchemy as sa

from .config import data_dir, default_database_url
from .protocol import FeedbackItem

log = logging.getLogger(__name__)
metadata = sa.MetaData()

feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("service_id", sa.String(100), nullable=False),
    sa.Column("card_uuid", sa.String(200), nullable=False, index=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("accepted_suggestions", sa.Text, nullable=True),
    sa.Column("override_system", sa.Text, nullable=True),
    sa.Column("override_code", sa.Text, nullable=True),
    sa.Column("user_comment", sa.Text, nullable=True),
    sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("item_json", sa.Text, nullable=False),
)


def _make_data_dir() -> None:
    """The default data folder is made on first start; any other SQLite path must exist
    (a wrong path is the operator's to fix: /readyz says 503 until it does)."""
    try:
        data_dir().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("cannot make the data folder %s: %s", data_dir(), exc)


class FeedbackUnavailable(Exception):
    """The database could not take the feedback (nothing was stored)."""


class FeedbackStore:
    def __init__(self, database_url: str):
        if database_url == default_database_url():
            _make_data_dir()
        connect_args = {"timeout": 30} if database_url.startswith("sqlite") else {}
        self.engine = sa.create_engine(database_url, connect_args=connect_args, pool_pre_ping=True)
        self._schema_ready = False
        try:
            self._ensure_schema()
        except sa.exc.SQLAlchemyError:
            # Start anyway: /readyz says 503 until the database is reachable, and the
            # table is created on first use. Hook calls do not need the database.
            log.error("feedback database unreachable at start-up; /readyz reports not ready")

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            metadata.create_all(self.engine)
            self._schema_ready = True

    def add(self, service_id: str, items: list[FeedbackItem]) -> int:
        now = datetime.now(timezone.utc)
        rows = []
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            rows.append(
                {
                    "received_at": now,
                    "service_id": service_id,
                    "card_uuid": item.card,
                    "outcome": item.outcome,
                    "accepted_suggestions": json.dumps([s.id for s in item.acceptedSuggestions])
                    if item.acceptedSuggestions
                    else None,
                    "override_system": reason.system if reason else None,
                    "override_code": reason.code if reason else None,
                    "user_comment": item.overrideReason.userComment if item.overrideReason else None,
                    "outcome_timestamp": item.outcomeTimestamp,
                    "item_json": item.model_dump_json(exclude_none=True),
                }
            )
        try:
            self._ensure_schema()
            with self.engine.begin() as connection:  # one transaction, committed before we answer
                connection.execute(feedback_table.insert(), rows)
        except sa.exc.SQLAlchemyError as exc:
            log.error("feedback not stored: %s", type(exc).__name__)
            raise FeedbackUnavailable from None
        return len(rows)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(feedback_table)).scalar_one()

    def ping(self) -> bool:
        try:
            self._ensure_schema()
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()
