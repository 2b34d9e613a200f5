"""The HTTP connection pool: KAMELEOON_POOL_SIZE requests at most in flight to Kameleoon, the time
events wait for a connection in kameleoon_pool_wait_seconds, and the header lines on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import SETTINGS, eventually

TS = "2024-03-15T12:34:56.789Z"


def event(message_id: str) -> pb.SendRequest:
    return pb.SendRequest(event_json=json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": message_id}))


async def test_events_past_the_pool_wait_for_a_connection_and_the_wait_is_measured(start_service, sink):
    app, stub = await start_service(pool_size=2)
    sink.default = Reply(delay=0.3)
    call = stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=[event(f"p-{i}") for i in range(6)]), timeout=20)
    await sink.wait_for(2)
    assert len(sink.received) == 2, "two connections: the third event waits for one"
    response = await call
    assert [r.status.code for r in response.responses] == [0] * 6
    assert len(sink.received) == 6
    sample = app.metrics.registry.get_sample_value
    assert sample("kameleoon_pool_wait_seconds_count") == 6
    # Two took a free connection at once; four waited for an answer of the stand-in (0.3 s).
    assert sample("kameleoon_pool_wait_seconds_bucket", {"le": "0.0005"}) == 2
    assert sample("kameleoon_pool_wait_seconds_bucket", {"le": "0.1"}) == 2
    assert sample("kameleoon_pool_wait_seconds_sum") >= 4 * 0.25


async def test_a_cancelled_wait_gives_its_connection_on(start_service, sink, log_lines):
    app, stub = await start_service(pool_size=1)
    release = asyncio.Event()
    sink.default = Reply(hold=release)
    first = asyncio.ensure_future(stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event("c-1").event_json), timeout=20))
    await sink.wait_for(1)
    waiting = stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event("c-2").event_json), timeout=20)
    # Both events in flight, one at the stand-in: the other waits for the one connection. Its caller gives up.
    in_flight = lambda: app.metrics.registry.get_sample_value("kameleoon_events_in_flight")  # noqa: E731
    await eventually(lambda: in_flight() == 2, what="the second event waiting for the connection")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The waiting call ended as cancelled, its place in the queue given up cleanly (no error of its own).
    await eventually(lambda: any(line.get("code") == "CANCELLED" for line in log_lines()), what="the cancelled call's line")
    release.set()
    await first
    assert [line["code"] for line in log_lines() if line["event"] == "rpc"] == ["CANCELLED", "OK"]
    assert not [line for line in log_lines() if line["event"] == "rpc failed"]
    sink.default = Reply()
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event("c-3").event_json), timeout=20)
    assert response.results[0].http_status == 200, "the connection was not lost with the cancelled wait"
    assert [r.json()["messageId"] for r in sink.received] == ["c-1", "c-3"]
    # ... nor doubled: two events at once still share the one connection, the second waits for it.
    at_once = app.metrics.registry.get_sample_value("kameleoon_pool_wait_seconds_bucket", {"le": "0.0005"})
    sink.default = Reply(delay=0.3)
    await asyncio.gather(*(stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(f"c-{n}").event_json), timeout=20) for n in (4, 5)))
    assert app.metrics.registry.get_sample_value("kameleoon_pool_wait_seconds_bucket", {"le": "0.0005"}) == at_once + 1


async def test_the_header_lines_are_segments(stub, sink):
    await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event("h-1").event_json), timeout=10)
    [received] = sink.received
    assert sorted(received.headers) == sorted(
        ["host", "authorization", "x-segment-settings", "content-type", "user-agent", "accept", "content-length"]
    ), "no accept-encoding (no compression asked for), no aiohttp user-agent"
    assert received.headers["accept"] == "*/*"
    assert received.headers["user-agent"] == "Segment (Actions)"
    assert received.headers["content-type"] == "application/json"
    # Spelt as the contract and Segment's fetch spell them: our header names go out in lower case.
    ours = {"authorization", "x-segment-settings", "content-type", "user-agent"}
    assert sorted(name for name in received.header_names if name.lower() in ours) == sorted(ours)


async def test_the_credential_check_names_its_user_agent_in_lower_case(stub, sink):
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=10)
    [received] = sink.received
    assert received.method == "GET" and received.headers["user-agent"] == "Segment (Actions)"
    assert "user-agent" in received.header_names


async def test_a_wait_cancelled_as_the_connection_comes_back_ends_cleanly(start_service, sink, log_lines):
    """A caller gives up on an event waiting for the one connection just as the event holding it is answered,
    twelve times: whichever the service sees first, the waiting call ends cancelled (or, handed the connection
    first, delivered), never with an error of its own (the answer's give-back may take the cancelled waiter
    out of the queue before the waiter runs its own cancellation); the connection serves the next call."""
    app, stub = await start_service(pool_size=1)
    in_flight = lambda: app.metrics.registry.get_sample_value("kameleoon_events_in_flight")  # noqa: E731
    rpc_lines = lambda: [line for line in log_lines() if line["event"] == "rpc"]  # noqa: E731
    for round_ in range(12):
        release = asyncio.Event()
        sink.default = Reply(hold=release)
        first = asyncio.ensure_future(stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(f"r{round_}-a").event_json), timeout=20))
        await eventually(lambda: in_flight() == 1, what="the first event holding the connection")
        waiting = stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(f"r{round_}-b").event_json), timeout=20)
        await eventually(lambda: in_flight() == 2, what="the second event waiting for it")
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        release.set()
        assert (await first).results[0].http_status == 200
        await eventually(lambda: len(rpc_lines()) == 2 * (round_ + 1) and in_flight() == 0, what="both calls' lines")
    assert not [line for line in log_lines() if line["event"] == "rpc failed"]
    assert {line["code"] for line in rpc_lines()} <= {"OK", "CANCELLED"}
    sink.default = Reply()
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event("r-last").event_json), timeout=20)
    assert response.results[0].http_status == 200
