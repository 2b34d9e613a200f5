"""Adaptive concurrency toward Kameleoon: the algorithm alone, driven by a simulated clock (no sleeps), then
through the service at the stand-in: the limit falling under 429s and climbing back, a Retry-After
pausing its own sitecode only."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.delivery.concurrency import INITIAL_LIMIT, Gate, Limit
from service.demo.sink import Reply
from tests.conftest import API_KEY, eventually
from tests.test_metrics import scrape

RTT = 0.1


def run_window(limit: Limit, now: float, requests: int, rtt: float = RTT, pushed_back: int = 0) -> float:
    """``requests`` started (as many as the limit lets in at once, the rest blocked) and finished within one
    round trip; ``pushed_back`` of them answered with back-pressure. Returns the clock after the window."""
    started = 0
    for _ in range(requests):
        if limit.in_flight < limit.limit:
            limit.started()
            started += 1
        else:
            limit.blocked()
    now += rtt
    for n in range(started):
        limit.finished(None if n < pushed_back else rtt, n < pushed_back, now)
    return now


def test_slow_start_doubles_each_round_trip_while_requests_wait_up_to_the_maximum():
    limit = Limit(1000)
    assert limit.limit == INITIAL_LIMIT
    now, seen = 0.0, []
    for _ in range(6):
        now = run_window(limit, now, 5000)
        seen.append(limit.limit)
    assert seen[1:] == [200, 400, 800, 1000, 1000]  # the first window sets the round trip; then x2 a window
    assert limit.slow_start


def test_an_idle_limit_does_not_grow():
    limit = Limit(1000)
    now = 0.0
    for _ in range(10):
        now = run_window(limit, now, 10)  # never more than 10 wanted: no evidence that more would help
    assert limit.limit == INITIAL_LIMIT


def test_back_pressure_decreases_by_the_ratio_at_once_and_once_per_round_trip():
    limit = Limit(1000, initial=100)
    now = run_window(limit, 0.0, 1000)
    limit.started()
    limit.finished(None, True, now + 0.01)  # a 429, mid-window: lowered at once
    assert limit.limit == 90
    for _ in range(5):  # more 429s in the same round trip: no further decrease
        limit.started()
        limit.finished(None, True, now + 0.02)
    assert limit.limit == 90


def test_back_pressure_decreases_by_the_ratio_then_growth_is_five_percent_a_round_trip():
    limit = Limit(1000, initial=100)
    now = run_window(limit, 0.0, 1000)
    now = run_window(limit, now, 1000, pushed_back=1)  # one 429 in the window
    assert limit.limit == 90 and not limit.slow_start
    now = run_window(limit, now, 1000)
    assert limit.limit == 94  # 5% more (at least one) per round trip after the first decrease, no doubling
    now = run_window(limit, now, 1000)
    assert limit.limit == 98
    for _ in range(7):
        now = run_window(limit, now, 1000, pushed_back=5)
    assert 20 <= limit.limit <= 98 // 2  # x 0.9 once per round trip or so, floored: under half within eight round trips


def test_never_below_one():
    limit = Limit(1000, initial=2)
    now = 0.0
    for _ in range(20):
        now = run_window(limit, now, 10, pushed_back=10)
    assert limit.limit == 1


def test_a_round_trip_rising_well_above_its_average_decreases_and_steady_jitter_does_not():
    limit = Limit(1000, initial=50)
    now = 0.0
    for rtt in (0.100, 0.101, 0.099, 0.1005, 0.100, 0.1003) * 3:  # jitter within 5%: grows
        now = run_window(limit, now, 1000, rtt=rtt)
    grown = limit.limit
    assert grown > 50 and limit.slow_start
    for _ in range(2):  # three times the average (a window's samples are judged when the next one ends)
        now = run_window(limit, now, 1000, rtt=0.3)
    assert limit.limit == int(grown * 0.9) and not limit.slow_start


def test_a_fixed_limit_never_moves():
    limit = Limit(64, fixed=True)
    now = 0.0
    for _ in range(5):
        now = run_window(limit, now, 1000, pushed_back=3)
    assert limit.limit == 64 and limit.rtt is None


async def test_a_gate_lets_waiters_in_first_come_first_served_as_the_limit_allows():
    gate = Gate(Limit(4, fixed=True))
    assert all(gate.take_now() for _ in range(4)) and not gate.take_now()
    order = []

    async def wait(n):
        await gate.wait()
        order.append(n)

    waiters = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == [] and gate.limit.in_flight == 4
    gate.give(RTT, False, 0.0)
    gate.give(RTT, False, 0.0)
    await asyncio.sleep(0)
    assert order == [0, 1] and gate.limit.in_flight == 4
    waiters[2].cancel()  # a waiter that gives up takes no ticket
    await asyncio.gather(*waiters, return_exceptions=True)
    gate.give(RTT, False, 0.0)
    assert gate.limit.in_flight == 3


async def test_a_rate_spaces_a_sitecodes_requests():
    gate = Gate(Limit(1000, fixed=True), rate=1000.0)  # 1 ms apart
    assert not gate.take_now()  # with a rate, every request takes its slot
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(20):
        await gate.wait()
    assert gate._next_slot >= started + 20 * 0.001  # the next slot is 20 intervals on, however fast the loop went


# -- through the service ----------------------------------------------------------------------------


def settings(sitecode: str) -> pb.Settings:
    return pb.Settings(api_key=API_KEY, sitecode=sitecode)


def batch(sitecode: str, prefix: str, count: int) -> pb.SendBatchRequest:
    event = '{"type":"track","event":"E","timestamp":"2024-01-01T00:00:00Z","messageId":"%s"}'
    return pb.SendBatchRequest(settings=settings(sitecode), requests=[pb.SendRequest(event_json=event % f"{prefix}-{i}") for i in range(count)])


async def test_the_limit_falls_under_429s_and_climbs_back_with_a_line_each_way(start_service, sink, log_lines):
    app, stub = await start_service(metrics_listen=("127.0.0.1", 0), max_attempts=10, batch_concurrency=200, max_in_flight=5000)

    async def limit() -> float:
        return (await scrape(app.metrics_port)).get('kameleoon_concurrency_limit{sitecode="0123456789"}', 0)

    await stub.SendBatch(batch("0123456789", "warm", 50), timeout=30)
    assert await limit() == INITIAL_LIMIT
    busy = [0]

    def choose(received):  # a Kameleoon that takes 20 at once and answers 429 beyond
        return Reply(status=429) if sink.in_flight > 20 else Reply(delay=0.01)

    sink.choose = choose
    for round_ in range(6):
        answer = await stub.SendBatch(batch("0123456789", f"push-{round_}", 200), timeout=60)
        busy[0] += sum(1 for r in answer.responses if r.status.code == 0)
    low = await limit()
    assert low < INITIAL_LIMIT / 2, f"the limit stayed at {low} under 429s"
    sink.choose = None  # capacity back
    for round_ in range(30):
        await stub.SendBatch(batch("0123456789", f"back-{round_}", 300), timeout=60)
        if await limit() >= 2 * low:
            break
    assert await limit() >= 2 * low, "the limit never climbed back"
    events = [(line["event"], line["sitecode"]) for line in log_lines() if line["event"].startswith(("kameleoon pushes back", "concurrency limit"))]
    assert events[:2] == [("kameleoon pushes back: concurrency limit halved", "0123456789"), ("concurrency limit recovered", "0123456789")]


async def test_a_retry_after_pauses_its_sitecode_only(start_service, sink):
    _, stub = await start_service()
    sink.choose = lambda received: (
        Reply(status=429, headers={"Retry-After": "30"}) if received.headers["x-segment-settings"] == "pausedsite" else Reply()
    )
    event = '{"type":"track","event":"E","timestamp":"2024-01-01T00:00:00Z","messageId":"%s"}'
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=settings("pausedsite"), event_json=event % "p-1"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    posts = len(sink.received)
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # paused: refused at once, nothing sent
        await stub.Send(pb.SendRequest(settings=settings("pausedsite"), event_json=event % "p-2"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and "Retry-After" in raised.value.details()
    assert len(sink.received) == posts
    other = await stub.Send(pb.SendRequest(settings=settings("othersite1"), event_json=event % "o-1"), timeout=5)
    assert [r.http_status for r in other.results] == [200]  # another sitecode goes on
    await eventually(lambda: len(sink.received) == posts + 1)
