"""What one hook call may spend on FHIR reads: one deadline and one byte budget for all its reads.

Socket timeouts bound each wait for data, not a read: a FHIR server that sends a byte a
second never trips a 10 s read timeout, and held a call 20 s (issue #13). So every call
gets a ``CallBudget``: the connections its reads use are registered with it while they
are in use (``WatchedAdapter``), and when the deadline passes the watchdog thread calls
``expire()``, which shuts their sockets down, which ends any blocked connect, TLS handshake, header or body read at once;
a read that starts after the deadline is refused before it connects. The bytes a call
reads count against the call's budget and against its worker's (``WorkerBytes``) until
the call ends, so what a worker holds of FHIR answers is bounded however many calls run.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class BudgetExceeded(Exception):
    """The call ran out of time or bytes (message for the log). Not an OSError, so urllib3
    does not retry a read refused for it."""


class DeadlinePassed(BudgetExceeded):
    pass


class WorkerBytes:
    """Bytes of FHIR answers held by the calls of one worker process, up to a limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


class CallBudget:
    """One hook call's deadline and byte budget, shared by the threads reading for it."""

    def __init__(self, seconds: float, max_bytes: int, worker: WorkerBytes,
                 clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._worker = worker
        self._clock = clock
        self.expires_at = clock() + seconds
        self.used = 0
        self.expired = False
        self._connections: set[Any] = set()
        self._lock = threading.Lock()
        self._watched = False

    def left(self) -> float:
        """Seconds until the deadline (0 once it has passed)."""
        return 0.0 if self.expired else max(0.0, self.expires_at - self._clock())

    def check_time(self) -> float:
        left = self.left()
        if left <= 0:
            raise DeadlinePassed(f"the call's deadline of {self.seconds:g} s passed (RPL_FHIR_CALL_DEADLINE_SECONDS)")
        return left

    def take(self, n: int) -> None:
        """Count n more bytes read for this call; BudgetExceeded over the call's or the worker's limit."""
        with self._lock:
            if self.used + n > self.max_bytes:
                raise BudgetExceeded(f"the FHIR answers of one call exceed {self.max_bytes} bytes (RPL_FHIR_MAX_CALL_BYTES)")
            if not self._worker.take(n):
                raise BudgetExceeded(f"the calls of this worker hold {self._worker.limit} bytes of FHIR answers "
                                     "already (RPL_FHIR_MAX_WORKER_BYTES)")
            self.used += n

    def give(self, n: int) -> None:
        """n bytes taken are not held after all (a read that failed)."""
        with self._lock:
            n = min(n, self.used)
            self.used -= n
        self._worker.give(n)

    def release(self) -> None:
        """The call is over: its bytes are no longer held (idempotent)."""
        with self._lock:
            used, self.used = self.used, 0
        if used:
            self._worker.give(used)

    # -- the connections in use, for expire() --------------------------------------------------
    def attach(self, connection: Any) -> None:
        with self._lock:
            if self.expired or self._clock() >= self.expires_at:
                raise DeadlinePassed(f"the call's deadline of {self.seconds:g} s passed (RPL_FHIR_CALL_DEADLINE_SECONDS)")
            self._connections.add(connection)
            watch, self._watched = not self._watched and self._clock is time.monotonic, True
        if watch:
            _WATCHDOG.watch(self)

    def detach(self, connection: Any) -> None:
        with self._lock:
            self._connections.discard(connection)

    def expire(self) -> None:
        """The deadline passed: no new reads, and every read in progress ends now."""
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _shut_down(getattr(connection, "sock", None))
            self._connections.clear()


class _Watchdog:
    """One thread per process that expires each budget with connections at its deadline."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, weakref.ref[CallBudget]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._pid: int | None = None

    def watch(self, budget: CallBudget) -> None:
        with self._wake:
            if self._pid != os.getpid():  # first use in this process (a gunicorn worker is forked)
                self._pid, self._queue = os.getpid(), []
                threading.Thread(target=self._run, name="fhir-deadlines", daemon=True).start()
            heapq.heappush(self._queue, (budget.expires_at, next(self._order), weakref.ref(budget)))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    self._wake.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                _, _, ref = heapq.heappop(self._queue)
            budget = ref()
            if budget is not None:
                budget.expire()


_WATCHDOG = _Watchdog()


def _shut_down(sock: socket.socket | None) -> None:
    """Wakes a thread blocked on the socket (recv returns end of file); its owner closes it.
    Under the budget's lock, and only for a connection still attached: one that went back
    to the pool has been detached first, so another call's connection is never touched."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# -- connections that register with the budget of the read their thread is doing ---------------
_reading = threading.local()


@contextlib.contextmanager
def reading_for(budget: CallBudget) -> Iterator[None]:
    """While in this block, connections this thread connects or sends on are the budget's."""
    _reading.budget, _reading.connections = budget, []
    try:
        yield
    finally:
        for connection in _reading.connections:
            budget.detach(connection)
        _reading.budget, _reading.connections = None, []


def detach_now() -> None:
    """Detach this thread's connections before they go back to the pool (see _shut_down)."""
    budget = getattr(_reading, "budget", None)
    if budget is not None:
        for connection in _reading.connections:
            budget.detach(connection)
        _reading.connections = []


class _Watched:
    def _watch(self) -> None:
        budget = getattr(_reading, "budget", None)
        if budget is not None:
            budget.attach(self)
            _reading.connections.append(self)

    def connect(self) -> None:  # an HTTPS pool connects before request(): the TLS handshake is watched too
        self._watch()
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:  # a kept-alive connection used again
        self._watch()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with connections that a CallBudget can cut at its deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
