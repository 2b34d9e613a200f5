"""The deliverer on its own: a real SQLite outbox file, the real delivery client, the HTTP stand-in.

What it promises (service/outbox/deliverer.py): one attempt per claim; a retryable answer comes back
after a backoff (full jitter under ``backoff_base_s * 2 ** (attempts - 1)``, at most
``retry_max_backoff_s``, or Kameleoon's Retry-After when longer) while the event's window lasts, then
and for any other answer a dead letter with one log line; a circuit that stops claims after
CIRCUIT_THRESHOLD retryable outcomes in a row and probes one event at a time, warning once an
outage; stop() putting back what was not delivered. The tests read what reached the stand-in, the
rows of the outbox file, the metrics and the log lines; every wait polls for a condition.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass

import pytest

from service.config import Config
from service.delivery.client import KameleoonClient
from service.demo.sink import Reply
from service.errors import OutboxUnavailable
from service.ops.metrics import Metrics
from service.outbox.base import NewEvent
from service.outbox.deliverer import CIRCUIT_THRESHOLD, WINDOW_ENDED, Circuit, Deliverer
from service.outbox.sealing import Sealer
from service.outbox.sqlite import SqliteOutbox
from tests.conftest import API_KEY, SITECODE, eventually

HOUR = 3600.0


def body(message_id: str) -> bytes:
    return json.dumps({"messageId": message_id, "type": "track", "event": "Signed Up"}).encode()


@dataclass
class Rig:
    store: SqliteOutbox
    deliverer: Deliverer
    client: KameleoonClient
    metrics: Metrics
    path: str
    started: bool = False
    stopped: bool = False

    async def enqueue(
        self,
        *ids: str,
        window_s: float = HOUR,
        credentials: str = "server",
        action: str = "logEvent",
        now: float | None = None,
        dedupe: bool = False,
        idempotency_window_s: float = 0.0,
    ) -> list[str]:
        events = [NewEvent(action, "route-" + action, SITECODE, i, body(i), credentials, dedupe_key=i if dedupe else None) for i in ids]
        accepted = await self.store.enqueue(
            events, now=time.time() if now is None else now, window_s=window_s, idempotency_window_s=idempotency_window_s, max_pending=0
        )
        return [a.id for a in accepted]

    async def start(self) -> None:
        await self.deliverer.start()
        self.started = True

    async def stop(self, grace: float | None = 0) -> None:
        self.stopped = True
        await self.deliverer.stop(grace)

    def sql(self, query: str, *args) -> list[tuple]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(query, args).fetchall()

    def events(self) -> dict[str, tuple]:
        """message_id -> (attempts, due_at, lease, last_status, last_error) of every event still in the outbox."""
        return {row[0]: row[1:] for row in self.sql("SELECT message_id, attempts, due_at, lease, last_status, last_error FROM events")}

    def leased(self) -> list[str]:
        """The message_ids of the events under a lease, sorted."""
        return sorted(m for m, row in self.events().items() if row[2] is not None)

    def letters(self) -> dict[str, tuple]:
        """message_id -> (attempts, last_status, last_error, route) of every dead letter."""
        return {row[0]: row[1:] for row in self.sql("SELECT message_id, attempts, last_status, last_error, route FROM dead_letters")}

    def metric(self, sample: str) -> float:
        """The value of one sample, e.g. ``name{label="value"}`` (labels as exposed); 0 when absent."""
        for line in self.metrics.exposition().decode().splitlines():
            if line.split(" ", 1)[0] == sample:
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture
async def rig(sink, tmp_path):
    """``await rig(**config)``: a deliverer (not started) on a fresh outbox file, posting to the stand-in."""
    made: list[Rig] = []

    async def make(**overrides) -> Rig:
        config = Config(
            **{"base_url": sink.url, "api_key": API_KEY, "backoff_base_s": 0.01, "retry_max_backoff_s": 0.05, "outbox_concurrency": 2, **overrides}
        )
        path = str(tmp_path / f"outbox-{len(made)}.db")
        store = SqliteOutbox(path)
        await store.open()
        metrics = Metrics()
        client = KameleoonClient(config, metrics)
        await client.start()
        made.append(Rig(store, Deliverer(store, client, Sealer(config.outbox_key, config.api_key), config, metrics), client, metrics, path))
        return made[-1]

    yield make
    for r in made:
        if r.started and not r.stopped:
            await r.deliverer.stop(0)
        await r.client.close()
        await r.store.close()


def posted(sink) -> list[str]:
    return [r.json()["messageId"] for r in sink.received if r.method == "POST"]


# -- the circuit -----------------------------------------------------------------


def test_the_circuit_opens_at_the_threshold_and_not_again_before_its_probe():
    circuit = Circuit(base_s=1.0, cap_s=8.0)
    for _ in range(CIRCUIT_THRESHOLD - 1):
        assert circuit.failure(100.0, None) is False
    assert not circuit.is_open and circuit.opened == 0 and circuit.until == 0.0
    assert circuit.failure(100.0, None) is True  # the threshold-th failure in a row opens it
    assert circuit.is_open and circuit.opened == 1
    assert 100.5 <= circuit.until <= 101.0  # a first pause of base_s, jittered over its upper half
    first = circuit.until
    # Failures of attempts still in flight before the probe is due change nothing.
    assert circuit.failure(first - 0.01, None) is False
    assert (circuit.opened, circuit.until) == (1, first)
    # The failed probe (at or after ``until``) opens it again, with a pause twice as long.
    assert circuit.failure(first, None) is True
    assert circuit.opened == 2 and first + 1.0 <= circuit.until <= first + 2.0
    # A success closes it and forgets the outage; only an open circuit reports closing.
    assert circuit.success() is True
    assert (circuit.failures, circuit.opened, circuit.is_open) == (0, 0, False)
    assert circuit.success() is False


def test_the_circuit_pauses_grow_to_the_cap_with_jitter_and_honour_retry_after():
    circuit = Circuit(base_s=1.0, cap_s=8.0)
    now, pauses = 0.0, []
    for _ in range(CIRCUIT_THRESHOLD - 1):
        circuit.failure(now, None)
    for _ in range(6):  # pauses 1, 2, 4, 8, 8, 8 (each jittered within its upper half)
        assert circuit.failure(now, None) is True
        pauses.append(circuit.until - now)
        now = circuit.until
    for pause, ceiling in zip(pauses, [1, 2, 4, 8, 8, 8]):
        assert ceiling / 2 <= pause <= ceiling
    assert circuit.opened == 6
    # Kameleoon's Retry-After, when longer than the pause, is when the next probe goes.
    assert circuit.failure(now, 100.0) is True and circuit.until == now + 100.0
    now = circuit.until
    assert circuit.failure(now, 0.5) is True and now + 4.0 <= circuit.until <= now + 8.0


def test_the_circuit_jitter_spreads_over_the_upper_half_of_the_pause():
    pauses = []
    for _ in range(200):
        circuit = Circuit(base_s=2.0, cap_s=30.0)
        for _ in range(CIRCUIT_THRESHOLD):
            circuit.failure(10.0, None)
        pauses.append(circuit.until - 10.0)
    assert 1.0 <= min(pauses) < 1.2 and 1.8 < max(pauses) <= 2.0  # uniform over [pause / 2, pause]


def test_a_circuit_with_no_backoff_still_pauses_between_probes():
    circuit = Circuit(base_s=0.0, cap_s=5.0)  # KAMELEOON_BACKOFF_BASE_S=0
    assert circuit.base_s == 0.01
    for _ in range(CIRCUIT_THRESHOLD):
        circuit.failure(50.0, None)
    assert 50.005 <= circuit.until <= 50.01


# -- retries and dead letters ------------------------------------------------------


@pytest.mark.parametrize(
    "base, cap, before, ceiling", [(0.125, HOUR, 6, 8.0), (1.0, 2.0, 3, 2.0), (0.2, HOUR, 0, 0.2)], ids=["backoff", "capped", "first"]
)
async def test_a_retryable_answer_comes_back_after_a_jittered_exponential_backoff(rig, sink, base, cap, before, ceiling):
    """After ``before`` attempts, this one's retry is due within ``min(cap, base * 2 ** before)``, spread over all of it."""
    sink.default = Reply(status=503, body="busy")
    r = await rig(backoff_base_s=base, retry_max_backoff_s=cap, outbox_concurrency=20)
    ids = [f"b-{i}" for i in range(20)]
    await r.enqueue(*ids)
    r.sql("UPDATE events SET attempts = ?", before)  # attempts already made: this claim is number before + 1
    started = time.time()
    await r.start()
    await eventually(
        lambda: [row[0] for row in r.events().values()] == [before + 1] * 20 and all(row[2] is None for row in r.events().values()),
        what="20 retries marked",
    )
    ended = time.time()
    await r.stop()
    assert sorted(posted(sink)) == sorted(ids)  # one attempt each: the client's own retries are off
    rows = r.events()
    assert {(row[3], row[4]) for row in rows.values()} == {(503, "Kameleoon is unavailable: HTTP 503 (Kameleoon answered: busy) after 1 attempt(s)")}
    delays = [row[1] - started for row in rows.values()]
    assert all(0 <= d <= ceiling + (ended - started) for d in delays)
    assert max(delays) > ceiling / 2  # all 20 in the lower half: about 1 in a million
    assert r.letters() == {}


