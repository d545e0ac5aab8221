"""Durable governance storage: the cards the service issued and the feedback on them.

SQLAlchemy Core, so one code path serves the default SQLite file and
PostgreSQL (``RPL_DATABASE_URL=postgresql+psycopg://...``). Transactions
commit before the client gets its 200: nothing accepted is lost when the
process restarts.

Three tables (documented in the README, "Governance"):

- ``issued_card``: one row per card the rules produced: shown to the client,
  held back by silent (pilot) mode, or held back because the same
  recommendation was overridden for the same patient and facts recently.
  No patient identifier: only, when no-repeat-after-override is on, an HMAC
  of the patient with a configured secret.
- ``issued_card_recommendation``: the catalogue IDs each card carries (one
  card may carry several, e.g. the lifestyle card C with E1, E5.6, ...).
- ``feedback``: each feedback item as received, whole, beside the columns used
  for analysis. A unique ``dedupe_key`` (card, outcome, suggestions, reason,
  timestamp) keeps an item that a client sends again from being stored twice.
  Feedback on a card uuid this service has no record of is still stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from .config import data_dir, default_database_url
from .protocol import FeedbackItem

log = logging.getLogger(__name__)
metadata = sa.MetaData()
SCHEMA_LOCK_KEY = 0x72706C2D636473  # "rpl-cds": the advisory lock held while the tables are created

# How a produced card was handled.
SHOWN, SILENT, SUPPRESSED = "shown", "silent", "suppressed"
DISPOSITIONS = (SHOWN, SILENT, SUPPRESSED)

feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("service_id", sa.String(100), nullable=False),
    sa.Column("card_uuid", sa.String(200), nullable=False, index=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("accepted_suggestions", sa.Text, nullable=True),
    sa.Column("override_system", sa.Text, nullable=True),
    sa.Column("override_code", sa.Text, nullable=True),
    sa.Column("user_comment", sa.Text, nullable=True),
    sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("item_json", sa.Text, nullable=False),
    # Added after the first release; rows stored before it have NULL (see _migrate).
    sa.Column("dedupe_key", sa.String(64), nullable=True, unique=True),
)

issued_card_table = sa.Table(
    "issued_card",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("card_uuid", sa.String(200), nullable=False, unique=True),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("service_id", sa.String(100), nullable=False),
    sa.Column("hook", sa.String(50), nullable=False),
    sa.Column("topic", sa.String(20), nullable=False),  # source.topic.code: the card's own catalogue ID
    sa.Column("indicator", sa.String(20), nullable=False),
    sa.Column("disposition", sa.String(20), nullable=False),  # shown | silent | suppressed
    sa.Column("suggestion_uuids", sa.Text, nullable=True),  # JSON list
    sa.Column("iss", sa.String(300), nullable=True),
    sa.Column("tenant", sa.String(100), nullable=True),
    # Only when no-repeat-after-override is on: HMAC-SHA256 of the patient, and a hash of the facts shown.
    sa.Column("patient_hmac", sa.String(64), nullable=True, index=True),
    sa.Column("facts_hash", sa.String(64), nullable=True),
)

issued_card_recommendation_table = sa.Table(
    "issued_card_recommendation",
    metadata,
    sa.Column("card_id", sa.Integer, sa.ForeignKey("issued_card.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("recommendation_id", sa.String(20), primary_key=True),
)


@dataclass(frozen=True)
class IssuedCard:
    """One card as the governance record keeps it (no patient data)."""

    card_uuid: str
    service_id: str
    hook: str
    topic: str
    carried_ids: tuple[str, ...]
    indicator: str
    disposition: str
    suggestion_uuids: tuple[str, ...] = ()
    iss: str | None = None
    tenant: str | None = None
    patient_hmac: str | None = None
    facts_hash: str | None = None


@dataclass(frozen=True)
class StoredFeedback:
    stored: int  # new items
    duplicates: int  # items already stored (sent again)


@contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[None]:
    """Held while the tables are created or changed. The replicas of a Deployment start together
    on an empty database: without it, two would both find a table missing and one CREATE would
    fail (that instance would stay unready until its next probe). On PostgreSQL an advisory
    lock, so the others wait and then find the tables; SQLite serves one host and needs none."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
            connection.commit()


