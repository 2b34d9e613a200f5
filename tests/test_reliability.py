"""Idempotency, load shedding, message limits and hostile input against the real server."""

from __future__ import annotations

import asyncio
import json
import sys
import tracemalloc

import grpc
import pytest
import yaml

from kameleoon.destination.v1 import destination_pb2 as pb
from service.delivery.idempotency import UNRESERVED, MemoryStore
from service.demo.sink import Reply
from service.errors import OutboxUnavailable
from service.outbox.window import OutboxStore
from tests.conftest import API_KEY, SETTINGS, bad_request_field, eventually

TS = "2024-03-15T12:34:56.789Z"
OTHER_PROJECT = pb.Settings(api_key=API_KEY, sitecode="other00001")


def track(message_id: str = "idem-1", settings: pb.Settings = SETTINGS) -> pb.LogEventRequest:
    return pb.LogEventRequest(settings=settings, event="Paid", timestamp=TS, message_id=message_id)


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


async def test_one_projects_message_id_does_not_block_another_project_or_action(stub, sink):
    """The idempotency key holds the sitecode and the action: the same messageId under another
    sitecode, or for another action, is another event."""
    first = await stub.LogEvent(track("scope-1"), timeout=5)
    other_project = await stub.LogEvent(track("scope-1", OTHER_PROJECT), timeout=5)
    other_action = await stub.IdentifyEvent(pb.IdentifyEventRequest(settings=SETTINGS, user_id="u-1", timestamp=TS, message_id="scope-1"), timeout=5)
    assert [r.duplicate for r in (first, other_project, other_action)] == [False, False, False]
    assert [(r.headers["x-segment-settings"], r.json()["type"]) for r in sink.received] == [
        (SETTINGS.sitecode, "track"),
        ("other00001", "track"),
        (SETTINGS.sitecode, "identify"),
    ]
    again = await stub.LogEvent(track("scope-1", OTHER_PROJECT), timeout=5)
    assert again.duplicate and len(sink.received) == 3


TWO_SUBSCRIPTIONS = [
    {
        "name": name,
        "subscribe": 'type = "track"',
        "partnerAction": "logEvent",
        "mapping": {
            "event": {"@path": "$.event"},
            "type": {"@path": "$.type"},
            "timestamp": {"@path": "$.timestamp"},
            "messageId": {"@path": "$.messageId"},
        },
    }
    for name in ("Track A", "Track B")
]


async def test_send_is_idempotent_per_subscription_and_per_project(start_service, sink, tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(yaml.safe_dump(TWO_SUBSCRIPTIONS, sort_keys=False))
    _, stub = await start_service(mappings=str(path))
    text = json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": "raw-2"})
    first = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=5)
    assert [(r.subscription, r.duplicate) for r in first.results] == [("Track A", False), ("Track B", False)]
    assert len(sink.received) == 2, "one messageId, two subscriptions: both delivered"
    again = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=5)
    assert [(r.duplicate, r.http_status, r.attempts) for r in again.results] == [(True, 0, 0), (True, 0, 0)]
    elsewhere = await stub.Send(pb.SendRequest(settings=OTHER_PROJECT, event_json=text), timeout=5)
    assert [r.duplicate for r in elsewhere.results] == [False, False]
    assert [r.headers["x-segment-settings"] for r in sink.received] == [SETTINGS.sitecode] * 2 + ["other00001"] * 2