async def test_retry_after_longer_than_the_backoff_is_waited_for_unless_the_window_ends_first(rig, sink, log_lines):
    sink.default = Reply(status=429, headers={"Retry-After": "300"})
    r = await rig(backoff_base_s=0.01)
    before = time.time()
    [kept] = await r.enqueue("ra-kept", window_s=HOUR)
    [dead] = await r.enqueue("ra-dead", window_s=200.0)  # ends before Kameleoon asks us to come back
    await r.start()
    await eventually(lambda: "ra-dead" in r.letters() and r.events().get("ra-kept", (0, 0, "x"))[2] is None, what="both marked")
    after = time.time()
    await r.stop()
    attempts, due_at, lease, status, error = r.events()["ra-kept"]
    assert (attempts, status) == (1, 429) and before + 300 <= due_at <= after + 300
    assert r.letters() == {
        "ra-dead": (
            1,
            429,
            f'{WINDOW_ENDED}; last error: Kameleoon is unavailable: HTTP 429 (Kameleoon answered: {{"status":"ok"}}) after 1 attempt(s)',
            "route-logEvent",
        )
    }
    await eventually(lambda: any(line["event"] == "dead letter" for line in log_lines()), what="the dead letter's line")
    [line] = [line for line in log_lines() if line["event"] == "dead letter"]
    assert line["level"] == "warning"
    assert {k: line[k] for k in ("outbox_id", "message_id", "action", "route", "attempts", "http_status", "error")} == {
        "outbox_id": dead,
        "message_id": "ra-dead",
        "action": "logEvent",
        "route": "route-logEvent",
        "attempts": 1,
        "http_status": 429,
        "error": r.letters()["ra-dead"][2],
    }
    assert r.metric('kameleoon_outbox_dead_lettered_total{action="logEvent"}') == 1
    assert r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 0


