"""Prometheus metrics: what the service counts, the hooks that count it, and the /metrics exposition.

Under gunicorn every worker is a process of its own, so the counts live in prometheus_client's multiprocess mode:
each worker writes its values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it, empties
it at start and marks dead workers), and a scrape, answered by any one worker, sums the files of all of them.
Without that variable (the Flask test client, a single process) each app counts in its own registry.

Cardinality is bounded by construction: labels hold only values the service itself chose from small fixed sets
(a URL rule, an HTTP method, a status code, a model version, a cause, a yes/no). Never an observation id, a key id,
a department, an officer or anything else from a request body or header. The series a scrape returns: 16 per
route for the latency histogram (13 buckets, +Inf, count, sum; 10 routes counting "unmatched"), one per route,
method and status actually answered (a few dozen), 2 per model version for decisions, 9 for pool waits, a handful
more; tests/test_monitoring.py holds a scrape under ``SERIES_BOUND`` (400) and prints the count.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

EXTENSION = "ctrp3_metrics"
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The service answers in ~1-10 ms and a 503 within 4 s; gunicorn recycles a worker stuck for 15 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
POOL_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # a URL no route matches: its path is client text, never a label
# Why a request was answered 503 (the ``cause`` label of ctrp3_unavailable_total).
CAUSES = ("database", "pool_exhausted", "statement_timeout", "lock_timeout", "schema_out_of_date", "unhealthy")
_PG_CAUSES = {"57014": "statement_timeout", "55P03": "lock_timeout"}


# The *_created series double the count and are not exported in multiprocess mode anyway: same output either way.
disable_created_metrics()


def multiprocess_dir() -> str | None:
    """The directory of the workers' metric files, or None when this process counts alone."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


