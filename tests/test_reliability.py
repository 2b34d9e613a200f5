"""Idempotency, load shedding, message limits and hostile input against the real server."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.idempotency import MemoryStore
from service.sink import Reply
from tests.conftest import SETTINGS

TS = "2024-03-15T12:34:56.789Z"


def track(message_id: str = "idem-1") -> pb.LogEventRequest:
    return pb.LogEventRequest(settings=SETTINGS, event="Paid", timestamp=TS, message_id=message_id)


async def test_delivered_message_id_is_not_sent_again(stub, sink):
    first = await stub.LogEvent(track(), timeout=5)
    second = await stub.LogEvent(track(), timeout=5)
    assert (first.duplicate, first.attempts) == (False, 1)
    assert (second.duplicate, second.attempts, second.http_status) == (True, 0, 0)
    assert len(sink.received) == 1
    other = await stub.LogEvent(track("idem-2"), timeout=5)
    assert other.duplicate is False and len(sink.received) == 2


async def test_concurrent_retries_of_one_message_send_it_once(stub, sink):
    sink.default = Reply(delay=0.3)
    responses = await asyncio.gather(*(stub.LogEvent(track("same"), timeout=5) for _ in range(5)))
    assert sorted(r.duplicate for r in responses) == [False, True, True, True, True]
    assert len(sink.received) == 1


async def test_failed_delivery_is_not_remembered(start_service, sink):
    _, stub = await start_service(max_attempts=1)
    sink.script.append(Reply(status=503))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.LogEvent(track(), timeout=5)
    response = await stub.LogEvent(track(), timeout=5)
    assert response.duplicate is False and len(sink.received) == 2


async def test_send_is_idempotent_per_subscription(stub, sink):
    text = json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": "raw-1"})
    first = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=5)
    again = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=5)
    assert [r.duplicate for r in first.results] == [False]
    assert [r.duplicate for r in again.results] == [True]
    assert len(sink.received) == 1


async def test_idempotency_can_be_turned_off(start_service, sink):
    _, stub = await start_service(idempotency_window_s=0)
    await stub.LogEvent(track(), timeout=5)
    await stub.LogEvent(track(), timeout=5)
    assert len(sink.received) == 2


async def test_memory_store_forgets_after_the_window_and_stays_bounded():
    now = [0.0]
    store = MemoryStore(window_s=8, max_entries=3, clock=lambda: now[0])
    for key in "abcd":
        now[0] += 1.5  # one bucket each
        await store.remember(key)
    assert len(store) == 3 and not await store.seen("a") and await store.seen("b") and await store.seen("d")
    now[0] = 6 + 8 + 1  # d's bucket (from 6 to 7) is past the window
    assert not await store.seen("d")
    assert len(store) == 0
    await store.remember("e")
    assert len(store) == 1 and await store.seen("e")
    now[0] += 7.9
    assert await store.seen("e"), "kept for the whole window"


async def test_overload_is_refused_fast_and_nothing_accepted_is_lost(start_service, sink):
    _, stub = await start_service(max_in_flight=3)
    sink.default = Reply(delay=0.5)
    calls = [stub.LogEvent(track(f"load-{i}"), timeout=10) for i in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    accepted = {f"load-{i}" for i, r in enumerate(results) if not isinstance(r, Exception)}
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(accepted) == 3
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert {r.json()["messageId"] for r in sink.received} == accepted, "every accepted call was delivered, no refused one was"


async def test_oversized_message_is_refused(start_service, sink):
    _, stub = await start_service(max_message_bytes=64 * 1024)
    request = track()
    request.properties.update({"blob": "x" * 100_000})
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.received == []
    assert (await stub.LogEvent(track(), timeout=5)).http_status == 200, "still serving"


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"track","properties":' + '{"a":' * 100 + "1" + "}" * 100 + "}",
        '{"type":"track","properties":' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"type":"track","timestamp":"' + TS + '","messageId":"big","properties":{"list":[' + ",".join(["1"] * 200_000) + "]}}",
    ],
    ids=["deep-objects", "very-deep-arrays", "huge-array"],
)
async def test_hostile_events_do_not_hurt_the_service(stub, sink, text):
    try:
        response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=10)
        assert len(response.results) == len(sink.received)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert sink.received == []
    assert (await stub.LogEvent(track("after"), timeout=5)).http_status == 200, "still serving"