async def test_a_final_answer_is_a_dead_letter_at_once_and_ends_a_run_of_failures(rig, sink, log_lines):
    """422 for one event: a dead letter after one attempt, logged and counted; and it is an answer, so the
    retryable failures before and after it are no run of CIRCUIT_THRESHOLD: the circuit stays closed."""
    answers = {"f-final": [Reply(status=422, body='{"error":"bad payload"}')]}
    for n in range(CIRCUIT_THRESHOLD - 1):
        answers[f"f-before-{n}"] = [Reply(status=500, headers={"Retry-After": "3000"})]  # not back during the test (500: no sitecode pause)
        answers[f"f-after-{n}"] = [Reply(status=500, headers={"Retry-After": "3000"})]
    order = [*(f"f-before-{n}" for n in range(CIRCUIT_THRESHOLD - 1)), "f-final", *(f"f-after-{n}" for n in range(CIRCUIT_THRESHOLD - 1))]
    sink.choose = lambda received: answers[received.json()["messageId"]].pop(0)
    r = await rig(outbox_concurrency=1)  # one attempt at a time, in the order enqueued
    ids = {}
    for message_id in order:
        [ids[message_id]] = await r.enqueue(message_id)
    await r.start()
    await eventually(
        lambda: len(posted(sink)) == len(order) and "f-final" in r.letters() and all(row[2] is None for row in r.events().values()),
        what="every event attempted once",
    )
    assert posted(sink) == order
    assert r.letters() == {
        "f-final": (
            1,
            422,
            "Kameleoon rejected the event (HTTP 422): the request was not accepted and will not "
            'be retried. Kameleoon answered: {"error":"bad payload"}',
            "route-logEvent",
        )
    }
    await eventually(lambda: r.metric('kameleoon_outbox_dead_lettered_total{action="logEvent"}') == 1, what="the dead letter counted")
    [line] = [line for line in log_lines() if line["event"] == "dead letter"]
    assert (line["outbox_id"], line["message_id"], line["attempts"], line["http_status"]) == (ids["f-final"], "f-final", 1, 422)
    assert not [line for line in log_lines() if "circuit" in line["event"]]
    await r.stop()


