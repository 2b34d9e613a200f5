"""Two replicas on one outbox (a SQLite file, a PostgreSQL database) and the same messageIds sent to both at once.

Each replica is a real gRPC server with its own connection to the store (as two
processes would have); Kameleoon is the HTTP stand-in, holding the first POST
of each messageId so that it is in flight while the other replica is asked.
While it is, the other replica waits (the key is reserved in the store): it
answers ``duplicate`` when that post succeeded, posts itself when it failed,
and a queued call neither stores a second copy nor loses the event.
Every wait polls for a condition.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from service.outbox import create
from service.outbox.base import BUSY, TAKEN
from service.outbox.window import RESERVE_MARGIN_S
from tests.conftest import API_KEY, SETTINGS, SITECODE
from tests.test_queued import track as raw_track
from tests.test_queued import until

TS = "2024-03-15T12:34:56.789Z"
IDS = [f"same-{n}" for n in range(10)]
SYNC, QUEUED = pb.DELIVERY_MODE_SYNC, pb.DELIVERY_MODE_QUEUED


def track(message_id: str, delivery: int = SYNC) -> pb.LogEventRequest:
    return pb.LogEventRequest(settings=SETTINGS, event="Paid", timestamp=TS, message_id=message_id, delivery=delivery)


@pytest.fixture
async def replicas(start_service, outbox_url):
    """Two services sharing ``outbox_url``, sync by default, one HTTP attempt per call: [(app, stub), (app, stub)]."""
    settings = dict(outbox=outbox_url, delivery="sync", api_key=API_KEY, sitecode=SITECODE, max_attempts=1, retry_max_backoff_s=0.05)
    return [await start_service(**settings), await start_service(**settings)]


def hold_first_posts(sink, first: Reply) -> None:
    """The first POST of each messageId gets ``first``; the others an immediate 200."""
    seen: set[str] = set()

    def choose(received):
        message_id = received.json()["messageId"]
        if message_id in seen:
            return Reply()
        seen.add(message_id)
        return first

    sink.choose = choose


async def call(stub, request, timeout: float = 30):
    """The response, or the gRPC status code it failed with."""
    try:
        return await stub.LogEvent(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code()


def waiting(log_lines) -> int:
    """Calls that found their messageId held by a delivery in flight on another replica (and wait)."""
    return sum(line["event"] == "waiting for another delivery of this messageId" for line in log_lines())


async def both_at_once(sink, replicas, log_lines, timeout: float = 30) -> list[asyncio.Future]:
    """Send every messageId of IDS to both replicas at once (sync) and wait until the first POST of each is
    at the stand-in and the other call waits for it: per messageId, the future of both answers."""
    calls = [asyncio.ensure_future(asyncio.gather(*(call(stub, track(message_id), timeout) for _, stub in replicas))) for message_id in IDS]
    await until(lambda: len(sink.received) >= len(IDS) and waiting(log_lines) == len(IDS))
    return calls


def answered(sink) -> dict[str, list[int]]:
    """The sink's answers by messageId, in arrival order."""
    found: dict[str, list[int]] = {}
    for received in sink.received:
        found.setdefault(received.json()["messageId"], []).append(received.status)
    return found


async def test_the_same_messageids_sent_to_two_replicas_at_once_are_delivered_once(replicas, sink, log_lines):
    release = asyncio.Event()
    sink.default = Reply(hold=release)
    calls = await both_at_once(sink, replicas, log_lines)
    release.set()
    for first, second in await asyncio.gather(*calls):
        assert sorted((first.duplicate, second.duplicate)) == [False, True]
        assert sorted((first.http_status, second.http_status)) == [0, 200]
    assert answered(sink) == {message_id: [200] for message_id in IDS}
    assert sum(sum(app.metrics.duplicates.values.values()) for app, _ in replicas) == len(IDS)


async def test_when_the_holders_post_fails_the_waiting_replica_posts_it_itself(replicas, sink, log_lines):
    release = asyncio.Event()
    hold_first_posts(sink, Reply(status=500, hold=release))
    # The failed post frees the key at once: the waiting call does not sit out the reservation (15 s here).
    calls = await both_at_once(sink, replicas, log_lines, timeout=10)
    release.set()
    for answers in await asyncio.gather(*calls):
        failed = [a for a in answers if a == grpc.StatusCode.UNAVAILABLE]
        delivered = [a for a in answers if not isinstance(a, grpc.StatusCode)]
        assert len(failed) == 1 and [(d.duplicate, d.http_status) for d in delivered] == [(False, 200)], answers
    assert answered(sink) == {message_id: [500, 200] for message_id in IDS}


