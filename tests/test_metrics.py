"""Prometheus metrics show real traffic: RPCs by code, deliveries by HTTP status, retries, refusals."""

from __future__ import annotations

import aiohttp
import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import SETTINGS

TS = "2024-03-15T12:34:56.789Z"


def track(message_id: str) -> pb.LogEventRequest:
    return pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id=message_id)


async def scrape(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def test_metrics_show_traffic_errors_and_refusals(start_service, sink):
    app, stub = await start_service(metrics_listen=("127.0.0.1", 0), auth_tokens=("tok",), max_attempts=2)
    auth = (("authorization", "Bearer tok"),)
    await stub.LogEvent(track("ok-1"), metadata=auth, timeout=5)
    await stub.LogEvent(track("ok-1"), metadata=auth, timeout=5)  # duplicate
    sink.script.append(Reply(status=503))
    await stub.LogEvent(track("retried"), metadata=auth, timeout=5)
    sink.script.append(Reply(status=400, body="bad"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.LogEvent(track("rejected"), metadata=auth, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.LogEvent(track("no-token"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.LogEvent(pb.LogEventRequest(settings=SETTINGS), metadata=auth, timeout=5)
    await stub.Send(pb.SendRequest(settings=SETTINGS, event_json='{"type":"page","timestamp":"' + TS + '"}'), metadata=auth, timeout=5)

    m = await scrape(app.metrics_port)
    assert m['kameleoon_rpc_total{code="OK",method="LogEvent"}'] == 3
    assert m['kameleoon_rpc_total{code="INVALID_ARGUMENT",method="LogEvent"}'] == 2
    assert m['kameleoon_rpc_total{code="UNAUTHENTICATED",method="LogEvent"}'] == 1
    assert m['kameleoon_rpc_total{code="OK",method="Send"}'] == 1
    assert m['kameleoon_deliveries_total{action="logEvent",http_status="200"}'] == 2
    assert m['kameleoon_deliveries_total{action="logEvent",http_status="400"}'] == 1
    assert m['kameleoon_deliveries_total{action="page",http_status="200"}'] == 1
    assert m['kameleoon_delivery_attempts_total{action="logEvent",outcome="retryable"}'] == 1
    assert m['kameleoon_delivery_retries_total{action="logEvent"}'] == 1
    assert m['kameleoon_duplicates_total{action="logEvent"}'] == 1
    assert m['kameleoon_delivery_seconds_count{action="logEvent"}'] == 3
    assert m["kameleoon_events_in_flight"] == 0
    assert m['kameleoon_rpc_in_flight{method="LogEvent"}'] == 0
    assert SETTINGS.api_key not in str(m)


async def test_metrics_are_off_by_default(start_service):
    app, _ = await start_service()
    assert app.metrics_port is None