async def test_an_event_whose_credentials_cannot_be_had_is_a_dead_letter_without_a_post(rig, sink, log_lines):
    r = await rig()
    [unknown] = await r.enqueue("c-unknown", credentials="not-a-reference")
    await r.enqueue("c-ok")
    await r.start()
    await eventually(lambda: "c-unknown" in r.letters() and posted(sink) == ["c-ok"] and not r.events(), what="marks")
    assert r.letters() == {"c-unknown": (1, 0, "unknown credentials reference", "route-logEvent")}
    await eventually(lambda: r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 1, what="counted")
    assert r.metric('kameleoon_delivery_attempts_total{action="logEvent",outcome="ok"}') == 1  # the attempt names its action
    [line] = [line for line in log_lines() if line["event"] == "dead letter"]
    assert (line["outbox_id"], line["http_status"], line["error"]) == (unknown, 0, "unknown credentials reference")
    assert r.metric('kameleoon_outbox_dead_lettered_total{action="logEvent"}') == 1
    await r.stop()


# -- the circuit, through the deliverer ------------------------------------------------


def opening_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["event"] == "kameleoon keeps failing: circuit open"]


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_an_outage_warns_once_probes_one_event_at_a_time_and_the_backlog_drains_when_it_ends(rig, sink, log_lines, concurrency):
    sink.default = Reply(status=503, body="down")
    r = await rig(outbox_concurrency=concurrency)
    ids = [f"o-{i}" for i in range(10)]
    await r.enqueue(*ids)
    await r.start()
    await eventually(lambda: len(opening_lines(log_lines())) >= 4, what="the circuit opened again after failed probes")
    probes_from = len(sink.received)
    await eventually(lambda: len(sink.received) >= probes_from + 3, what="three more probes")
    lines = opening_lines(log_lines())
    # One warning an outage; every failed probe after it re-opens the circuit at debug level.
    assert [line["level"] for line in lines] == ["warning"] + ["debug"] * (len(lines) - 1)
    for line in lines:
        assert (line["http_status"], line["error"]) == (503, "Kameleoon is unavailable: HTTP 503 (Kameleoon answered: down) after 1 attempt(s)")
        assert 0.025 <= line["probe_in_s"] <= 0.05  # backoff_base_s * 5 = 0.05 at most (retry_max_backoff_s), jittered
    # A probe is one event at a time: each arrives once the one before was answered.
    probes = sink.received[probes_from:]
    assert all(b.arrived >= a.answered for a, b in zip(probes, probes[1:]))
    if concurrency == 1:  # the failure of request CIRCUIT_THRESHOLD - 1 + k wrote line k; the next request is the probe it set
        failures = sink.received[CIRCUIT_THRESHOLD - 1 :]
        pairs = list(zip(lines, failures, failures[1:]))
        assert len(pairs) >= 3
        for line, failed, probe in pairs:
            assert probe.arrived >= failed.answered + line["probe_in_s"] - 0.001  # (probe_in_s is rounded to ms)
    assert not [line for line in log_lines() if line["event"].startswith("kameleoon answers") or line["event"].startswith("kameleoon is back")]
    sink.default = Reply()
    await eventually(lambda: not r.events(), what="the backlog delivered")
    assert sorted(set(posted(sink))) == sorted(ids) and sorted(r["messageId"] for r in (x.json() for x in sink.accepted())) == sorted(ids)
    await eventually(lambda: r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 10, what="counted")
    closed = [
        (line["level"], line["event"])
        for line in log_lines()
        if line["event"].startswith("kameleoon answers") or line["event"].startswith("kameleoon is back")
    ]
    assert closed == [("info", "kameleoon answers again: circuit closed"), ("info", "kameleoon is back: delivering the backlog")]
    assert r.letters() == {}
    await r.stop()


