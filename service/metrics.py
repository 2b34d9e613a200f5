"""Prometheus metrics: what the service did, on their own HTTP port (KAMELEOON_METRICS_LISTEN).

    kameleoon_rpc_total{method, code}                   RPCs answered, by gRPC code (refused ones too)
    kameleoon_rpc_in_flight{method}                     RPCs being served
    kameleoon_deliveries_total{action, http_status}     events that reached a final answer from Kameleoon
                                                        (http_status "none": no answer: refused, timed out, cancelled)
    kameleoon_delivery_attempts_total{action, outcome}  HTTP attempts: ok, retryable, final
    kameleoon_delivery_retries_total{action}            attempts after the first
    kameleoon_delivery_seconds{action}                  one delivery, all attempts included (histogram)
    kameleoon_events_in_flight                          events being delivered now
    kameleoon_duplicates_total{action}                  events not sent again: delivered within the idempotency window
    kameleoon_pool_wait_seconds                         time an HTTP attempt waited for a pooled connection (histogram)

A grpc.aio server interceptor of our own counts RPCs (py-grpc-prometheus has no
asyncio support). Every metric lives in the registry of one :class:`Metrics`,
so servers in one process (tests) do not mix their numbers.
"""

from __future__ import annotations

import bisect

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

POOL_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class WaitHistogram(Collector):
    """A label-less Prometheus histogram for a wait that is mostly zero: observing 0 adds one to
    an integer (prometheus_client's Histogram takes a lock per observation, about 2 us)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self._name = name
        self._documentation = documentation
        self._bounds = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0
        registry.register(self)

    def observe(self, seconds: float) -> None:
        if seconds <= 0.0:
            self._counts[0] += 1
        else:
            self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
            self._sum += seconds

    def collect(self):
        cumulative, total = [], 0
        for bound, count in zip((*self._bounds, float("inf")), self._counts):
            total += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        yield HistogramMetricFamily(self._name, self._documentation, buckets=cumulative, sum_value=self._sum)



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
        self.pool_waits = WaitHistogram(
            "kameleoon_pool_wait_seconds", "Time an HTTP attempt to Kameleoon waited for a pooled connection", POOL_WAIT_BUCKETS, r
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

    def attempt(self, action: str, outcome: str, number: int) -> None:
        self.child(self.attempts, action, outcome).inc()
        if number > 1:
            self.child(self.retries, action).inc()

    def delivered(self, action: str, http_status: int, seconds: float) -> None:
        self.child(self.deliveries, action, str(http_status) if http_status else "none").inc()
        self.child(self.delivery_seconds, action).observe(seconds)

    def duplicate(self, action: str) -> None:
        self.child(self.duplicates, action).inc()

    def pool_wait(self, seconds: float) -> None:
        self.pool_waits.observe(seconds)

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
            if code is None:
                code = grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
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

    def attempt(self, action: str, outcome: str, number: int) -> None:
        pass

    def delivered(self, action: str, http_status: int, seconds: float) -> None:
        pass

    def duplicate(self, action: str) -> None:
        pass

    def pool_wait(self, seconds: float) -> None:
        pass


__all__ = ["Metrics", "MetricsInterceptor", "NoMetrics"]