async def test_a_call_waiting_for_the_other_replica_ends_at_its_deadline_having_sent_nothing(replicas, sink, log_lines):
    release = asyncio.Event()
    sink.default = Reply(hold=release)
    (_, one), (two_app, two) = replicas
    first = asyncio.ensure_future(call(one, track("slow")))
    await until(lambda: len(sink.received) == 1)
    # Our own answer (not gRPC cutting the call off): the waiting replica ends the call itself, 50 ms before the
    # deadline, in its own words. On a loaded machine the deadline can still win that race (the process not run
    # for 50 ms): up to three calls, each waiting on the same held messageId; one answer of ours is enough.
    ours = "the call's deadline passed while another delivery of this messageId was in flight; nothing was sent"

    def answered_by_us() -> list:
        return [line for line in log_lines() if line["event"] == "rpc" and line.get("error") == ours]

    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await two.LogEvent(track("slow"), timeout=1)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert raised.value.details() in (ours, "Deadline Exceeded")
        try:
            await until(answered_by_us, timeout=2)
            break
        except TimeoutError:
            continue
    assert answered_by_us()
    sample = two_app.metrics.registry.get_sample_value
    assert sample("kameleoon_rpc_total", {"method": "LogEvent", "code": "DEADLINE_EXCEEDED"}) >= len(answered_by_us())
    waits = [line for line in log_lines() if line["event"] == "waiting for another delivery of this messageId"]
    assert waits and all(w["message_id"] == "slow" and w["held_until"] > time.time() - 60 for w in waits)
    assert all(round(w["held_until"], 3) == w["held_until"] for w in waits)
    release.set()
    assert (await first).http_status == 200
    again = await call(two, track("slow"))
    assert (again.duplicate, again.http_status) == (True, 0)
    assert answered(sink) == {"slow": [200]}


@pytest.mark.parametrize("status", [200, 500])
async def test_a_queued_call_meeting_a_sync_post_in_flight_neither_duplicates_nor_loses_it(replicas, sink, log_lines, status):
    release = asyncio.Event()
    hold_first_posts(sink, Reply(status=status, hold=release))
    (_, one), (_, two) = replicas
    posting = [asyncio.ensure_future(call(one, track(message_id))) for message_id in IDS]
    await until(lambda: len(sink.received) == len(IDS))
    queueing = [asyncio.ensure_future(call(two, track(message_id, QUEUED))) for message_id in IDS]
    await until(lambda: waiting(log_lines) == len(IDS))
    release.set()
    for first, second in zip(await asyncio.gather(*posting), await asyncio.gather(*queueing)):
        if status == 200:  # delivered by the sync call: the queued one is a duplicate, nothing stored
            assert (first.http_status, second.duplicate, second.queued, second.outbox_id) == (200, True, False, "")
        else:  # the sync post failed: the queued call stored the event, and it is delivered from the outbox
            assert first == grpc.StatusCode.UNAVAILABLE
            assert second.queued and second.outbox_id and not second.duplicate
    if status == 500:
        await until(lambda: answered(sink) == {message_id: [500, 200] for message_id in IDS})
    assert answered(sink) == {message_id: [status] if status == 200 else [500, 200] for message_id in IDS}


async def test_a_holder_whose_call_is_cancelled_frees_the_messageid_for_the_other_replica(replicas, sink, log_lines):
    hold_first_posts(sink, Reply(hold=asyncio.Event()))  # the first POST never gets an answer
    (_, one), (_, two) = replicas
    cancelled = one.LogEvent(track("gone"), timeout=30)
    await until(lambda: len(sink.received) == 1)
    waiter = asyncio.ensure_future(call(two, track("gone"), timeout=10))  # less than the reservation (15 s)
    await until(lambda: waiting(log_lines) == 1)
    cancelled.cancel()  # the caller gives up: the service stops the post and frees the key at once
    done = await waiter
    assert (done.duplicate, done.http_status) == (False, 200)
    await until(lambda: sink.received[0].abandoned is not None)
    assert [r.status for r in sink.received] == [None, 200]