class Metrics:
    """The service's metrics, and one method per event; label values are cached so a request costs a few µs."""

    def __init__(self, registry: CollectorRegistry | None):
        self.registry = registry
        self.requests = Counter("ctrp3_http_requests", "Requests answered, by URL rule, method and status.",
                                ("route", "method", "status"), registry=registry)
        self.latency = Histogram("ctrp3_http_request_duration_seconds",
                                 "Time from the request's first hook to its response, by URL rule.",
                                 ("route",), buckets=LATENCY_BUCKETS, registry=registry)
        self.decisions = Counter("ctrp3_decisions", "New decisions logged, by model version and answer "
                                 "(a retried id answered from the log counts in ctrp3_decision_replays_total).",
                                 ("model_version", "should_search"), registry=registry)
        self.replays = Counter("ctrp3_decision_replays", "Decisions answered from the log for a retried id.",
                               registry=registry)
        self.outcomes = Counter("ctrp3_outcomes", "Outcomes received (accepted, repeats included), by outcome.",
                                ("contraband_found",), registry=registry)
        self.unavailable = Counter("ctrp3_unavailable", "Requests answered 503, by cause.", ("cause",),
                                   registry=registry)
        self.pool_waits = Histogram("ctrp3_db_pool_wait_seconds",
                                    "Waits for a free pooled database connection (only when all were in use), "
                                    "including those that gave up (503 pool_exhausted).",
                                    buckets=POOL_WAIT_BUCKETS, registry=registry)
        self.model_switches = Counter("ctrp3_model_switches", "Times a worker changed its live model.",
                                      registry=registry)
        # An info metric as a gauge (prometheus_client's Info does not work across processes): 1 for each version
        # a live worker serves. livemax drops a worker's value when it dies (gunicorn.conf.py's child_exit).
        self.live_model = Gauge("ctrp3_model_info", "The model version live workers serve (1).",
                                ("version",), multiprocess_mode="livemax", registry=registry)
        self.shadow_agreement = Counter("ctrp3_shadow_comparisons", "Live and shadow decisions on the same request, "
                                        "by whether they agree.", ("live_version", "shadow_version", "agree"),
                                        registry=registry)
        self._request_children: dict = {}
        self._latency_children: dict = {}
        self._decision_children: dict = {}
        self._shadow_children: dict = {}
        self.live_version: str | None = None
        self.live_version_of: Callable[[], str] = lambda: self.live_version
        self._published_by: int | None = None  # the pid that published live_version

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def decided(self, decision) -> None:
        """Count a decision answered (a service.predictions.Decision): a new one by version and answer, and its
        agreement with the shadow model when one scored it; a replayed one apart."""
        if decision.replayed:
            self.replays.inc()
            return
        key = (decision.model_version, decision.should_search)
        counter = self._decision_children.get(key)
        if counter is None:
            counter = self._decision_children[key] = self.decisions.labels(decision.model_version,
                                                                           str(decision.should_search).lower())
        counter.inc()
        if decision.shadow_version is not None:
            self.shadow_compared(decision.model_version, decision.shadow_version,
                                 decision.shadow_should_search == decision.should_search)

    def outcome_received(self, contraband_found: bool) -> None:
        """Count an accepted outcome."""
        self.outcomes.labels("true" if contraband_found else "false").inc()

    def unavailable_because(self, cause: str) -> None:
        """Count a 503 by its cause (one of CAUSES)."""
        self.unavailable.labels(cause).inc()

    def pool_waited(self, seconds: float) -> None:
        """Record a wait for a pooled connection (models.database calls it through the pool's wait observer)."""
        self.pool_waits.observe(seconds)

    def model_loaded(self, version: str) -> None:
        """Note the model this process serves; a switch (another version than before) is counted and published.

        Called at start-up, then after every request and at every scrape with what the process serves now, so a
        switch by the model registry's follower thread is seen at the worker's next request. At start-up it only
        notes the version: gunicorn's master preloads the app, and a gauge it set would stay in its own file.
        """
        previous, self.live_version = self.live_version, version
        if previous is not None and previous != version:
            self.model_switches.inc()
            if self._published_by == os.getpid():
                self.live_model.labels(previous).set(0)
            self._publish()

    def _publish(self) -> None:
        self.live_model.labels(self.live_version).set(1)
        self._published_by = os.getpid()

    def publish_once_per_process(self) -> None:
        """Publish the live version in this process if not yet done (each worker, at its first request)."""
        if self._published_by != os.getpid() and self.live_version is not None:
            self._publish()

    def shadow_compared(self, live_version: str, shadow_version: str, agree: bool) -> None:
        """Count one comparison of the live and the shadow model's decisions on the same request."""
        key = (live_version, shadow_version, agree)
        counter = self._shadow_children.get(key)
        if counter is None:
            counter = self._shadow_children[key] = self.shadow_agreement.labels(live_version, shadow_version,
                                                                                str(agree).lower())
        counter.inc()

    def exposition(self) -> bytes:
        """The text format of every worker's metrics (multiprocess mode) or of this app's registry."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)


def cause_of(error: Exception) -> str:
    """The CAUSES entry of a database error answered 503."""
    if "connection pool exhausted" in str(error):
        return "pool_exhausted"
    code = getattr(getattr(error, "orig", None), "pgcode", None)
    if code in _PG_CAUSES:
        return _PG_CAUSES[code]
    if "database is locked" in str(error):  # SQLite's busy timeout
        return "lock_timeout"
    return "database"


def current_metrics() -> Metrics | None:
    """The Metrics of the current app (None for an app built without ``init_app``)."""
    return current_app.extensions.get(EXTENSION)


def count_unavailable(cause: str) -> None:
    """Count a 503 of the current request by cause, if the app has metrics."""
    metrics = current_metrics()
    if metrics is not None:
        metrics.unavailable_because(cause)


def _after_request(response):
    metrics: Metrics = current_app.extensions[EXTENSION]
    started = g.get("request_started")  # set by service.request_log, the first hook
    live = metrics.live_version_of()
    if live != metrics.live_version:  # the registry follower switched this worker's model since its last request
        metrics.model_loaded(live)
    metrics.publish_once_per_process()
    current = request._get_current_object()  # one context lookup, not one per attribute
    rule = current.url_rule
    metrics.request_done(rule.rule if rule is not None else UNMATCHED_ROUTE,
                         current.method if current.method in _METHODS else "OTHER", response.status_code,
                         time.perf_counter() - started if started is not None else 0.0)
    return response


def metrics_response() -> Response:
    """The /metrics answer: every worker's metrics in Prometheus' text format 0.0.4."""
    metrics: Metrics = current_app.extensions[EXTENSION]
    metrics.model_loaded(metrics.live_version_of())  # the scraped worker may have switched, or not served yet
    metrics.publish_once_per_process()
    return Response(metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def init_app(app: Flask, live_version: Callable[[], str], database) -> Metrics:
    """Create the app's metrics, count every request, and watch the pool's waits (after request_log.init_app).

    ``live_version()`` names the model the process serves now; it is read after each request, so a switch by the
    model registry's follower is counted and published by the worker's next request (or scrape).
    """
    metrics = Metrics(registry=None if multiprocess_dir() else CollectorRegistry(auto_describe=True))
    metrics.live_version_of = live_version
    app.extensions[EXTENSION] = metrics
    app.after_request(_after_request)
    if hasattr(database, "wait_observer"):
        database.wait_observer = metrics.pool_waited
    metrics.model_loaded(live_version())
    if not multiprocess_dir():  # one process: publish now (a preloading master must not, see model_loaded)
        metrics.publish_once_per_process()
    return metrics
