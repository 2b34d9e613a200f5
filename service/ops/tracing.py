"""OpenTelemetry tracing, off by default (KAMELEOON_TRACING=console or otlp).

A server span per RPC (opentelemetry-instrumentation-grpc's asyncio server
interceptor) and a client span per HTTP attempt to Kameleoon
(opentelemetry-instrumentation-aiohttp-client), the client spans children of
the server span. Log lines carry ``trace_id`` and ``span_id``. URLs are
recorded without their query string: getapikey's carries the decoded secret.
OpenTelemetry is imported only when tracing is on (it costs start-up time and memory).
"""

from __future__ import annotations

import sys

SERVICE_NAME = "kameleoon-destination"


def provider_for(mode: str):
    """The tracer provider for KAMELEOON_TRACING's ``mode``: off (None), console or otlp (OTEL_EXPORTER_OTLP_* apply)."""
    if mode == "off":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if mode == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _without_query(url) -> str:
    from yarl import URL

    return str(URL(str(url)).with_query(None))


def server_interceptor(provider):
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return aio_server_interceptor(tracer_provider=provider)


def client_trace_config(provider):
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return create_trace_config(url_filter=_without_query, tracer_provider=provider)


def add_trace_ids(_logger, _method, event: dict) -> dict:
    """structlog processor: the current span's ids, when there is one."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event