async def test_a_queued_event_still_held_when_the_reservation_it_met_ran_out_is_refused_not_queued(replicas, sink, log_lines, outbox_url):
    """The bound of a queued call's wait: another post took the key over as the first reservation ended,
    so its outcome is not known: that event UNAVAILABLE, nothing stored (the rest of its batch queued).
    Once that post failed too, a retry is queued."""
    holder = create(outbox_url)  # a third process on the store, posting "held" synchronously
    await holder.open()
    try:
        key, window = f"{SITECODE}\x1fTrack Calls\x1fheld", 86400.0
        first_until = time.time() + 1
        assert (await holder.reserve(key, now=time.time(), window_s=window, until=first_until)).state == TAKEN
        (_, _), (_, two) = replicas
        batch = pb.SendBatchRequest(delivery=QUEUED, requests=[raw_track("held"), raw_track("free")])
        queued = asyncio.ensure_future(two.SendBatch(batch, timeout=30))
        await until(lambda: waiting(log_lines) == 1)
        [wait] = [line for line in log_lines() if line["event"] == "waiting for another delivery of this messageId"]
        assert (wait["message_id"], wait["held_until"]) == ("held", round(first_until, 3))
        # The holder's clock reaches first_until: its reservation is over, and a next post takes the key.
        second = await holder.reserve(key, now=first_until, window_s=window, until=first_until + 60)
        assert second.state == TAKEN
        held, free = (await queued).responses
        assert held.status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert held.status.message == (
            "messageId 'held' is being delivered synchronously by another process and its outcome is not known yet: nothing was queued, retry later"
        )
        assert free.status.code == 0 and free.results[0].queued
        await until(lambda: answered(sink) == {"free": [200]})
        assert await holder.unreserve(key, second.token, now=time.time())
        [again] = (await two.SendBatch(pb.SendBatchRequest(delivery=QUEUED, requests=[raw_track("held")]), timeout=30)).responses
        assert again.results[0].queued and again.results[0].outbox_id
        await until(lambda: answered(sink) == {"free": [200], "held": [200]})
    finally:
        await holder.close()


# -- one replica on a SQLite outbox: what a synchronous delivery under a reservation counts, refuses and settles


@pytest.fixture
async def one_replica(start_service, tmp_path):
    """Start one sync service on a SQLite outbox in tmp_path, one HTTP attempt per call (timeout_s 10: a
    reservation without a nearer deadline lasts 10 + 5 s); returns (app, stub, the outbox's URL)."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"

    async def start(**overrides):
        settings = dict(
            outbox=url, delivery="sync", api_key=API_KEY, sitecode=SITECODE, max_attempts=1, timeout_s=10.0, retry_max_backoff_s=0.05, **overrides
        )
        return (*await start_service(**settings), url)

    return start


async def failure(stub, request, timeout: float) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(request, timeout=timeout)
    return raised.value


async def test_sync_deliveries_on_an_outbox_are_counted_refused_past_the_limit_and_their_keys_settled(one_replica, sink):
    """Each post under a reservation counts once in kameleoon_events_in_flight while it is in flight; one past
    KAMELEOON_MAX_IN_FLIGHT is refused with nothing sent and its key freed at once (a retry posts it, without
    sitting out the reservation); a delivered one is a duplicate afterwards, counted under its action."""
    app, stub, _ = await one_replica(max_in_flight=2)
    sample = app.metrics.registry.get_sample_value
    release = asyncio.Event()
    sink.default = Reply(hold=release)
    posting = [asyncio.ensure_future(call(stub, track(f"busy-{n}"))) for n in range(2)]
    await until(lambda: len(sink.received) == 2 or any(answer.done() for answer in posting))
    assert not any(answer.done() for answer in posting), [answer.result() for answer in posting if answer.done()]
    assert sample("kameleoon_events_in_flight") == 2
    refused = await failure(stub, track("over"), timeout=5)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
    assert refused.details().startswith("2 events are being delivered already (KAMELEOON_MAX_IN_FLIGHT)")
    assert len(sink.received) == 2
    release.set()
    assert [(done.http_status, done.duplicate) for done in await asyncio.gather(*posting)] == [(200, False)] * 2
    assert sample("kameleoon_events_in_flight") == 0
    sink.default = Reply()
    # Its key was freed when it was refused: posted now (a reservation left behind would hold it 5 + 5 s).
    again = await stub.LogEvent(track("over"), timeout=5)
    assert (again.http_status, again.duplicate) == (200, False)
    repeated = await stub.LogEvent(track("busy-0"), timeout=5)
    assert (repeated.http_status, repeated.duplicate) == (0, True)
    assert sample("kameleoon_duplicates_total", {"action": "logEvent"}) == 1
    assert sample("kameleoon_deliveries_total", {"action": "logEvent", "http_status": "200"}) == 3
    posted = [r.json()["messageId"] for r in sink.received]
    assert sorted(posted[:2]) == ["busy-0", "busy-1"] and posted[2:] == ["over"]


async def test_a_failed_or_timed_out_sync_delivery_on_an_outbox_frees_its_messageid(one_replica, sink, log_lines):
    """A post that failed (HTTP 500), then one cut off by the caller's deadline (the service's own
    DEADLINE_EXCEEDED, the attempt's timeout shortened to it: the stand-in sees the request abandoned): each
    frees the key at once, so the next call posts the event again and the last, delivered, takes it."""
    app, stub, _ = await one_replica()
    sink.script.append(Reply(status=500))
    failed = await failure(stub, track("again"), timeout=5)
    assert failed.code() == grpc.StatusCode.UNAVAILABLE and "HTTP 500" in failed.details()
    sink.script.append(Reply(hold=asyncio.Event()))  # never answered
    late = await failure(stub, track("again"), timeout=1)
    assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The service's own answer, read on its side (not gRPC's cancellation, which its line would call CANCELLED).
    await until(lambda: [line for line in log_lines() if line.get("code") in ("DEADLINE_EXCEEDED", "CANCELLED")])
    [line] = [line for line in log_lines() if line.get("code") in ("DEADLINE_EXCEEDED", "CANCELLED")]
    assert (line["method"], line["message_id"], line["code"]) == ("LogEvent", "again", "DEADLINE_EXCEEDED")
    assert line.get("error") == "the call's deadline passed while Kameleoon was answering (attempt 1)"
    await until(lambda: sink.received[1].abandoned is not None)
    done = await stub.LogEvent(track("again"), timeout=5)
    assert (done.http_status, done.duplicate) == (200, False)
    assert (await stub.LogEvent(track("again"), timeout=5)).duplicate
    assert [r.status for r in sink.received] == [500, None, 200]
    sample = app.metrics.registry.get_sample_value
    assert sample("kameleoon_deliveries_total", {"action": "logEvent", "http_status": "500"}) == 1
    assert sample("kameleoon_duplicates_total", {"action": "logEvent"}) == 1


async def test_a_reservation_lasts_the_callers_deadline_and_the_margin(one_replica, sink):
    """A post under a deadline nearer than its longest (10 s here) reserves its key until that deadline plus
    RESERVE_MARGIN_S: read from the store by a third party while the post is in flight. The bounds are
    the arithmetic of the call's own deadline (0.6 s from its start), not a measured duration."""
    app, stub, url = await one_replica()
    sink.default = Reply(hold=asyncio.Event())
    holder = create(url)
    await holder.open()
    try:
        started = time.time()
        first = asyncio.ensure_future(call(stub, track("hold"), timeout=0.6))
        await until(lambda: len(sink.received) == 1)
        posted = time.time()  # the server received the call (and its deadline began) before this
        key = f"{SITECODE}\x1flogEvent\x1fhold"
        found = await holder.reserve(key, now=time.time(), window_s=86400.0, until=time.time() + 60)
        assert found.state == BUSY, found
        assert started + RESERVE_MARGIN_S <= found.until <= posted + 0.6 + RESERVE_MARGIN_S, found.until - started
        assert await first == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await holder.close()


