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

A grpc.aio server interceptor of our own counts RPCs (py-grpc-prometheus has no
asyncio support). Every metric lives in the registry of one :class:`Metrics`,
so servers in one process (tests) do not mix their numbers.
"""

from __future__ import annotations

import asyncio

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


# Statuses that mean something of their own here: success, the errors mapped to their own gRPC
# code or message (service/errors.py), and the retried ones (service/delivery.py).
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
        self.rpcs = Counter("kameleoon_rpc_total", "RPCs answered, by method and gRPC code", ("method", "code"), registry=r)
        self.rpcs_in_flight = Gauge("kameleoon_rpc_in_flight", "RPCs being served", ("method",), registry=r)
        self.deliveries = Counter(
            "kameleoon_deliveries_total", "Events with a final answer from Kameleoon", ("action", "http_status"), registry=r
        )
        self.attempts = Counter("kameleoon_delivery_attempts_total", "HTTP attempts to Kameleoon", ("action", "outcome"), registry=r)
        self.http_attempts = Counter(
            "kameleoon_http_attempts_total",
            "HTTP attempts to Kameleoon by its HTTP status (none: no answer)",
            ("action", "http_status"),
            registry=r,
        )
        self.retries = Counter("kameleoon_delivery_retries_total", "HTTP attempts after the first", ("action",), registry=r)
        self.delivery_seconds = Histogram(
            "kameleoon_delivery_seconds",
            "Time to deliver one event, every attempt included",
            ("action",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.events_in_flight = Gauge("kameleoon_events_in_flight", "Events being delivered to Kameleoon now", registry=r)
        self.duplicates = Counter(
            "kameleoon_duplicates_total", "Events not sent again: already delivered within the idempotency window", ("action",), registry=r
        )
        self.outbox_pending = Gauge("kameleoon_outbox_pending", "Queued events waiting for an attempt", registry=r)
        self.outbox_in_flight = Gauge("kameleoon_outbox_in_flight", "Queued events being attempted now", registry=r)
        self.outbox_oldest_age = Gauge(
            "kameleoon_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered queued event", registry=r
        )
        self.outbox_dead = Gauge("kameleoon_outbox_dead_letters", "Dead letters kept in the outbox", registry=r)
        self.outbox_enqueued = Counter(
            "kameleoon_outbox_enqueued_total", "Events committed to the outbox", ("action",), registry=r
        )
        self.outbox_delivered = Counter(
            "kameleoon_outbox_delivered_total", "Queued events Kameleoon took", ("action",), registry=r
        )
        self.outbox_dead_lettered = Counter(
            "kameleoon_outbox_dead_lettered_total", "Queued events that became dead letters", ("action",), registry=r
        )
        self.filtered = Counter(
            "kameleoon_filtered_events_total", "Events a destination filter acted on, by filter title and outcome", ("filter", "outcome"), registry=r
        )
        self.config_reloads = Counter(
            "kameleoon_config_reloads_total", "Configuration reloads, by configuration and result", ("config", "result"), registry=r
        )
        self.config_version = Gauge(
            "kameleoon_config_version_info", "1 for the configuration version in force (a content hash)", ("config", "version"), registry=r
        )

        self._children: dict[tuple, object] = {}

    def child(self, metric, *labels: str):
        """``metric.labels(*labels)``, looked up once (labels() is not cheap on the hot path)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # -- what delivery, the pipeline and the interceptor report ---------------

    def attempt(self, action: str, outcome: str, number: int, http_status: int) -> None:
        """One HTTP attempt, the ``number``-th of its delivery; ``http_status`` 0: no answer."""
        self.child(self.attempts, action, outcome).inc()
        self.child(self.http_attempts, action, status_label(http_status)).inc()
        if number > 1:
            self.child(self.retries, action).inc()

    def delivered(self, action: str, http_status: int, seconds: float) -> None:
        self.child(self.deliveries, action, status_label(http_status)).inc()
        self.child(self.delivery_seconds, action).observe(seconds)

    def duplicate(self, action: str) -> None:
        self.child(self.duplicates, action).inc()

    def outbox_event(self, counter: str, action: str) -> None:
        """One queued event ``enqueued``, ``delivered`` or ``dead_lettered``."""
        self.child(getattr(self, f"outbox_{counter}"), action).inc()

    def outbox_stats(self, stats) -> None:
        self.outbox_pending.set(stats.pending)
        self.outbox_in_flight.set(stats.in_flight)
        self.outbox_oldest_age.set(stats.oldest_pending_age_s)
        self.outbox_dead.set(stats.dead)

    def filtered_event(self, title: str, outcome: str) -> None:
        self.child(self.filtered, title, outcome).inc()

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


def _method_name(full: str) -> str:
    return full.rsplit("/", 1)[-1]


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every RPC by method and final gRPC code, and the RPCs in flight."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics
        self._wrapped: dict[str, tuple] = {}  # method -> (its handler, the counting handler)

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None:
            return None
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, _method_name(details.method))
        self._wrapped[details.method] = (handler, wrapped)  # one entry a method: the handler seen last
        return wrapped

    def _wrap(self, handler, method: str):
        metrics = self._metrics
        in_flight = metrics.child(metrics.rpcs_in_flight, method)
        kwargs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}

        def finish(context, exc: BaseException | None) -> None:
            code = context.code()
            if code is None:  # no status set: it ended, the caller cancelled it, or it raised
                code = grpc.StatusCode.OK if exc is None else grpc.StatusCode.CANCELLED if isinstance(exc, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN
            if isinstance(code, int):
                code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
            metrics.child(metrics.rpcs, method, code.name).inc()
            in_flight.dec()

        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def unary(request, context):
                in_flight.inc()
                exc = None
                try:
                    return await behaviour(request, context)
                except BaseException as error:
                    exc = error
                    raise
                finally:
                    finish(context, exc)

            return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
        if handler.stream_stream is not None:
            stream_behaviour = handler.stream_stream

            async def stream(request_iterator, context):
                in_flight.inc()
                exc = None
                try:
                    async for response in stream_behaviour(request_iterator, context):
                        yield response
                except BaseException as error:
                    exc = error
                    raise
                finally:
                    finish(context, exc)

            return grpc.stream_stream_rpc_method_handler(stream, **kwargs)
        return handler


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


__all__ = ["Metrics", "MetricsInterceptor", "NoMetrics", "status_label"]
