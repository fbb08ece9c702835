"""``run --metrics-port``: the run's figures in Prometheus' text format, on loopback by default.

A registry per run (never the process-wide default), so two runs in one process, or a test,
never see each other's counts. Commits are counted as they stand (a commit listener); figures
that live elsewhere — rejects, API calls, the freshness lag — are read at scrape time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from afterload.core.materializer import Commit
from afterload.errors import AfterloadError
from afterload.triggers.base import FireOutcome
from afterload.triggers.runner import JobTrigger

log = logging.getLogger("afterload.metrics")

COMMIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Live(Collector):
    """Figures read when scraped: rejects, API calls and retries, freshness lag."""

    def __init__(self, metrics: RunMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        rejects = CounterMetricFamily("afterload_rejects", "Bad lines sent to rejects files.")
        rejects.add_metric([], m.rejects())
        yield rejects
        calls = CounterMetricFamily(
            "afterload_api_calls", "HTTP requests sent to trigger targets.", labels=["trigger"]
        )
        retries = CounterMetricFamily(
            "afterload_api_retries",
            "Requests repeated after a transient failure.",
            labels=["trigger"],
        )
        lag = GaugeMetricFamily(
            "afterload_freshness_lag_seconds",
            "Now minus the commit time of the newest data a successful run covers.",
            labels=["trigger"],
        )
        now = m.now()
        for trigger in m.triggers:
            name = trigger.memory.name if trigger.memory is not None else trigger.action.label
            client = getattr(trigger.action, "client", None)
            calls.add_metric([name], getattr(client, "calls", 0))
            retries.add_metric([name], getattr(client, "retries", 0))
            if trigger.memory is not None:
                fresh = trigger.memory.state.succeeded
                if fresh is not None:
                    lag.add_metric([name], (now - fresh.committed_at).total_seconds())
        yield calls
        yield retries
        yield lag


class RunMetrics:
    """The metrics of one run: feed it commits and trigger outcomes, serve it over HTTP."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.documents = Counter("afterload_documents", "Documents committed.", registry=r)
        self.rows = Counter("afterload_rows", "Rows written (upserts and deletes).", registry=r)
        self.bytes = Counter("afterload_bytes", "Bytes of input committed.", registry=r)
        self.commits = Counter("afterload_commits", "Transactions committed.", registry=r)
        self.commit_seconds = Histogram(
            "afterload_commit_duration_seconds",
            "Seconds from a transaction's hand-over to its commit standing.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "afterload_trigger_decisions",
            "Trigger fires by outcome (started, skipped, failed).",
            ["trigger", "outcome"],
            registry=r,
        )
        self.triggers: list[JobTrigger] = []
        self.rejects: Callable[[], int] = lambda: 0
        r.register(_Live(self))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def committed(self, commit: Commit) -> None:
        """A commit listener."""
        self.commits.inc()
        self.documents.inc(commit.documents)
        self.rows.inc(commit.rows)
        self.bytes.inc(commit.bytes)
        self.commit_seconds.observe(commit.seconds)

    def decided(self, trigger: JobTrigger, outcome: FireOutcome) -> None:
        """A trigger observer."""
        name = trigger.memory.name if trigger.memory is not None else trigger.action.label
        self.decisions.labels(name, outcome.kind).inc()

    def watch(self, triggers: Iterable[JobTrigger]) -> None:
        for trigger in triggers:
            self.triggers.append(trigger)
            trigger.observers.append(self.decided)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (0 picks a free port); returns the port."""
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise AfterloadError(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from None
        self._server, self._thread = server, thread
        bound = int(server.server_address[1])
        log.info("metrics at http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
