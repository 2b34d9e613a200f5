"""OpenTelemetry: a server span per RPC, a client span per Kameleoon attempt, trace ids in the logs."""

from __future__ import annotations

import io
import json

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.server import create_server
from service.config import Config
from service.demo.sink import Reply
from service.ops import logs
from tests.conftest import SETTINGS


async def test_spans_and_log_trace_ids(sink, restore_logging):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lines = io.StringIO()
    logs.configure("info", "json", stream=lines, trace_ids=True)
    app = await create_server(Config(base_url=sink.url, backoff_base_s=0.01), "127.0.0.1:0", tracer_provider=provider)
    try:
        sink.script.append(Reply(status=503))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            await stub.LogEvent(pb.LogEventRequest(settings=SETTINGS, event="e", timestamp="2024-01-01T00:00:00Z", message_id="t-1"), timeout=5)
            await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=5)
    finally:
        await app.stop(0)
    # Traced, the POSTs go through the session: each with the event's body (and the credential check without one).
    first, second, check = sink.received
    assert (first.method, second.method, check.method) == ("POST", "POST", "GET")
    assert first.json()["messageId"] == "t-1" and second.body == first.body and check.body == ""
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.name.endswith("/LogEvent")]
    assert len(servers) == 1
    server = servers[0]
    clients = [s for s in spans if s.parent is not None and s.parent.span_id == server.context.span_id]
    assert len(clients) == 2, "one client span per HTTP attempt"
    [line] = [json.loads(text) for text in lines.getvalue().splitlines() if '"LogEvent"' in text]
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    everything = " ".join(str(dict(s.attributes)) for s in spans)
    assert "demo-secret" not in everything and SETTINGS.api_key not in everything
