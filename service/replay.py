"""Replay protection: each JWT id (jti) is accepted once while its token is valid.

CDS Hooks requires a ``jti`` so that a service can refuse a captured token sent
again. Remembering it only in one process is not enough once the service runs
with several gunicorn workers or instances: a replay would land on another
worker and pass. So the store is in-process only for a single worker
(development, tests) and Redis otherwise, where ``SET key 1 NX EX ttl`` checks
and records in one atomic step, for all workers at once.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

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


def build_replay_cache(url: str) -> ReplayCache:
    return RedisReplayCache(url) if url else MemoryReplayCache()
