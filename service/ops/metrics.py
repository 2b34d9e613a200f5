"""Prometheus metrics: what the service did, on their own HTTP port (KAMELEOON_METRICS_LISTEN).

    kameleoon_rpc_total{method, code}                   RPCs answered, by gRPC code (refused ones too)
    kameleoon_rpc_in_flight{method}                     RPCs being served
    kameleoon_deliveries_total{action, http_status}     events that reached a final answer from Kameleoon
                                                        (http_status "none": no answer: refused, timed out, cancelled)
    kameleoon_delivery_attempts_total{action, outcome}  HTTP attempts: ok, retryable, final
    kameleoon_http_attempts_total{action, http_status}  HTTP attempts by Kameleoon's answer ("none": no answer), so a
                                                        503 retried into a 200 shows as one of each
    kameleoon_delivery_retries_total{action}            attempts after the first
    kameleoon_delivery_seconds{action}                  one delivery, all attempts included (histogram)
    kameleoon_events_in_flight                          events being delivered now
    kameleoon_duplicates_total{action}                  events not sent again: delivered within the idempotency window
    kameleoon_pool_wait_seconds                         time an HTTP attempt waited for a pooled connection (histogram)
    kameleoon_outbox_pending                            queued events waiting for an attempt (the whole outbox)
    kameleoon_outbox_in_flight                          queued events being attempted (the whole outbox)
    kameleoon_outbox_oldest_pending_age_seconds         age of the oldest undelivered queued event
    kameleoon_outbox_dead_letters                       dead letters kept
    kameleoon_outbox_enqueued_total{action}             events committed to the outbox by this process
    kameleoon_outbox_delivered_total{action}            queued events Kameleoon took, delivered by this process
    kameleoon_outbox_dead_lettered_total{action}        queued events that became dead letters in this process
    kameleoon_filtered_events_total{filter, outcome}    events a destination filter acted on: dropped, sampled_out,
                                                        error (condition not evaluable: dropped), properties_dropped,
                                                        properties_allowed
    kameleoon_config_reloads_total{config, result}      reloads of subscriptions / filters: applied, unchanged, refused
    kameleoon_config_version_info{config, version}      1 for the loaded version (a content hash) of each configuration

``http_status`` labels are bounded (:func:`status_label`): every status the service
treats in its own way keeps its number, any other folds into its class
(``4xx_other``...), so a proxy answering odd codes cannot grow the series.

RPCs are counted by the method handlers themselves (service.api.decoding) and the
bearer-token check (service.api.auth), not by an interceptor: grpc.aio's interceptor
path costs every call more than the counting. Every metric lives in the registry of one :class:`Metrics`,
so servers in one process (tests) do not mix their numbers. The ones updated
per event or per call are counted in plain Python (:class:`CounterFamily`,
:class:`GaugeFamily`, :class:`HistogramFamily`) and read when scraped.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Callable
from typing import Any

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
POOL_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Family(Collector):
    """A metric family counted in plain Python, read by the registry when scraped. Every update
    comes from the event loop's thread, so none takes a lock (prometheus_client's metrics take one
    per update: about 0.6 us a counter, 2 us a histogram observation, on every event's path)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], registry: CollectorRegistry):
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], Any] = {}
        registry.register(self)

    exposed_as: type[CounterMetricFamily | GaugeMetricFamily] = CounterMetricFamily

    def collect(self):
        family = self.exposed_as(self.name, self.documentation, labels=self.labelnames)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        yield family


class CounterFamily(_Family):
    def inc(self, labels: tuple[str, ...]) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + 1


class GaugeFamily(_Family):
    exposed_as = GaugeMetricFamily

    def add(self, labels: tuple[str, ...], amount: int) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + amount