async def test_events_put_back_when_the_circuit_opens_keep_their_attempt_count(rig, sink):
    """Claimed events that the open circuit stopped before their attempt go back uncounted: every event's
    attempts are the POSTs it made, once the deliverer stopped (with time for the probe in flight).
    With one worker, the failure that opens the circuit finds the next claimed event waiting."""
    sink.default = Reply(status=503)
    r = await rig(outbox_concurrency=1)
    await r.enqueue(*(f"u-{i}" for i in range(30)))
    await r.start()
    await eventually(lambda: len(sink.received) >= CIRCUIT_THRESHOLD + 6, what="the circuit opened and probes went")
    await r.stop(grace=30)
    made = {}
    for message_id in posted(sink):
        made[message_id] = made.get(message_id, 0) + 1
    rows = r.events()
    assert len(rows) == 30 and all(row[2] is None for row in rows.values())  # no lease left
    assert {message_id: row[0] for message_id, row in rows.items() if row[0]} == made
    assert len(made) < 30  # the open circuit stopped most of them before an attempt


async def test_retry_after_on_the_opening_failure_sets_the_first_probe(rig, sink, log_lines):
    sink.default = Reply(status=503, headers={"Retry-After": "30"})
    r = await rig(outbox_concurrency=CIRCUIT_THRESHOLD)
    await r.enqueue(*(f"ra-{i}" for i in range(CIRCUIT_THRESHOLD)))
    await r.start()
    await eventually(lambda: opening_lines(log_lines()), what="the circuit open")
    [line] = opening_lines(log_lines())
    assert (line["level"], line["probe_in_s"], line["http_status"]) == ("warning", 30.0, 503)
    await r.stop()


async def test_stop_without_grace_cancels_a_probe_in_flight_and_puts_it_back(rig, sink, log_lines):
    hold = asyncio.Event()
    answers = [Reply(status=503)] * CIRCUIT_THRESHOLD
    sink.choose = lambda received: answers.pop() if answers else Reply(hold=hold)
    r = await rig(outbox_concurrency=CIRCUIT_THRESHOLD)
    await r.enqueue(*(f"p-{i}" for i in range(CIRCUIT_THRESHOLD)))  # one each for the workers
    await r.start()
    await eventually(lambda: opening_lines(log_lines()), what="the circuit open")
    await r.enqueue("p-late")
    r.deliverer.wake()  # as the enqueue of a call would: the claimer finds the circuit open and probes
    await eventually(lambda: sink.in_flight == 1, what="a probe held")
    await r.stop(grace=0)
    await eventually(lambda: sink.received[-1].abandoned is not None, what="the probe cancelled")
    rows = r.events()
    assert len(rows) == CIRCUIT_THRESHOLD + 1 and all(row[2] is None for row in rows.values())
    assert sum(row[0] for row in rows.values()) == CIRCUIT_THRESHOLD  # the cancelled probe is not counted
    assert len(sink.received) == CIRCUIT_THRESHOLD + 1 and hold.is_set() is False


# -- stopping -----------------------------------------------------------------------


