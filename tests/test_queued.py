"""Queued delivery, end to end in one process: a real gRPC server, a real SQLite outbox file, the HTTP stand-in.

Every wait polls for a condition (with a generous overall timeout); retry windows and
backoffs are made small through settings, so nothing waits long.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from service.outbox.deliverer import CIRCUIT_THRESHOLD
from tests.conftest import API_KEY, SETTINGS, SITECODE, bad_request_field, patience

QUEUED, SYNC = pb.DELIVERY_MODE_QUEUED, pb.DELIVERY_MODE_SYNC
TS = "2024-01-01T00:00:00Z"
OTHER_KEY = base64.b64encode(json.dumps({"id": "other-id", "secret": "other-very-secret"}).encode()).decode()
OUTBOX_KEY = base64.b64encode(bytes(range(32))).decode()


async def until(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll ``predicate`` (sync or async) until it is truthy; fail after ``timeout`` seconds."""

    async def poll():
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(interval)

    return await asyncio.wait_for(poll(), patience(timeout))


def track(message_id: str, **extra) -> pb.SendRequest:
    event = {"type": "track", "event": "Signed Up", "timestamp": TS, "messageId": message_id, **extra}
    return pb.SendRequest(event_json=json.dumps(event))


def delivered_ids(sink) -> list[str]:
    return [r.json()["messageId"] for r in sink.accepted()]


