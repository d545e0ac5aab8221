"""Replay protection: each JWT id (jti) is accepted once while its token is valid.

CDS Hooks requires a ``jti`` so that a service can refuse a captured token sent
again. Remembering it only in one process is not enough once the service runs
with several gunicorn workers or instances: a replay would land on another
worker and pass (2 times in 20 with the default 2 workers, issue #13). So by
default the used jtis are kept in the feedback database (``RPL_DATABASE_URL``,
SQLite or PostgreSQL), which every worker and instance already shares: one
INSERT ... ON CONFLICT on a primary key checks and records in one atomic step,
with the expiry beside it. Redis (``RPL_REPLAY_CACHE_URL=redis://...``, where
``SET key 1 NX EX ttl`` does the same) stays an option; the in-process store
is only for an in-memory database (development, tests), which no other
process can see anyway.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 2.0  # seconds to connect to, and to wait for, Redis
KEY_PREFIX = "rpl-cds:jti:"


class ReplayCacheUnavailable(Exception):
    """The shared store could not be asked; the call must not be let through."""


class ReplayCache(Protocol):
    def first_use(self, issuer: str, jti: str, ttl: int) -> bool:
        """Record (issuer, jti) for ttl seconds; False if it was already recorded."""

    def close(self) -> None: ...


def _key(issuer: str, jti: str) -> str:
    # hashed: fixed length whatever the client sends, and no raw claim values in Redis
    return KEY_PREFIX + hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


class MemoryReplayCache:
    """Thread-safe dict of key -> expiry; expired keys are dropped as time passes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._queue: list[tuple[float, str]] = []  # min-heap by expiry
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, ttl: int) -> bool:
        key, now = _key(issuer, jti), self._clock()
        with self._lock:
            while self._queue and self._queue[0][0] <= now:
                expiry, old = heapq.heappop(self._queue)
                if self._expiry.get(old) == expiry:
                    del self._expiry[old]
            if key in self._expiry:
                return False
            self._expiry[key] = now + max(ttl, 1)
            heapq.heappush(self._queue, (self._expiry[key], key))
            return True

    def __len__(self) -> int:
        return len(self._expiry)

    def close(self) -> None:
        pass


class RedisReplayCache:
    """Shared by every worker and instance that uses the same Redis."""

    def __init__(self, url: str):
        self._redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT, health_check_interval=30
        )

    def first_use(self, issuer: str, jti: str, ttl: int) -> bool:
        try:
            return bool(self._redis.set(_key(issuer, jti), 1, nx=True, ex=max(ttl, 1)))
        except redis.RedisError as exc:
            raise ReplayCacheUnavailable(f"replay cache (Redis) not reachable ({type(exc).__name__})") from None

    def close(self) -> None:
        self._redis.close()


_metadata = sa.MetaData()
used_jti_table = sa.Table(
    "rpl_used_jti",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # sha256 of issuer and jti, as for Redis
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),  # Unix seconds: shared by all instances
)
PURGE_EVERY_SECONDS = 60.0


class SqlReplayCache:
    """Used jtis in a database table, shared by every worker and instance on that database."""

    def __init__(self, database_url: str, clock: Callable[[], float] = time.time):
        connect_args = {"timeout": 10} if database_url.startswith("sqlite") else {"connect_timeout": 5}
        # SQLite's defaults are kept (a durable commit, some ms on a local disk): PRAGMA synchronous=OFF
        # made the write 3x faster here, but risks the whole file, feedback included, on a power cut.
        self.engine = sa.create_engine(database_url, connect_args=connect_args, pool_pre_ping=True)
        self._clock = clock
        self._schema_ready = False
        self._next_purge = 0.0
        self._lock = threading.Lock()

    def _insert(self, key: str, expires_at: int, now: int) -> sa.Insert:
        """Insert the key, or take over its row if that has expired; no row changed: a replay."""
        values = {"key": key, "expires_at": expires_at}
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(used_jti_table).values(values)
            return insert.on_conflict_do_update(
                index_elements=[used_jti_table.c.key],
                set_={"expires_at": insert.excluded.expires_at},
                where=used_jti_table.c.expires_at <= now,
            ).returning(used_jti_table.c.key)  # rowcount is not reliable with every driver
        return used_jti_table.insert().values(values)  # elsewhere: a duplicate key raises IntegrityError

    def first_use(self, issuer: str, jti: str, ttl: int) -> bool:
        now = int(self._clock())
        key = _key(issuer, jti).removeprefix(KEY_PREFIX)
        try:
            self._ensure_schema()
            with self.engine.begin() as connection:
                try:
                    result = connection.execute(self._insert(key, now + max(ttl, 1), now))
                    changed = len(result.all()) if result.returns_rows else result.rowcount
                except sa.exc.IntegrityError:
                    changed = 0
            self._purge(now)
        except sa.exc.SQLAlchemyError as exc:
            raise ReplayCacheUnavailable(f"replay cache (database) not reachable ({type(exc).__name__})") from None
        return changed == 1

    def _ensure_schema(self) -> None:
        """The table, made by whichever worker comes first; the others may fail to make it meanwhile."""
        if self._schema_ready:
            return
        with self._lock:
            if self._schema_ready:
                return
            try:
                _metadata.create_all(self.engine)
            except sa.exc.SQLAlchemyError:
                if not sa.inspect(self.engine).has_table(used_jti_table.name):
                    raise
            self._schema_ready = True

    def _purge(self, now: int) -> None:
        """Drop expired rows now and then (once a minute per process), so the table stays small."""
        with self._lock:
            if now < self._next_purge:
                return
            self._next_purge = now + PURGE_EVERY_SECONDS
        with self.engine.begin() as connection:
            connection.execute(used_jti_table.delete().where(used_jti_table.c.expires_at <= now))

    def __len__(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(used_jti_table)).scalar_one()

    def close(self) -> None:
        self.engine.dispose()


def in_memory_database(database_url: str) -> bool:
    return database_url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in database_url


def build_replay_cache(url: str, database_url: str = "") -> ReplayCache:
    """Redis when RPL_REPLAY_CACHE_URL names one, else the feedback database (in-process for an
    in-memory database, which no other worker can see either)."""
    if url:
        return RedisReplayCache(url)
    if database_url and not in_memory_database(database_url):
        return SqlReplayCache(database_url)
    return MemoryReplayCache()