async def test_stop_without_grace_cancels_the_attempt_and_puts_every_claimed_event_back(rig, sink):
    hold = asyncio.Event()
    sink.default = Reply(hold=hold)
    r = await rig(outbox_concurrency=1, outbox_lease_s=HOUR)
    await r.enqueue("s-1", "s-2", "s-3")
    before = time.time()
    await r.start()
    await eventually(
        lambda: sink.in_flight == 1 and sum(row[2] is not None for row in r.events().values()) == 2, what="one attempt held, one more event claimed"
    )
    leased = {m: row for m, row in r.events().items() if row[2] is not None}
    assert sorted(leased) == ["s-1", "s-2"]  # room for twice the workers, in the order they came
    assert all(row[0] == 1 and row[1] >= before + HOUR for row in leased.values())  # leased for outbox_lease_s
    await r.stop(grace=0)
    await eventually(lambda: sink.received[0].abandoned is not None, what="the attempt cancelled")
    after = time.time()
    rows = r.events()
    assert {m: (row[0], row[2]) for m, row in rows.items()} == {"s-1": (0, None), "s-2": (0, None), "s-3": (0, None)}
    assert all(row[1] <= after for row in rows.values())  # due again at once
    assert posted(sink) == ["s-1"] and r.letters() == {}
    assert r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 0


async def test_a_deliverer_stopped_before_it_started_stops_at_once_and_touches_nothing(rig, sink):
    r = await rig()
    await r.enqueue("never-1")
    await r.stop(grace=0)
    assert r.events()["never-1"][:3:2] == (0, None) and sink.received == [] and r.letters() == {}


async def test_stop_gives_the_attempt_in_flight_its_grace(rig, sink):
    hold = asyncio.Event()
    sink.default = Reply(hold=hold)
    r = await rig(outbox_concurrency=1)
    await r.enqueue("g-1", "g-2")
    await r.start()
    await eventually(lambda: sink.in_flight == 1 and all(row[2] is not None for row in r.events().values()), what="both claimed")
    stopping = asyncio.ensure_future(r.stop(grace=30))
    await eventually(lambda: r.events()["g-2"][2] is None, what="the event not started put back")
    assert not stopping.done()
    hold.set()
    await stopping
    assert r.events() == {"g-2": (0, r.events()["g-2"][1], None, 0, "")}
    assert posted(sink) == ["g-1"] and sink.received[0].status == 200
    assert r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 1


async def test_the_claimer_keeps_twice_the_workers_claimed_as_events_are_delivered(rig, sink):
    """Two workers: four events leased (two posting, two waiting); each delivery is topped up by one."""
    holds: dict[str, asyncio.Event] = {}

    def held(received):
        holds[received.json()["messageId"]] = asyncio.Event()
        return Reply(hold=holds[received.json()["messageId"]])

    sink.choose = held
    r = await rig(outbox_concurrency=2)
    await r.enqueue(*(f"t-{i}" for i in range(12)))
    await r.start()

    await eventually(lambda: sink.in_flight == 2 and r.leased() == ["t-0", "t-1", "t-2", "t-3"], what="four claimed")
    for n in range(3):
        holds[f"t-{n}"].set()
        await eventually(
            lambda: f"t-{n}" not in r.events() and sink.in_flight == 2 and len(r.leased()) == 4, what=f"t-{n} delivered and one more claimed"
        )
        assert r.leased() == [f"t-{i}" for i in range(n + 1, n + 5)]
    for hold in holds.values():
        hold.set()
    await r.stop(grace=30)


async def test_probes_leave_the_claimer_keeping_twice_the_workers_claimed(rig, sink):
    """An outage of several probes, then Kameleoon back: the two workers again keep exactly four events
    leased (two posting, two waiting), as before any probe; a probe's count of busy workers is given back."""
    holds: dict[str, asyncio.Event] = {}
    down = [True]

    def answer(received):
        if down[0]:
            return Reply(status=503)
        holds[received.json()["messageId"]] = hold = holds.get(received.json()["messageId"], asyncio.Event())
        return Reply(hold=hold)

    sink.choose = answer
    r = await rig(outbox_concurrency=2)
    await r.enqueue(*(f"p-{i}" for i in range(12)))
    await r.start()
    await eventually(lambda: len(sink.received) >= CIRCUIT_THRESHOLD + 5, what="the circuit opened and five probes went")
    down[0] = False

    await eventually(lambda: len(holds) == 1, what="a probe held")
    next(iter(holds.values())).set()
    await eventually(lambda: sink.in_flight == 2 and len(r.leased()) == 4, what="two posting, two waiting")
    for _ in range(3):
        first = next(m for m, hold in holds.items() if not hold.is_set())
        holds[first].set()
        await eventually(
            lambda: first not in r.events() and sink.in_flight == 2 and len(r.leased()) == 4, what=f"{first} delivered, another posting, four leased"
        )
    for hold in holds.values():
        hold.set()
    await r.stop(grace=30)