@pytest.fixture
def queued_outbox(request, tmp_path) -> str:
    """The outbox of ``queued``: a file in tmp_path; a fresh PostgreSQL database in tests marked BOTH_STORES."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    return request.getfixturevalue("postgres_url")


# Operator RPCs and the messageId window work the same on every store.
BOTH_STORES = pytest.mark.parametrize("queued_outbox", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
async def queued(start_service, queued_outbox):
    """Start a service whose default delivery is queued, on ``queued_outbox``; returns (app, stub, admin)."""
    channels = []

    async def start(**overrides):
        settings = {
            "delivery": "queued",
            "outbox": queued_outbox,
            "api_key": API_KEY,
            "sitecode": SITECODE,
            "retry_max_backoff_s": 0.05,
            **overrides,
        }
        app, stub = await start_service(**settings)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        channels.append(channel)
        return app, stub, pb_grpc.OutboxAdminStub(channel)

    yield start
    for channel in channels:
        await channel.close()


async def test_queued_call_answers_once_committed_and_delivers_the_sync_request(queued, sink, tmp_path):
    sink.default = Reply(status=503)  # Kameleoon down: the event must be in the file when OK comes back
    app, stub, admin = await queued()
    request = pb.LogEventRequest(event="Order Completed", timestamp=TS, message_id="q-1", kameleoon_visitor_code="vc-1")
    request.properties.update({"revenue": 42})
    response = await stub.LogEvent(request, timeout=10)
    assert (response.queued, response.http_status, response.attempts, response.message_id) == (True, 0, 0, "q-1")
    assert response.outbox_id
    with sqlite3.connect(tmp_path / "outbox.db") as conn:
        rows = conn.execute("SELECT id, message_id, body FROM events").fetchall()
    assert [(str(i), m) for i, m, _ in rows] == [(response.outbox_id, "q-1")]

    sink.default = Reply()
    request.message_id = "s-1"
    request.delivery = SYNC
    synced = await stub.LogEvent(request, timeout=10)
    assert (synced.queued, synced.http_status, synced.outbox_id) == (False, 200, "")
    await until(lambda: {"q-1", "s-1"} <= set(delivered_ids(sink)))
    by_id = {r.json()["messageId"]: r for r in sink.accepted()}
    assert by_id["q-1"].body.replace('"q-1"', '"s-1"') == by_id["s-1"].body
    assert by_id["q-1"].headers["authorization"] == f"Basic {API_KEY}" == by_id["s-1"].headers["authorization"]
    assert by_id["q-1"].headers["x-segment-settings"] == SITECODE
    # Every attempt carried the same body and messageId.
    assert {r.body for r in sink.received if '"q-1"' in r.body} == {by_id["q-1"].body}
    stats = await until(lambda: _stats_when(admin, lambda s: s.pending == 0 and s.in_flight == 0))
    assert stats.dead == 0


async def test_bad_input_is_refused_at_once_and_nothing_is_stored(queued, sink):
    app, stub, admin = await queued()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(pb.LogEventRequest(event="x", message_id="bad-1"), timeout=10)  # no timestamp
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "timestamp" in raised.value.details()
    batch = await stub.SendBatch(
        pb.SendBatchRequest(
            requests=[
                track("good-1"),
                pb.SendRequest(event_json="{not json"),
                track("bad-2", timestamp="yesterday"),
                track("good-2"),
            ]
        ),
        timeout=10,
    )
    codes = [r.status.code for r in batch.responses]
    assert codes == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert [r.results[0].queued for r in (batch.responses[0], batch.responses[3])] == [True, True]
    await until(lambda: len(sink.accepted()) == 2)
    assert sorted(delivered_ids(sink)) == ["good-1", "good-2"]
    assert app.outbox.commits  # the store was used
    stats = await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)
    assert (stats.pending, stats.dead) == (0, 0)


async def test_an_outage_is_ridden_out_with_few_attempts_then_the_backlog_drains(queued, sink):
    sink.default = Reply(status=503)
    app, stub, admin = await queued(outbox_concurrency=4)
    ids = [f"o-{i}" for i in range(300)]
    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(i) for i in ids]), timeout=10)
    assert all(r.results[0].queued for r in batch.responses)
    # The circuit opened: Kameleoon gets probes, not one attempt per event.
    await until(lambda: len(sink.received) >= 2 * 4 + CIRCUIT_THRESHOLD + 3)
    failed_posts = len(sink.received)
    assert failed_posts < len(ids) // 2
    sink.default = Reply()
    await until(lambda: set(delivered_ids(sink)) == set(ids))
    bodies: dict = {}
    for received in sink.received:
        bodies.setdefault(received.json()["messageId"], set()).add(received.body)
    assert all(len(b) == 1 for b in bodies.values())  # the same body on every attempt
    stats = await until(lambda: _stats_when(admin, lambda s: s.pending == 0 and s.in_flight == 0))
    assert stats.dead == 0


async def _stats_when(admin, condition):
    stats = await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)
    return stats if condition(stats) else None


@BOTH_STORES
async def test_a_permanent_4xx_is_a_dead_letter_at_once_then_retry_delivers_it(queued, sink):
    sink.script.append(Reply(status=422, body='{"error":"bad payload"}'))
    app, stub, admin = await queued()
    response = await stub.IdentifyEvent(pb.IdentifyEventRequest(user_id="u-1", timestamp=TS, message_id="d-1"), timeout=10)
    stats = await until(lambda: _stats_when(admin, lambda s: s.dead == 1))
    assert [(a.action, a.dead) for a in stats.actions] == [("identify", 1)]
    listed = await admin.ListDeadLetters(pb.ListDeadLettersRequest(), timeout=5)
    [letter] = listed.dead_letters
    assert (letter.id, letter.message_id, letter.action, letter.route, letter.sitecode) == (
        response.outbox_id,
        "d-1",
        "identify",
        "identify",
        SITECODE,
    )
    assert (letter.attempts, letter.last_http_status) == (1, 422)
    assert "422" in letter.last_error and "bad payload" in letter.last_error
    assert letter.HasField("first_attempt_at") and letter.dead_at.ToSeconds() >= letter.accepted_at.ToSeconds()
    assert API_KEY not in str(listed) and "demo-secret" not in str(listed)
    assert len(sink.received) == 1  # not retried
    retried = await admin.RetryDeadLetters(pb.RetryDeadLettersRequest(filter=pb.DeadLetterFilter(ids=[letter.id])), timeout=5)
    assert retried.retried == 1
    await until(lambda: delivered_ids(sink) == ["d-1"])
    await until(lambda: _stats_when(admin, lambda s: s.dead == 0 and s.pending == 0 and s.in_flight == 0))


@BOTH_STORES
async def test_an_ended_window_makes_dead_letters_and_retry_delivers_them(queued, sink):
    sink.default = Reply(status=503)
    app, stub, admin = await queued(retry_window_s=1.0)
    ids = [f"w-{i}" for i in range(20)]
    await stub.SendBatch(pb.SendBatchRequest(requests=[track(i) for i in ids]), timeout=10)
    await until(lambda: _stats_when(admin, lambda s: s.dead == 20))
    letters = (await admin.ListDeadLetters(pb.ListDeadLettersRequest(page_size=50), timeout=5)).dead_letters
    assert sorted(d.message_id for d in letters) == sorted(ids)
    assert all("window" in d.last_error for d in letters)
    attempted = [d for d in letters if d.attempts]
    assert attempted and all(d.last_http_status == 503 for d in attempted)
    # One POST per attempt: the outbox schedules the retries, the delivery client makes none of its own.
    assert len(sink.received) == sum(d.attempts for d in letters)
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # an empty filter needs all=true
        await admin.RetryDeadLetters(pb.RetryDeadLettersRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    sink.default = Reply()
    retried = await admin.RetryDeadLetters(pb.RetryDeadLettersRequest(all=True), timeout=5)
    assert retried.retried == 20
    await until(lambda: set(delivered_ids(sink)) == set(ids))


@BOTH_STORES
async def test_dead_letters_page_filter_and_purge(queued, sink):
    sink.default = Reply(status=400)
    app, stub, admin = await queued()
    await stub.SendBatch(pb.SendBatchRequest(requests=[track(f"p-{i}") for i in range(5)]), timeout=10)
    await stub.PageEvent(pb.PageEventRequest(name="Home", timestamp=TS, message_id="p-page"), timeout=10)
    await until(lambda: _stats_when(admin, lambda s: s.dead == 6))
    first = await admin.ListDeadLetters(pb.ListDeadLettersRequest(page_size=4), timeout=5)
    second = await admin.ListDeadLetters(pb.ListDeadLettersRequest(page_size=4, page_token=first.next_page_token), timeout=5)
    assert (len(first.dead_letters), len(second.dead_letters), second.next_page_token) == (4, 2, "")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.ListDeadLetters(pb.ListDeadLettersRequest(page_size=4, page_token="not-a-token"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_field(refused.value) == "page_token"
    pages = await admin.ListDeadLetters(pb.ListDeadLettersRequest(filter=pb.DeadLetterFilter(action="page")), timeout=5)
    assert [d.message_id for d in pages.dead_letters] == ["p-page"]
    none = await admin.ListDeadLetters(pb.ListDeadLettersRequest(filter=pb.DeadLetterFilter(http_status=503)), timeout=5)
    assert list(none.dead_letters) == []
    purged = await admin.PurgeDeadLetters(pb.PurgeDeadLettersRequest(filter=pb.DeadLetterFilter(action="logEvent")), timeout=5)
    assert purged.purged == 5
    assert (await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)).dead == 1


async def test_a_request_with_its_own_api_key_needs_the_outbox_key(queued, sink, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps([{"title": "Drop tests", "enabled": True, "if": "properties.test = true", "actions": [{"type": "DROP"}]}]))
    app, stub, admin = await queued(filters=str(filters))
    own = pb.Settings(api_key=OTHER_KEY, sitecode=SITECODE)
    # An event a filter drops is stored nowhere: its own apiKey needs no sealing.
    dropped = await stub.SendBatch(pb.SendBatchRequest(settings=own, requests=[track("k-0", properties={"test": True})]), timeout=10)
    assert (dropped.responses[0].status.code, dropped.responses[0].filtered_by) == (grpc.StatusCode.OK.value[0], "Drop tests")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(pb.LogEventRequest(settings=own, timestamp=TS, message_id="k-1"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "KAMELEOON_OUTBOX_KEY" in raised.value.details() and OTHER_KEY not in raised.value.details()
    batch = await stub.SendBatch(pb.SendBatchRequest(settings=own, requests=[track("k-2")]), timeout=10)
    assert batch.responses[0].status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    # The server's own key, even when the request repeats it, is stored as a reference.
    ok = await stub.LogEvent(pb.LogEventRequest(settings=SETTINGS, timestamp=TS, message_id="k-3"), timeout=10)
    assert ok.queued
    await until(lambda: delivered_ids(sink) == ["k-3"])


async def test_an_own_api_key_is_stored_sealed_and_delivered_as_sent(queued, sink, tmp_path):
    sink.default = Reply(status=503)  # keep it in the file a while
    app, stub, admin = await queued(outbox_key=base64.b64decode(OUTBOX_KEY), outbox_concurrency=1)
    own = pb.Settings(api_key=OTHER_KEY, sitecode="other12345")
    response = await stub.LogEvent(pb.LogEventRequest(settings=own, timestamp=TS, message_id="sealed-1"), timeout=10)
    assert response.queued
    await until(lambda: len(sink.received) >= 2)
    for suffix in ("", "-wal"):
        path = tmp_path / f"outbox.db{suffix}"
        if path.exists():
            content = path.read_bytes()
            assert OTHER_KEY.encode() not in content and b"other-very-secret" not in content and b"other-id" not in content
    sink.default = Reply()
    await until(lambda: delivered_ids(sink) == ["sealed-1"])
    [delivered] = sink.accepted()
    assert delivered.headers["authorization"] == f"Basic {OTHER_KEY}"
    assert delivered.headers["x-segment-settings"] == "other12345"


@BOTH_STORES
async def test_max_pending_refuses_with_resource_exhausted(queued, sink):
    sink.default = Reply(status=503)
    app, stub, admin = await queued(outbox_max_pending=3)
    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(f"m-{i}") for i in range(3)]), timeout=10)
    assert all(r.results[0].queued for r in batch.responses)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(track("m-3"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "KAMELEOON_OUTBOX_MAX_PENDING" in raised.value.details()
    # Sync calls are not limited by the outbox.
    sink.default = Reply()
    request = track("m-sync")
    request.delivery = SYNC
    assert (await stub.Send(request, timeout=10)).results[0].http_status == 200


async def test_a_queued_batch_is_committed_in_one_transaction(queued, sink, log_lines):
    """A batch's queued events are stored together or not at all: three past a limit of two are all refused
    (one at a time, the first two would fit), each with its own line naming the method; two fit."""
    sink.default = Reply(status=503)  # nothing leaves the outbox during the test
    app, stub, admin = await queued(outbox_max_pending=2)
    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(f"t-{i}") for i in range(3)]), timeout=10)
    assert [r.status.code for r in batch.responses] == [grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]] * 3
    failed = [line for line in log_lines() if line["event"] == "event failed"]
    assert [(line["method"], line["message_id"], line["code"]) for line in failed] == [
        ("SendBatch", f"t-{i}", "RESOURCE_EXHAUSTED") for i in range(3)
    ]
    assert (await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)).pending == 0
    fits = await stub.SendBatch(pb.SendBatchRequest(requests=[track("t-0"), track("t-1")]), timeout=10)
    assert [r.results[0].queued for r in fits.responses] == [True, True]


async def test_queued_page_events_without_a_messageid_are_each_stored(queued, sink):
    """No messageId, no idempotency key: every such event is stored and delivered, none a duplicate;
    a stream's events take the server's default mode (queued here)."""
    app, stub, admin = await queued()
    first = await stub.PageEvent(pb.PageEventRequest(settings=SETTINGS, timestamp=TS, name="Home"), timeout=10)
    second = await stub.PageEvent(pb.PageEventRequest(settings=SETTINGS, timestamp=TS, name="Home"), timeout=10)
    assert (first.queued, first.duplicate, second.queued, second.duplicate) == (True, False, True, False)
    assert first.outbox_id and second.outbox_id and first.outbox_id != second.outbox_id

    async def requests():
        yield track("stream-1")

    [streamed] = [r async for r in stub.SendStream(requests(), timeout=10)]
    assert (streamed.results[0].queued, streamed.results[0].http_status) == (True, 0)
    await until(lambda: len(sink.accepted()) == 3)
    assert sorted(r.json().get("messageId", "") for r in sink.accepted()) == ["", "", "stream-1"]


@BOTH_STORES
async def test_a_messageid_is_taken_once_for_queued_and_sync_calls(queued, sink):
    app, stub, admin = await queued()
    first = await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="dup-1"), timeout=10)
    again = await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="dup-1"), timeout=10)
    synced = await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="dup-1", delivery=SYNC), timeout=10)
    assert (first.queued, first.duplicate) == (True, False)
    assert (again.queued, again.duplicate, again.outbox_id) == (False, True, "")
    assert (synced.duplicate, synced.http_status) == (True, 0)
    # And a sync delivery takes the key for queued calls too.
    await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="dup-2", delivery=SYNC), timeout=10)
    assert (await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="dup-2"), timeout=10)).duplicate
    await until(lambda: len(sink.accepted()) == 2)
    stats = await until(lambda: _stats_when(admin, lambda s: s.pending == 0 and s.in_flight == 0))
    assert sorted(delivered_ids(sink)) == ["dup-1", "dup-2"] and stats.dead == 0


@BOTH_STORES
async def test_a_messageid_utf8_cannot_encode_is_queued_delivered_and_taken_once(queued, sink, log_lines):
    # JSON's "\ud800" is a legal lone surrogate; Segment takes it, the parser keeps it, and so must every store.
    refused: list[str] = []

    def choose(received):  # the first post of m-\ud800 is refused for good: a dead letter, retried below
        if received.json()["messageId"] == "m-\ud800" and not refused:
            refused.append("m-\ud800")
            return Reply(status=422)
        return Reply()

    sink.choose = choose
    app, stub, admin = await queued()
    first = await stub.Send(track("m-\ud800"), timeout=10)
    again = await stub.Send(track("m-\ud800"), timeout=10)
    other = await stub.Send(track("m-\ud801"), timeout=10)
    results = [response.results[0] for response in (first, again, other)]
    assert [(r.queued, r.duplicate, bool(r.outbox_id)) for r in results] == [(True, False, True), (False, True, False), (True, False, True)]
    assert first.message_id == "m-\ufffd"  # a protobuf string cannot hold a lone surrogate
    await until(lambda: _stats_when(admin, lambda s: s.dead == 1))
    [letter] = (await admin.ListDeadLetters(pb.ListDeadLettersRequest(), timeout=5)).dead_letters
    assert (letter.id, letter.message_id) == (first.results[0].outbox_id, "m-\ufffd")
    [dead] = [line for line in log_lines() if line["event"] == "dead letter"]
    assert dead["message_id"] == "m-\ud800"
    await admin.RetryDeadLetters(pb.RetryDeadLettersRequest(filter=pb.DeadLetterFilter(ids=[letter.id])), timeout=5)
    synced = await stub.Send(pb.SendRequest(event_json=track("s-\ud800").event_json, delivery=SYNC), timeout=10)
    assert synced.results[0].http_status == 200
    await until(lambda: len(sink.accepted()) == 3)
    by_id = {r.json()["messageId"]: r for r in sink.accepted()}
    assert sorted(by_id) == ["m-\ud800", "m-\ud801", "s-\ud800"]
    assert by_id["m-\ud800"].body.replace("m-", "s-") == by_id["s-\ud800"].body  # what sync delivery sends
    stats = await until(lambda: _stats_when(admin, lambda s: s.pending == 0 and s.in_flight == 0))
    assert stats.dead == 0


async def test_streams_and_batches_choose_their_mode(queued, sink):
    app, stub, admin = await queued(delivery="sync")
    batch = await stub.SendBatch(pb.SendBatchRequest(delivery=QUEUED, requests=[track("b-1"), track("b-2")]), timeout=10)
    assert [r.results[0].queued for r in batch.responses] == [True, True]
    own_mode = track("b-3")
    own_mode.delivery = SYNC  # an event's own mode wins over its batch's
    mixed = await stub.SendBatch(pb.SendBatchRequest(delivery=QUEUED, requests=[own_mode, track("b-4")]), timeout=10)
    assert [(r.results[0].queued, r.results[0].http_status) for r in mixed.responses] == [(False, 200), (True, 0)]

    async def requests():
        for i in range(20):
            request = track(f"st-{i}")
            request.delivery = QUEUED if i % 2 else SYNC
            yield request

    responses = [r async for r in stub.SendStream(requests(), timeout=20)]
    assert [r.results[0].queued for r in responses] == [bool(i % 2) for i in range(20)]
    await until(lambda: len(sink.accepted()) == 24)
    assert len(set(delivered_ids(sink))) == 24


async def test_a_sync_batch_on_a_queued_server_is_delivered_during_the_call(queued, sink):
    app, stub, admin = await queued()  # queued by default
    batch = await stub.SendBatch(pb.SendBatchRequest(delivery=SYNC, requests=[track("sb-1"), track("sb-2")]), timeout=10)
    assert [(r.results[0].queued, r.results[0].http_status) for r in batch.responses] == [(False, 200), (False, 200)]
    assert sorted(delivered_ids(sink)) == ["sb-1", "sb-2"]


async def test_with_the_window_off_a_repeated_messageid_is_queued_again(queued, sink):
    app, stub, admin = await queued(idempotency_window_s=0)
    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track("w-1"), track("w-1")]), timeout=10)
    again = await stub.Send(track("w-1"), timeout=10)
    ids = [r.results[0].outbox_id for r in batch.responses] + [again.results[0].outbox_id]
    assert all(ids) and len(set(ids)) == 3 and not any(r.results[0].duplicate for r in [*batch.responses, again])
    await until(lambda: len(sink.accepted()) == 3)
    assert delivered_ids(sink) == ["w-1"] * 3


async def test_queued_without_an_outbox_fails_naming_the_setting(start_service, sink):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE)  # sync by default, no KAMELEOON_OUTBOX
    assert app.outbox is None
    for call in (
        stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="n-1", delivery=QUEUED), timeout=10),
        stub.Send(pb.SendRequest(event_json=track("n-2").event_json, delivery=QUEUED), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.details() == (
            "queued delivery needs an outbox: set KAMELEOON_OUTBOX (or KAMELEOON_DELIVERY=queued for the default location)"
        )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.OutboxAdminStub(channel).GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sink.received == []


async def test_a_queued_batch_without_an_outbox_refuses_only_the_events_it_would_store(start_service, sink, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps([{"title": "Drop tests", "enabled": True, "if": "properties.test = true", "actions": [{"type": "DROP"}]}]))
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, filters=str(filters))
    batch = await stub.SendBatch(pb.SendBatchRequest(delivery=QUEUED, requests=[track("f-1", properties={"test": True}), track("f-2")]), timeout=10)
    dropped, refused = batch.responses
    assert (dropped.message_id, dropped.status.code, dropped.filtered_by) == ("f-1", grpc.StatusCode.OK.value[0], "Drop tests")
    assert (refused.message_id, refused.status.code) == ("f-2", grpc.StatusCode.FAILED_PRECONDITION.value[0])
    assert "KAMELEOON_OUTBOX" in refused.status.message
    assert sink.received == []


@BOTH_STORES
async def test_outbox_metrics_count_enqueued_delivered_and_dead_letters(queued, sink):
    sink.script.append(Reply(status=400))
    app, stub, admin = await queued()
    await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="x-1"), timeout=10)
    await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="x-2"), timeout=10)
    await until(lambda: _stats_when(admin, lambda s: s.dead == 1 and s.pending == 0 and s.in_flight == 0))

    def value(name: str) -> float:
        for line in app.metrics.exposition().decode().splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    await until(lambda: value('kameleoon_outbox_delivered_total{action="logEvent"}') == 1)
    assert value('kameleoon_outbox_enqueued_total{action="logEvent"}') == 2
    assert value('kameleoon_outbox_dead_lettered_total{action="logEvent"}') == 1
    duplicate = await stub.LogEvent(pb.LogEventRequest(timestamp=TS, message_id="x-1"), timeout=10)
    assert duplicate.duplicate and not duplicate.queued
    assert value('kameleoon_duplicates_total{action="logEvent"}') == 1
    assert value('kameleoon_outbox_enqueued_total{action="logEvent"}') == 2