async def test_a_sync_call_waiting_for_another_process_logs_its_messageid_and_takes_the_outcome(one_replica, sink, log_lines):
    """A raw event whose key another process holds (a subscription name with a space, a messageId with the
    key's separator in it): the waiting line names the messageId as sent, and once the holder delivered
    it, the call (its deadline under a second away) answers duplicate, nothing posted."""
    app, stub, url = await one_replica()
    holder = create(url)
    await holder.open()
    try:
        message_id = "odd\x1fid two"
        key = f"{SITECODE}\x1fTrack Calls\x1f{message_id}"
        assert (await holder.reserve(key, now=time.time(), window_s=86400.0, until=time.time() + 60)).state == TAKEN
        waiting_call = asyncio.ensure_future(stub.Send(raw_track(message_id), timeout=1))
        await until(lambda: waiting(log_lines) == 1)
        [line] = [line for line in log_lines() if line["event"] == "waiting for another delivery of this messageId"]
        assert line["message_id"] == message_id
        await holder.remember(key, now=time.time())
        [(done)] = (await waiting_call).results
        assert (done.duplicate, done.http_status) == (True, 0)
        assert sink.received == []
    finally:
        await holder.close()


async def test_a_queued_event_meeting_a_reservation_that_runs_out_is_queued_once_it_has(one_replica, sink, log_lines):
    """A reservation (1 s) left by a holder that never settles it: a queued call meeting it keeps looking
    until a little past its end (POLL_MAX_S), so it finds the key free and stores the event."""
    app, stub, url = await one_replica()
    holder = create(url)
    await holder.open()
    try:
        key = f"{SITECODE}\x1fTrack Calls\x1fsoon"
        assert (await holder.reserve(key, now=time.time(), window_s=86400.0, until=time.time() + 1)).state == TAKEN
        request = raw_track("soon")
        request.delivery = QUEUED
        done = await stub.Send(request, timeout=30)
        assert waiting(log_lines) == 1, "the call met the reservation"
        assert done.results[0].queued and done.results[0].outbox_id
        await until(lambda: answered(sink) == {"soon": [200]})
    finally:
        await holder.close()