# -- housekeeping -------------------------------------------------------------------


async def test_housekeeping_turns_ended_windows_into_logged_dead_letters_and_forgets_old_ones(rig, sink, log_lines):
    r = await rig(dead_letter_retention_s=500.0, idempotency_window_s=100.0)
    now = time.time()
    await r.enqueue("h-old", now=now - 2000, window_s=10)
    assert [letter.message_id for letter in await r.store.expire(now=now - 1000, limit=10)] == ["h-old"]  # dead since long ago
    [expired] = await r.enqueue("h-expired", now=now - 1000, window_s=10, dedupe=True, idempotency_window_s=100.0)
    [anonymous] = await r.enqueue("", now=now - 1000, window_s=10)
    await r.enqueue("h-later")
    r.sql("UPDATE events SET due_at = ? WHERE message_id = 'h-later'", now + HOUR)
    assert r.sql("SELECT count(*) FROM idempotency") == [(1,)]
    await r.start()
    await eventually(lambda: r.metric("kameleoon_outbox_dead_letters") == 3, what="the gauges refreshed")
    # The first tick: ended windows to dead letters, then the gauges, then old dead letters and keys forgotten.
    assert (r.metric("kameleoon_outbox_pending"), r.metric("kameleoon_outbox_in_flight")) == (1, 0)
    assert r.metric("kameleoon_outbox_oldest_pending_age_seconds") >= 0
    await eventually(
        lambda: sorted(r.letters()) == ["", "h-expired"] and r.sql("SELECT count(*) FROM idempotency") == [(0,)],
        what="the old dead letter and key forgotten",
    )
    assert r.letters()["h-expired"] == (0, 0, "the retry window ended before any attempt", "route-logEvent")
    lines = {line["outbox_id"]: line for line in log_lines() if line["event"] == "dead letter"}
    assert sorted(lines) == sorted([expired, anonymous])
    assert {k: lines[expired][k] for k in ("level", "message_id", "action", "route", "attempts", "http_status", "error")} == {
        "level": "warning",
        "message_id": "h-expired",
        "action": "logEvent",
        "route": "route-logEvent",
        "attempts": 0,
        "http_status": 0,
        "error": "the retry window ended before any attempt",
    }
    assert lines[anonymous]["message_id"] is None
    assert r.metric('kameleoon_outbox_dead_lettered_total{action="logEvent"}') == 2
    assert posted(sink) == []
    await r.stop()


# -- an outbox that fails ---------------------------------------------------------------

# SQLite itself refuses a statement while a switch row is in ``fail``: the store meets a real error
# (sqlite3.IntegrityError from RAISE), as it would a full disk, and reports OutboxUnavailable.
FAILURES = """
CREATE TABLE fail (op TEXT PRIMARY KEY);
CREATE TRIGGER fail_claim BEFORE UPDATE OF lease ON events WHEN EXISTS (SELECT 1 FROM fail WHERE op = 'claim')
    BEGIN SELECT RAISE(ABORT, 'claims refused by the test'); END;
CREATE TRIGGER fail_delivered BEFORE DELETE ON events WHEN EXISTS (SELECT 1 FROM fail WHERE op = 'marks')
    BEGIN SELECT RAISE(ABORT, 'marks refused by the test'); END;
CREATE TRIGGER fail_expire BEFORE INSERT ON dead_letters WHEN EXISTS (SELECT 1 FROM fail WHERE op = 'expire')
    BEGIN SELECT RAISE(ABORT, 'expiry refused by the test'); END;
"""