async def test_an_event_matching_two_subscriptions_posts_both_under_the_callers_deadline(start_service, sink, tmp_path):
    """Both deliveries are counted under their action, and both attempts end at the caller's deadline
    with the service's own DEADLINE_EXCEEDED (not gRPC cancelling the call)."""
    path = tmp_path / "subscriptions.yaml"
    path.write_text(yaml.safe_dump(TWO_SUBSCRIPTIONS, sort_keys=False))
    app, stub = await start_service(mappings=str(path))
    sample = app.metrics.registry.get_sample_value
    await stub.Send(
        pb.SendRequest(settings=SETTINGS, event_json=json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": "both-1"})), timeout=5
    )
    assert sample("kameleoon_deliveries_total", {"action": "logEvent", "http_status": "200"}) == 2
    sink.default = Reply(hold=asyncio.Event())  # Kameleoon never answers
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(
            pb.SendRequest(settings=SETTINGS, event_json=json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": "both-2"})),
            timeout=1,
        )
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    held = sink.received[2:]
    assert len(held) == 2
    await eventually(lambda: all(attempt.abandoned is not None for attempt in held), what="both attempts cut")
    await eventually(
        lambda: sample("kameleoon_rpc_total", {"method": "Send", "code": "DEADLINE_EXCEEDED"}) == 1, what="the service's own DEADLINE_EXCEEDED"
    )


async def test_one_messageid_on_events_of_two_subscriptions_is_delivered_to_each(stub, sink):
    """The key names the subscription also when an event matches one alone (the presets): a track and a
    page sharing a messageId are two deliveries; each again is a duplicate."""
    track = json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": "shared-1"})
    page = json.dumps({"type": "page", "name": "Home", "timestamp": TS, "messageId": "shared-1"})
    answers = [await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=5) for text in (track, page, track, page)]
    assert [(r.results[0].subscription, r.results[0].duplicate) for r in answers] == [
        ("Track Calls", False),
        ("Page Calls", False),
        ("Track Calls", True),
        ("Page Calls", True),
    ]
    assert [r.json()["messageId"] for r in sink.received] == ["shared-1", "shared-1"]


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


async def test_memory_store_shares_a_bucket_between_keys_of_one_span():
    """Keys remembered within 1/8 of the window share a bucket: a key costs a hash in a set, not a bucket of its own."""
    now = [0.0]
    store = MemoryStore(window_s=8, max_entries=100_000, clock=lambda: now[0])
    tracemalloc.start()
    try:
        for i in range(20_000):
            now[0] += 0.00001
            await store.remember(f"key-{i}")
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 20_000
    assert held / 20_000 < 200, f"{held / 20_000:.0f} bytes per key"


async def test_overload_is_refused_fast_and_nothing_accepted_is_lost(start_service, sink):
    _, stub = await start_service(max_in_flight=3)
    sink.default = Reply(delay=0.5)
    calls = [stub.LogEvent(track(f"load-{i}"), timeout=10) for i in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    accepted = {f"load-{i}" for i, r in enumerate(results) if not isinstance(r, Exception)}
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(accepted) == 3
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert {r.details() for r in refused} == {"3 events are being delivered already (KAMELEOON_MAX_IN_FLIGHT): retry later"}
    assert {r.json()["messageId"] for r in sink.received} == accepted, "every accepted call was delivered, no refused one was"
    again = next(f"load-{i}" for i, r in enumerate(results) if isinstance(r, Exception))
    response = await stub.LogEvent(track(again), timeout=10)
    assert (response.duplicate, response.http_status) == (False, 200), "a refused messageId is delivered when sent again"


async def test_oversized_message_is_refused(start_service, sink):
    _, stub = await start_service(max_message_bytes=64 * 1024)
    request = track()
    request.properties.update({"blob": "x" * 100_000})
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.received == []
    assert (await stub.LogEvent(track(), timeout=5)).http_status == 200, "still serving"


def nested_properties(depth: int, kind: str, leaf: str) -> str:
    """Properties that make an event nest ``depth`` levels (the event is the first, its properties
    the second): objects or arrays inside, ending in an empty one or a number (a level too)."""
    inner = depth - 2  # the levels from the properties' own to the innermost container's
    innermost = {"empty": "{}" if kind == "objects" else "[]", "number": "1"}[leaf]
    if kind == "objects":
        return '{"a":' * inner + innermost + "}" * inner
    return '{"a":' + "[" * (inner - 1) + innermost + "]" * (inner - 1) + "}"


@pytest.mark.parametrize("kind", ["objects", "arrays"])
@pytest.mark.parametrize("leaf", ["empty", "number"])
async def test_send_takes_64_levels_and_refuses_65(stub, sink, kind, leaf):
    for depth in (64, 65):
        properties = nested_properties(depth, kind, leaf)
        event = '{"type":"track","event":"Deep","timestamp":"' + TS + f'","messageId":"deep-{depth}","properties":' + properties + "}"
        if depth == 64:
            response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event), timeout=10)
            assert [r.http_status for r in response.results] == [200]
            [received] = sink.received
            assert received.json()["properties"] == json.loads(properties), "delivered whole"
            continue
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == "event_json nests deeper than 64 levels"
        assert bad_request_field(raised.value) == "event_json"
        assert len(sink.received) == 1


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"track","timestamp":"' + TS + '","messageId":"deep","properties":' + '{"a":' * 100 + "1" + "}" * 100 + "}",
        '{"type":"track","timestamp":"' + TS + '","messageId":"deeper","properties":' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["100-level-objects", "100000-level-arrays"],
)
async def test_hostile_nesting_is_refused_with_memory_and_stack_unharmed(start_service, sink, text):
    """Refused before mapping, naming event_json; the parse neither builds the whole nesting
    (Python allocations while the call is served stay within a small multiple of its size) nor
    leaves the interpreter's recursion limit changed; the service goes on serving. With the size
    limit off (KAMELEOON_MAX_EVENT_BYTES=0), so that the depth check is what refuses it."""
    _, stub = await start_service(max_event_bytes=0)
    limit = sys.getrecursionlimit()
    tracemalloc.start()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event_json nests deeper than 64 levels" in raised.value.details()
    assert peak < 1_000_000 + 2 * len(text), f"{peak} bytes allocated for a {len(text)}-byte event"
    assert sys.getrecursionlimit() == limit
    assert sink.received == []
    assert (await stub.LogEvent(track("after"), timeout=5)).http_status == 200, "still serving"


