"""Prometheus metrics for operations (``GET /metrics``).

Under gunicorn each worker is a process, so the counters live in files shared
through ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode):
``rpl-cds serve`` makes that folder per instance and empties it at start, and
``/metrics`` adds up every worker's files. Without that variable (tests, the
Flask development server) the metrics of this process are served.

No patient data in any label: services, endpoints, statuses, catalogue IDs,
indicators, outcomes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        # Its own registry per app: several apps in one process (the tests) do not clash.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("rpl_cds_http_requests", "HTTP calls by endpoint, CDS service and status.",
                                ["endpoint", "service", "status"], registry=r)
        self.latency = Histogram("rpl_cds_http_request_duration_seconds", "Time to answer, by endpoint and CDS service.",
                                 ["endpoint", "service"], buckets=LATENCY_BUCKETS, registry=r)
        self.fhir_reads = Counter("rpl_cds_fhir_reads", "FHIR reads and searches by the service, by kind and outcome.",
                                  ["kind", "outcome"], registry=r)
        self.fhir_latency = Histogram("rpl_cds_fhir_read_duration_seconds", "Time of one FHIR read or search (all pages).",
                                      ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.cards = Counter("rpl_cds_cards", "Cards produced, by catalogue ID, indicator and disposition (shown, silent, suppressed).",
                             ["recommendation", "indicator", "disposition"], registry=r)
        self.feedback = Counter("rpl_cds_feedback_items", "Feedback items received, by outcome (accepted, overridden).",
                                ["outcome"], registry=r)
        self.feedback_duplicates = Counter("rpl_cds_feedback_duplicates", "Feedback items sent again, stored once.",
                                           registry=r)
        self.record_failures = Counter("rpl_cds_issued_card_record_failures", "Calls whose cards could not be recorded.",
                                       registry=r)

    # -- what the service reports --------------------------------------------------------
    def request(self, endpoint: str, service: str, status: int, seconds: float | None) -> None:
        self.requests.labels(endpoint, service, str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint, service).observe(seconds)

    def card(self, recommendation: str, indicator: str, disposition: str) -> None:
        self.cards.labels(recommendation, indicator, disposition).inc()

    def feedback_items(self, outcomes: list[str], duplicates: int) -> None:
        for outcome in outcomes:
            self.feedback.labels(outcome).inc()
        if duplicates:
            self.feedback_duplicates.inc(duplicates)

    def record_failed(self) -> None:
        self.record_failures.inc()

    def fhir(self, kind: str, outcome: str, seconds: float) -> None:
        self.fhir_reads.labels(kind, outcome).inc()
        self.fhir_latency.labels(kind).observe(seconds)

    # -- the exposition ----------------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class InstrumentedClient:
    """A FhirClient whose reads and searches are counted and timed; everything else passes through."""

    def __init__(self, client: Any, metrics: Metrics):
        self._client = client
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _timed(self, kind: str, call, *args, **kwargs):
        started = time.perf_counter()
        outcome = "error"
        try:
            result = call(*args, **kwargs)
            outcome = "ok" if result is not None else "missing"
            return result
        except Exception as exc:  # counted by type, then raised unchanged
            outcome = type(exc).__name__
            raise
        finally:
            self._metrics.fhir(kind, outcome, time.perf_counter() - started)

    def read(self, *args, **kwargs):
        return self._timed("read", self._client.read, *args, **kwargs)

    def search(self, *args, **kwargs):
        return self._timed("search", self._client.search, *args, **kwargs)


class InstrumentedClients:
    """FhirClients whose clients are instrumented (no change to the FHIR client itself)."""

    def __init__(self, clients: Any, metrics: Metrics):
        self._clients = clients
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients, name)

    def for_server(self, base_url: str) -> InstrumentedClient:
        return InstrumentedClient(self._clients.for_server(base_url), self._metrics)


def prepare_multiprocess_dir(path: str) -> None:
    """Empties (or makes) this instance's metrics folder before the workers start: stale files would count twice."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def worker_exit(pid: int) -> None:
    """gunicorn child_exit hook: a dead worker's live gauges go (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