def _make_data_dir() -> None:
    """The default data folder is made on first start; any other SQLite path must exist
    (a wrong path is the operator's to fix: /readyz says 503 until it does)."""
    try:
        data_dir().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("cannot make the data folder %s: %s", data_dir(), exc)


class FeedbackUnavailable(Exception):
    """The database could not take the feedback (nothing was stored)."""


def dedupe_key(service_id: str, item: FeedbackItem) -> str:
    """What makes two feedback items the same: a client resending one must not count twice."""
    reason = item.overrideReason.reason if item.overrideReason and item.overrideReason.reason else None
    identity = {
        "service": service_id,
        "card": item.card,
        "outcome": item.outcome,
        "suggestions": sorted(s.id for s in item.acceptedSuggestions or ()),
        "reason": [reason.system, reason.code] if reason else None,
        "at": item.outcomeTimestamp.astimezone(timezone.utc).isoformat(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class FeedbackStore:
    def __init__(self, database_url: str, retention_days: int = 0):
        if database_url == default_database_url():
            _make_data_dir()
        connect_args = {"timeout": 30} if database_url.startswith("sqlite") else {}
        self.engine = sa.create_engine(database_url, connect_args=connect_args, pool_pre_ping=True)
        if database_url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_foreign_keys)
        self.retention_days = retention_days
        self._schema_ready = False
        self._purge_lock = threading.Lock()
        self._last_purge = 0.0
        try:
            self._ensure_schema()
        except sa.exc.SQLAlchemyError:
            # Start anyway: /readyz says 503 until the database is reachable, and the
            # tables are created on first use. Hook calls do not need the database.
            log.error("feedback database unreachable at start-up; /readyz reports not ready")

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            with schema_lock(self.engine):
                metadata.create_all(self.engine)
                self._migrate()
            self._schema_ready = True

    def _migrate(self) -> None:
        """A feedback table made before dedupe_key existed gets the column and its unique index."""
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns("feedback")}
        if "dedupe_key" not in columns:
            with self.engine.begin() as connection:
                connection.execute(sa.text("ALTER TABLE feedback ADD COLUMN dedupe_key VARCHAR(64)"))
                connection.execute(sa.text("CREATE UNIQUE INDEX ix_feedback_dedupe_key ON feedback (dedupe_key)"))

    # -- feedback ------------------------------------------------------------------
    def add(self, service_id: str, items: list[FeedbackItem]) -> StoredFeedback:
        now = datetime.now(timezone.utc)
        rows: dict[str, dict] = {}  # by dedupe key: the same item twice in one request counts once
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            key = dedupe_key(service_id, item)
            rows.setdefault(key, {
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
                "dedupe_key": key,
            })
        try:
            self._ensure_schema()
            with self.engine.begin() as connection:  # one transaction, committed before we answer
                known = set(connection.execute(
                    sa.select(feedback_table.c.dedupe_key).where(feedback_table.c.dedupe_key.in_(list(rows)))
                ).scalars())
                new = [row for key, row in rows.items() if key not in known]
                if new:
                    connection.execute(feedback_table.insert(), new)
        except sa.exc.IntegrityError:
            # Another worker stored the same item between our look-up and insert: store one by one.
            return self._add_one_by_one(rows, len(items))
        except sa.exc.SQLAlchemyError as exc:
            log.error("feedback not stored: %s", type(exc).__name__)
            raise FeedbackUnavailable from None
        self.maybe_purge()
        return StoredFeedback(stored=len(new), duplicates=len(items) - len(new))

    def _add_one_by_one(self, rows: dict[str, dict], sent: int) -> StoredFeedback:
        stored = 0
        try:
            with self.engine.begin() as connection:
                for row in rows.values():
                    try:
                        with connection.begin_nested():
                            connection.execute(feedback_table.insert(), row)
                        stored += 1
                    except sa.exc.IntegrityError:
                        pass
        except sa.exc.SQLAlchemyError as exc:
            log.error("feedback not stored: %s", type(exc).__name__)
            raise FeedbackUnavailable from None
        return StoredFeedback(stored=stored, duplicates=sent - stored)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(feedback_table)).scalar_one()

    # -- issued cards ------------------------------------------------------------------
    def record_issued(self, cards: Sequence[IssuedCard], at: datetime | None = None) -> None:
        """Records the cards of one call; raises SQLAlchemyError (the caller logs it and answers anyway)."""
        if not cards:
            return
        at = at or datetime.now(timezone.utc)
        self._ensure_schema()
        with self.engine.begin() as connection:  # three statements whatever the number of cards
            connection.execute(issued_card_table.insert(), [
                {
                    "card_uuid": card.card_uuid,
                    "issued_at": at,
                    "service_id": card.service_id,
                    "hook": card.hook,
                    "topic": card.topic,
                    "indicator": card.indicator,
                    "disposition": card.disposition,
                    "suggestion_uuids": json.dumps(list(card.suggestion_uuids)) if card.suggestion_uuids else None,
                    "iss": card.iss,
                    "tenant": card.tenant,
                    "patient_hmac": card.patient_hmac,
                    "facts_hash": card.facts_hash,
                }
                for card in cards
            ])
            ids = dict(connection.execute(
                sa.select(issued_card_table.c.card_uuid, issued_card_table.c.id)
                .where(issued_card_table.c.card_uuid.in_([card.card_uuid for card in cards]))
            ).all())
            connection.execute(issued_card_recommendation_table.insert(), [
                {"card_id": ids[card.card_uuid], "recommendation_id": rec}
                for card in cards
                for rec in dict.fromkeys(card.carried_ids)
            ])
        self.maybe_purge()

    def recently_overridden(self, patient_hmac: str, since: datetime) -> set[tuple[str, str]]:
        """(topic, facts_hash) of this patient's cards overridden since then (no-repeat-after-override)."""
        later = feedback_table.alias("later")
        query = (
            sa.select(issued_card_table.c.topic, issued_card_table.c.facts_hash)
            .join(feedback_table, feedback_table.c.card_uuid == issued_card_table.c.card_uuid)
            .where(
                issued_card_table.c.patient_hmac == patient_hmac,
                feedback_table.c.outcome == "overridden",
                feedback_table.c.received_at >= since,
                # An override the clinician took back (accepted the card afterwards) does not count.
                ~sa.exists().where(
                    later.c.card_uuid == feedback_table.c.card_uuid,
                    later.c.outcome == "accepted",
                    later.c.outcome_timestamp > feedback_table.c.outcome_timestamp,
                ),
            )
            .distinct()
        )
        self._ensure_schema()
        with self.engine.connect() as connection:
            return {(row.topic, row.facts_hash) for row in connection.execute(query)}

    # -- retention -----------------------------------------------------------------------
    def purge(self, older_than_days: int, now: datetime | None = None) -> dict[str, int]:
        """Deletes issued cards and feedback older than N days; returns the rows deleted per table."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=older_than_days)
        self._ensure_schema()
        with self.engine.begin() as connection:
            old_cards = sa.select(issued_card_table.c.id).where(issued_card_table.c.issued_at < cutoff)
            links = connection.execute(
                issued_card_recommendation_table.delete().where(issued_card_recommendation_table.c.card_id.in_(old_cards))
            ).rowcount
            cards = connection.execute(issued_card_table.delete().where(issued_card_table.c.issued_at < cutoff)).rowcount
            feedback = connection.execute(feedback_table.delete().where(feedback_table.c.received_at < cutoff)).rowcount
        return {"issued_card": cards, "issued_card_recommendation": links, "feedback": feedback}

    def maybe_purge(self) -> None:
        """With a retention setting: purge at most once an hour per process, after a write."""
        if not self.retention_days:
            return
        if self._last_purge and time.monotonic() - self._last_purge < 3600:
            return
        if not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._last_purge = time.monotonic()
            deleted = self.purge(self.retention_days)
            if any(deleted.values()):
                log.info("retention: deleted rows older than %d days: %s", self.retention_days, deleted)
        except sa.exc.SQLAlchemyError as exc:
            log.error("retention purge failed: %s", type(exc).__name__)
        finally:
            self._purge_lock.release()

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


def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Write-ahead log, synced at checkpoints: a commit survives the process (crash, restart) without an
    # fsync per call; each hook call now writes its cards (33 ms a call with the default journal here).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def carried_ids(draft: object) -> tuple[str, ...]:
    """The catalogue IDs a card carries: its own topic first, then any merged into it (issue 16)."""
    topic = draft.rec_id  # type: ignore[attr-defined]
    merged: Iterable[str] = getattr(draft, "carried_ids", None) or ()
    return tuple(dict.fromkeys((topic, *merged)))