class HistogramFamily(_Family):
    """Per label values: a count per bucket (the last above every bound) and the sum."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], buckets: tuple[float, ...], registry: CollectorRegistry):
        self._bounds = buckets
        super().__init__(name, documentation, labelnames, registry)

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        entry = self.values.get(labels)
        if entry is None:
            entry = self.values[labels] = [[0] * (len(self._bounds) + 1), 0.0]
        bounds = self._bounds
        entry[0][0 if amount <= bounds[0] else bisect.bisect_left(bounds, amount)] += 1
        entry[1] += amount

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [repr(float(bound)) for bound in self._bounds] + ["+Inf"]
        for labels, (counts, total) in self.values.items():
            cumulative = list(itertools.accumulate(counts))
            family.add_metric(labels, list(zip(edges, cumulative)), total)
        yield family


class _ConcurrencyFamilies(Collector):
    """The gates toward Kameleoon, read when scraped: limit, in flight and round-trip estimate per sitecode
    (``source`` returns (sitecode, limit, in flight, rtt or None) tuples; "" is the one fixed gate)."""

    def __init__(self, registry: CollectorRegistry):
        self.source: Callable[[], list[tuple[str, int, int, float | None]]] = list
        registry.register(self)

    def collect(self):
        limit = GaugeMetricFamily("kameleoon_concurrency_limit", "Requests to Kameleoon allowed in flight at once", labels=("sitecode",))
        in_flight = GaugeMetricFamily("kameleoon_concurrency_in_flight", "Requests to Kameleoon in flight now", labels=("sitecode",))
        rtt = GaugeMetricFamily("kameleoon_round_trip_seconds", "Moving average of Kameleoon's round trip", labels=("sitecode",))
        for sitecode, allowed, busy, seconds in self.source():
            label = (sitecode or "all",)
            limit.add_metric(label, allowed)
            in_flight.add_metric(label, busy)
            if seconds is not None:
                rtt.add_metric(label, seconds)
        yield from (limit, in_flight, rtt)


# Statuses that mean something of their own here: success, the errors mapped to their own gRPC
# code or message (service/errors.py), and the retried ones (service/delivery/client.py).
KNOWN_STATUSES = frozenset({200, 201, 202, 204, 400, 401, 403, 404, 408, 413, 422, 423, 429, 500, 501, 502, 503, 504})


def _label(status: int) -> str:
    if not status:
        return "none"
    if status in KNOWN_STATUSES:
        return str(status)
    if 100 <= status <= 599:
        return f"{status // 100}xx_other"
    return "other"


_STATUS_LABELS = tuple(_label(status) for status in range(1000))


def status_label(status: int) -> str:
    """Kameleoon's HTTP status as a metric label: "none" (0: no answer), a known status, or its class."""
    return _STATUS_LABELS[status] if 0 <= status < 1000 else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpcs = CounterFamily("kameleoon_rpc", "RPCs answered, by method and gRPC code", ("method", "code"), r)
        self.rpcs_in_flight = GaugeFamily("kameleoon_rpc_in_flight", "RPCs being served", ("method",), r)
        self.deliveries = CounterFamily("kameleoon_deliveries", "Events with a final answer from Kameleoon", ("action", "http_status"), r)
        self.attempts = CounterFamily("kameleoon_delivery_attempts", "HTTP attempts to Kameleoon", ("action", "outcome"), r)
        self.http_attempts = CounterFamily(
            "kameleoon_http_attempts", "HTTP attempts to Kameleoon by its HTTP status (none: no answer)", ("action", "http_status"), r
        )
        self.retries = CounterFamily("kameleoon_delivery_retries", "HTTP attempts after the first", ("action",), r)
        self.delivery_seconds = HistogramFamily(
            "kameleoon_delivery_seconds", "Time to deliver one event, every attempt included", ("action",), DELIVERY_BUCKETS, r
        )
        self.events_in_flight = Gauge("kameleoon_events_in_flight", "Events being delivered to Kameleoon now", registry=r)
        self.duplicates = CounterFamily(
            "kameleoon_duplicates", "Events not sent again: already delivered within the idempotency window", ("action",), r
        )
        self.pool_waits = HistogramFamily(
            "kameleoon_pool_wait_seconds", "Time an HTTP attempt to Kameleoon waited for a pooled connection", (), POOL_WAIT_BUCKETS, r
        )
        self.outbox_pending = Gauge("kameleoon_outbox_pending", "Queued events waiting for an attempt", registry=r)
        self.outbox_in_flight = Gauge("kameleoon_outbox_in_flight", "Queued events being attempted now", registry=r)
        self.outbox_oldest_age = Gauge("kameleoon_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered queued event", registry=r)
        self.outbox_dead = Gauge("kameleoon_outbox_dead_letters", "Dead letters kept in the outbox", registry=r)
        self.outbox_free = Gauge("kameleoon_outbox_free_bytes", "Bytes free on the SQLite outbox's filesystem", registry=r)
        self.outbox_headroom = Gauge(
            "kameleoon_outbox_min_free_bytes", "Free bytes below which new queued events are refused (KAMELEOON_OUTBOX_MIN_FREE_BYTES)", registry=r
        )
        self.outbox_enqueued = Counter("kameleoon_outbox_enqueued_total", "Events committed to the outbox", ("action",), registry=r)
        self.outbox_delivered = Counter("kameleoon_outbox_delivered_total", "Queued events Kameleoon took", ("action",), registry=r)
        self.outbox_dead_lettered = Counter("kameleoon_outbox_dead_lettered_total", "Queued events that became dead letters", ("action",), registry=r)
        self.http_requests = CounterFamily(
            "kameleoon_http_requests", "Requests to the HTTP Tracking API, by route and HTTP status", ("route", "status"), r
        )
        self.discarded = Counter("kameleoon_discarded_events_total", "Events not sent, by Segment's discard reason", ("reason",), registry=r)
        self.instance_events = CounterFamily(
            "kameleoon_destination_events",
            "Events per source and destination instance: delivered (sync), queued, or discarded",
            ("source", "destination", "result"),
            r,
        )
        self.previews = CounterFamily("kameleoon_previews", "Preview calls (the event tester), by whether they sent", ("sent",), r)
        self.filtered = Counter(
            "kameleoon_filtered_events_total", "Events a destination filter acted on, by filter title and outcome", ("filter", "outcome"), registry=r
        )
        self.config_reloads = Counter(
            "kameleoon_config_reloads_total", "Configuration reloads, by configuration and result", ("config", "result"), registry=r
        )
        self.config_version = Gauge(
            "kameleoon_config_version_info", "1 for the configuration version in force (a content hash)", ("config", "version"), registry=r
        )

        self.concurrency = _ConcurrencyFamilies(r)  # the client sets its source
        self._children: dict[tuple, object] = {}
        self._statuses: dict[int, str] = {0: "none"}

    def child(self, metric, *labels: str):
        """``metric.labels(*labels)`` of a prometheus_client metric, looked up once (labels() is not cheap)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # -- what delivery, the pipeline and the method handlers report ----------

    def attempt(self, action: str, outcome: str, number: int, http_status: int) -> None:
        """One HTTP attempt, the ``number``-th of its delivery; ``http_status`` 0: no answer."""
        self.attempts.inc((action, outcome))
        self.http_attempts.inc((action, status_label(http_status)))
        if number > 1:
            self.retries.inc((action,))

    def delivered(self, action: str, http_status: int, seconds: float) -> None:
        self.deliveries.inc((action, status_label(http_status)))
        self.delivery_seconds.observe((action,), seconds)

    def duplicate(self, action: str) -> None:
        self.duplicates.inc((action,))

    def pool_wait(self, seconds: float) -> None:
        self.pool_waits.observe((), seconds)

    def rpc_started(self, method: str) -> None:
        self.rpcs_in_flight.add((method,), 1)

    def rpc_finished(self, method: str, context, exc: BaseException | None) -> None:
        """An RPC ended (``exc``: what it raised): counted by its final gRPC code (the context's, else OK,
        CANCELLED when its caller cancelled it, UNKNOWN when it raised)."""
        self.rpcs.inc((method, _code_name(context, exc)))
        self.rpcs_in_flight.add((method,), -1)

    def rpc_refused(self, method: str, code: str) -> None:
        """An RPC ended before its handler ran (a refused bearer token)."""
        self.rpcs.inc((method, code))

    def outbox_event(self, counter: str, action: str) -> None:
        """One queued event ``enqueued``, ``delivered`` or ``dead_lettered``."""
        self.child(getattr(self, f"outbox_{counter}"), action).inc()

    def outbox_stats(self, stats) -> None:
        self.outbox_pending.set(stats.pending)
        self.outbox_in_flight.set(stats.in_flight)
        self.outbox_oldest_age.set(stats.oldest_pending_age_s)
        self.outbox_dead.set(stats.dead)

    def outbox_disk(self, free_bytes: int, headroom_bytes: int) -> None:
        self.outbox_free.set(free_bytes)
        self.outbox_headroom.set(headroom_bytes)

    def filtered_event(self, title: str, outcome: str) -> None:
        self.child(self.filtered, title, outcome).inc()

    def discarded_event(self, reason: str) -> None:
        self.child(self.discarded, reason).inc()

    def instance_event(self, source: str, destination: str, result: str) -> None:
        """One event's result in one destination instance: ``delivered``, ``queued`` or ``discarded``."""
        self.instance_events.inc((source, destination, result))

    def preview(self, sent: bool) -> None:
        self.previews.inc(("true" if sent else "false",))

    def http_request(self, route: str, status: int) -> None:
        self.http_requests.inc((route, str(status)))

    def config_reload(self, config: str, result: str) -> None:
        self.config_reloads.labels(config, result).inc()

    def config_in_force(self, config: str, version: str, previous: str | None = None) -> None:
        if previous is not None and previous != version:
            try:
                self.config_version.remove(config, previous)
            except KeyError:
                pass
        self.config_version.labels(config, version).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- the HTTP endpoint ----------------------------------------------------

    async def serve(self, host: str, port: int) -> tuple[web.AppRunner, int]:
        """Serve GET /metrics on host:port; returns the runner (``await runner.cleanup()`` stops it) and the port."""

        async def handle(_request: web.Request) -> web.Response:
            return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def _code_name(context, exc: BaseException | None) -> str:
    code = context.code()
    if code is None:  # no status set: it ended, the caller cancelled it, or it raised
        return "OK" if exc is None else "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"
    if isinstance(code, int):
        return _CODE_NAMES.get(code, "UNKNOWN")
    return code.name


class NoMetrics:
    """Stands in when metrics are off: every report is dropped."""

    def attempt(self, action: str, outcome: str, number: int, http_status: int) -> None:
        pass

    def delivered(self, action: str, http_status: int, seconds: float) -> None:
        pass

    def duplicate(self, action: str) -> None:
        pass

    def outbox_event(self, counter: str, action: str) -> None:
        pass

    def outbox_stats(self, stats) -> None:
        pass

    def filtered_event(self, title: str, outcome: str) -> None:
        pass

    def discarded_event(self, reason: str) -> None:
        pass

    def instance_event(self, source: str, destination: str, result: str) -> None:
        pass

    def preview(self, sent: bool) -> None:
        pass

    def pool_wait(self, seconds: float) -> None:
        pass

    def rpc_started(self, method: str) -> None:
        pass

    def rpc_finished(self, method: str, context, exc: BaseException | None) -> None:
        pass

    def rpc_refused(self, method: str, code: str) -> None:
        pass


__all__ = ["Metrics", "NoMetrics", "status_label"]