async def test_huge_flat_array_is_delivered_whole(start_service, sink):
    """A 400 KB event, with the size limit off (KAMELEOON_MAX_EVENT_BYTES=0): parsed and sent whole."""
    _, stub = await start_service(max_event_bytes=0)
    text = '{"type":"track","timestamp":"' + TS + '","messageId":"big","properties":{"list":[' + ",".join(["1"] * 200_000) + "]}}"
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=30)
    assert [r.http_status for r in response.results] == [200]
    [received] = sink.received
    assert received.json()["properties"]["list"] == [1] * 200_000


class _BrokenOutbox:
    """An outbox whose database cannot be reached."""

    async def reserve(self, key, now, window_s, until):
        raise OutboxUnavailable("database is locked")

    async def unreserve(self, key, token, now):
        raise OutboxUnavailable("database is locked")

    async def remember(self, key, now):
        raise OutboxUnavailable("database is locked")


class _Lines:
    def __init__(self):
        self.lines = []

    def warning(self, event, **fields):
        self.lines.append((event, fields))


async def test_an_unreachable_outbox_window_posts_without_a_reservation_and_is_logged():
    """At least once: when the shared window cannot be asked the event is posted, not refused nor dropped
    as a duplicate; a record or release that fails after the post is logged."""
    log = _Lines()
    store = OutboxStore(_BrokenOutbox(), window_s=60, log=log, longest_s=1.0)
    token = await store.reserve("k", None)
    assert token == UNRESERVED
    await store.settle("k", token, delivered=False)  # nothing was reserved: nothing to free, nothing asked
    await store.settle("k", token, delivered=True)
    await store.settle("k", "1", delivered=False)
    assert log.lines == [
        ("idempotency look-up failed: posting without a reservation", {"error": "database is locked"}),
        ("idempotency record failed", {"error": "database is locked"}),
        ("idempotency release failed", {"error": "database is locked"}),
    ]