def switch(r: Rig, op: str, on: bool) -> None:
    with sqlite3.connect(r.path) as conn:
        if on:
            conn.executescript(FAILURES if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'fail'").fetchall() else "")
            conn.execute("INSERT INTO fail VALUES (?)", (op,))
        else:
            conn.execute("DELETE FROM fail WHERE op = ?", (op,))


def warnings_of(lines: list[dict], event: str) -> list[str]:
    return [line["error"] for line in lines if line["event"] == event and line["level"] == "warning"]


async def test_marks_the_outbox_refuses_are_kept_and_committed_later_without_posting_again(rig, sink, log_lines):
    r = await rig()
    await r.enqueue("m-1")
    switch(r, "marks", True)
    await r.start()
    await eventually(lambda: warnings_of(log_lines(), "outbox marks failed; will try again"), what="the marks refused")
    assert posted(sink) == ["m-1"] and r.events()["m-1"][2] is not None  # delivered, still leased
    assert "marks refused by the test" in warnings_of(log_lines(), "outbox marks failed; will try again")[0]
    assert r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 0
    switch(r, "marks", False)
    await eventually(lambda: not r.events(), what="the kept mark committed")
    await eventually(lambda: r.metric('kameleoon_outbox_delivered_total{action="logEvent"}') == 1, what="counted")
    assert posted(sink) == ["m-1"]
    await r.stop()


async def test_claims_and_expiry_the_outbox_refuses_are_tried_again(rig, sink, log_lines):
    r = await rig()
    await r.enqueue("x-1")
    await r.enqueue("x-expired", now=time.time() - 100, window_s=10)
    switch(r, "claim", True)
    switch(r, "expire", True)
    await r.start()
    await eventually(
        lambda: warnings_of(log_lines(), "outbox claim failed") and warnings_of(log_lines(), "outbox housekeeping failed"), what="both refused"
    )
    # (a refused statement fails the whole group commit it shares: either text may come back)
    for event in ("outbox claim failed", "outbox housekeeping failed"):
        assert "refused by the test" in warnings_of(log_lines(), event)[0] and r.path in warnings_of(log_lines(), event)[0]
    assert posted(sink) == [] and r.letters() == {}
    switch(r, "claim", False)
    switch(r, "expire", False)
    await eventually(lambda: posted(sink) == ["x-1"] and not r.events() and list(r.letters()) == ["x-expired"], what="both done")
    await r.stop()


async def test_a_refused_read_of_the_next_due_time_leaves_the_claimer_polling(rig, sink):
    """Nothing due, and the outbox refuses the read of when something will be (its reading connection
    failing while its writer works): the claimer looks again after POLL_S and delivers what came since."""
    r = await rig()
    refused = []
    reads = r.store.next_due

    async def next_due():  # the store's own read, refused: no trigger can refuse a SELECT
        if not refused:
            refused.append(True)
            raise OutboxUnavailable("read refused by the test")
        return await reads()

    r.store.next_due = next_due
    await r.start()
    await eventually(lambda: refused, what="the read refused")
    await r.enqueue("late-1")  # no wake-up: found only by looking again
    await eventually(lambda: posted(sink) == ["late-1"], what="the event found by the next claim")
    await r.stop()


async def test_a_probe_that_finds_nothing_due_waits_for_the_next_due_event(rig, sink, log_lines):
    """The circuit opens on five events whose retries come later than the first probe (up to 4 s): the
    probe finds nothing to claim (about 19 times in 20), waits, and probes with the first event that comes due."""
    sink.default = Reply(status=503)
    r = await rig(outbox_concurrency=CIRCUIT_THRESHOLD, retry_max_backoff_s=4.0)  # probes after 25-50 ms
    await r.enqueue(*(f"n-{i}" for i in range(CIRCUIT_THRESHOLD)))
    r.sql("UPDATE events SET attempts = 20")  # backoff at its cap: retries due within 4 s
    await r.start()
    await eventually(lambda: opening_lines(log_lines()), what="the circuit open")
    r.deliverer.wake()  # as a local enqueue would: the claimer stops idling and finds the circuit open
    await eventually(lambda: len(sink.received) >= CIRCUIT_THRESHOLD + 1, what="a probe once a retry came due")
    await r.stop(grace=30)
    assert r.letters() == {} and sorted(row[0] for row in r.events().values()) == [21] * (CIRCUIT_THRESHOLD - 1) + [22]
