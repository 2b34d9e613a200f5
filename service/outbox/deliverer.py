"""The deliverer: takes due events out of the outbox and posts them to Kameleoon.

    claim loop --claimed--> ready queue --> workers (KAMELEOON_OUTBOX_CONCURRENCY)
                                              | post once with the delivery client
                                              v
              marks (delivered / retry at / dead / released), flushed in batches
    housekeeping: ended windows -> dead letters, gauges, old dead letters and keys forgotten

- One attempt per claim (the delivery client's own retries are off). Retryable
  outcomes (no answer, 408, 423, 429, 5xx but 501) come back after an
  exponential backoff with full jitter (base KAMELEOON_BACKOFF_BASE_S, at most
  KAMELEOON_RETRY_MAX_BACKOFF_S), or Kameleoon's Retry-After when longer, for
  as long as the event's window lasts; then, and for any other answer (4xx,
  501), a dead letter with the last status and error, and one log line.
- A circuit: after CIRCUIT_THRESHOLD retryable outcomes in a row, claims stop,
  claimed events not yet started go back, and one event at a time probes
  Kameleoon, with growing pauses (at most PROBE_MAX_S). The first success
  closes the circuit and claims go back to full speed. So a long outage costs
  one request per pause, and the backlog drains at once when it ends.
- Marks do not hold a worker: a worker posts, notes the outcome and takes the
  next event; a flusher commits the notes in batches (one transaction). Until
  then the lease keeps the event from being claimed again.
- stop(grace): claims stop, events not started go back at once, attempts in
  flight get ``grace`` seconds, the rest are cancelled and go back.
"""

from __future__ import annotations

import asyncio
import random
import time

import structlog

from service.config import Config
from service.delivery.client import KameleoonClient
from service.delivery.idempotency import stored_key
from service.errors import DeliveryError, OutboxUnavailable, Unavailable
from service.ops import overview
from service.ops.metrics import NoMetrics
from service.ops.overview import NoRecorder
from service.outbox.base import Claimed, Dead, DeadLetter, Outbox, Retry
from service.outbox.sealing import INSTANCE, Sealer, Unsealable

log = structlog.get_logger("kameleoon.outbox")

CIRCUIT_THRESHOLD = 5  # retryable outcomes in a row that open the circuit
PROBE_MAX_S = 30.0  # longest pause between two probes while Kameleoon keeps failing
POLL_S = 1.0  # with nothing due, look again this often (other processes enqueue too)
TICK_S = 1.0  # housekeeping: ended windows to dead letters
STATS_EVERY = 5  # ticks between two refreshes of the gauges
FORGET_EVERY = 60  # ticks between two deletions of old dead letters and idempotency keys
EXPIRE_BATCH = 1000
ERROR_TEXT = 500  # stored error text, characters
WINDOW_ENDED = "the retry window ended"


class Circuit:
    """Opens after CIRCUIT_THRESHOLD retryable outcomes in a row; ``until`` is when the next probe may go."""

    def __init__(self, base_s: float, cap_s: float):
        self.base_s = max(base_s, 0.01)
        self.cap_s = cap_s
        self.failures = 0
        self.opened = 0  # opening in a row without a success
        self.until = 0.0  # loop time

    @property
    def is_open(self) -> bool:
        return self.failures >= CIRCUIT_THRESHOLD

    def success(self) -> bool:
        """A success; True when it closes an open circuit."""
        was_open = self.is_open
        self.failures = self.opened = 0
        return was_open

    def failure(self, now: float, retry_after: float | None) -> bool:
        """A retryable outcome; True when it opens (or re-opens) the circuit."""
        self.failures += 1
        if not self.is_open or now < self.until:
            return False
        self.opened += 1
        pause = min(self.cap_s, self.base_s * 2 ** (self.opened - 1))
        pause = pause / 2 + random.uniform(0, pause / 2)
        self.until = now + max(pause, retry_after or 0.0)
        return True


class Deliverer:
    def __init__(self, outbox: Outbox, client: KameleoonClient, sealer: Sealer, config: Config, metrics=None, recorder=None):
        self._outbox = outbox
        self._recorder = recorder or NoRecorder()
        self._client = client
        self._sealer = sealer
        self._config = config
        self._metrics = metrics or NoMetrics()
        self._concurrency = config.outbox_concurrency
        self._circuit = Circuit(config.backoff_base_s * 5, min(PROBE_MAX_S, config.retry_max_backoff_s))
        self._ready: asyncio.Queue[Claimed | None] = asyncio.Queue()
        self._busy = 0
        self._space = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._closing = False  # stop(): the flusher ends after the flush under way
        self._delivered: list[Claimed] = []
        self._retries: list[Retry] = []
        self._dead: list[tuple[Dead, Claimed]] = []
        self._released: list[Claimed] = []
        self._tasks: list[asyncio.Task] = []
        self._workers: list[asyncio.Task] = []
        self._claimer: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None

    # -- life -----------------------------------------------------------------

    def wake(self) -> None:
        """New events were committed by this process: look at once."""
        self._wake.set()

    async def start(self) -> None:
        self._workers = [asyncio.ensure_future(self._work()) for _ in range(self._concurrency)]
        self._claimer = asyncio.ensure_future(self._claim_loop())
        self._flusher = asyncio.ensure_future(self._flush_loop())
        self._tasks = [asyncio.ensure_future(self._housekeeping_loop())]

    async def stop(self, grace: float | None) -> None:
        """Stop claiming; give attempts in flight ``grace`` seconds; put everything else back."""
        self._stop.set()
        self._wake.set()
        self._space.set()
        if self._claimer is not None:  # it may be probing: that attempt gets the grace too
            await asyncio.wait([self._claimer], timeout=grace)
            self._claimer.cancel()
            await asyncio.gather(self._claimer, return_exceptions=True)
        self._release_ready()
        for _ in self._workers:
            self._ready.put_nowait(None)
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._flusher is not None:  # never cancelled mid-flush: marks taken out of the lists would be lost
            self._closing = True
            self._dirty.set()
            await self._flusher
        await self._flush()  # the last marks; if the outbox fails now, the leases run out and the events come back

    # -- claiming -------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                if self._circuit.is_open:
                    await self._pause(self._circuit.until - loop.time())
                    if not self._stop.is_set():
                        await self._probe()
                    continue
                room = 2 * self._concurrency - self._ready.qsize() - self._busy
                if room < max(1, self._concurrency // 2):
                    self._space.clear()
                    await self._space.wait()
                    continue
                claimed = await self._outbox.claim(room, now=time.time(), lease_s=self._config.outbox_lease_s)
                if not claimed:
                    await self._idle()
                    continue
                for item in claimed:
                    self._ready.put_nowait(item)
            except OutboxUnavailable as exc:
                log.warning("outbox claim failed", error=str(exc))
                await self._pause(POLL_S)

    async def _probe(self) -> None:
        """The circuit is open: one event tells whether Kameleoon is back."""
        claimed = await self._outbox.claim(1, now=time.time(), lease_s=self._config.outbox_lease_s)
        if not claimed:
            await self._idle()
            return
        self._busy += 1
        try:
            await self._deliver(claimed[0])
        finally:
            self._busy -= 1
        if not self._circuit.is_open:
            log.info("kameleoon is back: delivering the backlog")

    async def _idle(self) -> None:
        """Nothing due: wait for a local enqueue, the next due event, or POLL_S at most."""
        self._wake.clear()
        try:
            due = await self._outbox.next_due()
        except OutboxUnavailable:
            due = None
        wait = POLL_S if due is None else min(POLL_S, max(0.05, due - time.time()))
        await self._pause(wait, self._wake)

    async def _pause(self, seconds: float, *events: asyncio.Event) -> None:
        """Sleep ``seconds`` unless stopping (or one of ``events`` is set) first."""
        if seconds <= 0:
            return
        waiters = [asyncio.ensure_future(event.wait()) for event in (self._stop, *events)]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _release_ready(self) -> None:
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if item is not None:
                self._released.append(item)
        self._dirty.set()

    # -- posting ----------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            item = await self._ready.get()
            if item is None:
                return
            if self._circuit.is_open or self._stop.is_set():
                self._released.append(item)
                self._dirty.set()
                continue
            self._busy += 1
            try:
                await self._deliver(item)
            finally:
                self._busy -= 1
                self._space.set()

    async def _deliver(self, item: Claimed) -> None:
        try:
            credentials = self._sealer.credentials(item.credentials, item.sitecode)
        except Unsealable as exc:
            self._note_dead(item, 0, str(exc))
            return
        try:
            await self._client.post(item.body, credentials, None, item.action, max_attempts=1)
        except asyncio.CancelledError:
            self._released.append(item)  # stop() ran out of grace: put it back (it may have arrived: at least once)
            self._dirty.set()
            raise
        except Unavailable as exc:
            self._retry_or_dead(item, exc)
        except DeliveryError as exc:  # Kameleoon answered for good: 4xx, 501
            self._circuit.success()
            self._note_dead(item, exc.http_status, str(exc))
        else:
            if self._circuit.success():
                log.info("kameleoon answers again: circuit closed")
            self._delivered.append(item)
            self._dirty.set()

    def _retry_or_dead(self, item: Claimed, exc: Unavailable) -> None:
        loop_now = asyncio.get_running_loop().time()
        if self._circuit.failure(loop_now, exc.retry_after):
            self._release_ready()
            report = log.warning if self._circuit.opened == 1 else log.debug  # one warning an outage, not one a probe
            report(
                "kameleoon keeps failing: circuit open",
                probe_in_s=round(self._circuit.until - loop_now, 3),
                http_status=exc.http_status,
                error=str(exc),
            )
        cap = self._config.retry_max_backoff_s
        delay = random.uniform(0, min(cap, self._config.backoff_base_s * 2 ** (item.attempts - 1)))
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        at = time.time() + delay
        if at >= item.expires_at:
            self._note_dead(item, exc.http_status, f"{WINDOW_ENDED}; last error: {exc}")
            return
        self._retries.append(Retry(item.id, item.lease, at, exc.http_status, str(exc)[:ERROR_TEXT]))
        self._dirty.set()
        self._record(item, overview.RETRYING, overview.failure_reason(exc.http_status), exc.http_status, str(exc))

    def _note_dead(self, item: Claimed, http_status: int, error: str) -> None:
        self._dead.append((Dead(item.id, item.lease, http_status, error[:ERROR_TEXT]), item))
        self._dirty.set()

    # -- marks ------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            flushed = await self._flush()
            if self._closing:
                return
            if not flushed:
                await asyncio.sleep(POLL_S)  # the outbox failed: try again soon (stop() waits this long at most)
                self._dirty.set()

    async def _flush(self) -> bool:
        """Commit the marks noted so far, in one transaction; False (and kept for later) when the outbox failed."""
        delivered, self._delivered = self._delivered, []
        retries, self._retries = self._retries, []
        dead, self._dead = self._dead, []
        released, self._released = self._released, []
        if not (delivered or retries or dead or released):
            return True
        now = time.time()
        results = await asyncio.gather(
            self._outbox.mark_delivered(delivered, now=now, keys=self._keys(delivered)),
            self._outbox.mark_retry(retries, now=now),
            self._outbox.mark_dead([mark for mark, _ in dead], now=now),
            self._outbox.release(released, now=now),
            return_exceptions=True,
        )
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            log.warning("outbox marks failed; will try again", error=str(failed))
            self._delivered[:0], self._retries[:0], self._dead[:0], self._released[:0] = delivered, retries, dead, released
            return False
        for item in delivered:
            self._metrics.outbox_event("delivered", item.action)
            self._recorder.count(*instance_of(item.credentials, item.route), overview.DELIVERED)
        for mark, item in dead:
            self._record(item, overview.FAILED, overview.DEAD_LETTER, mark.http_status, mark.error)
            self._dead_letter_logged(item.id, item.message_id, item.action, item.route, item.attempts, mark.http_status, mark.error)
        return True

    def _keys(self, delivered: list[Claimed]) -> list[str]:
        """The idempotency keys of delivered events, stamped with the delivery's time (OutboxAdmin.GetEvent)."""
        if not self._config.idempotency_window_s:
            return []
        return [stored_key(item.sitecode, item.route, item.message_id) for item in delivered if item.message_id]

    def _record(self, item: Claimed, stage: str, reason: str, http_status: int, error: str) -> None:
        """An attempt's outcome in the delivery overview, with a sample of the request (its apiKey never kept)."""
        source, destination = instance_of(item.credentials, item.route)
        recorder = self._recorder
        recorder.count(source, destination, stage, reason if stage == overview.FAILED else "")
        if recorder.wants(source, destination, reason):
            request = self._request_text(item.sitecode, item.body)
            recorder.sample(source, destination, reason, item.message_id, "", request, http_status, error, item.attempts)

    def _request_text(self, sitecode: str, body: bytes) -> str:
        """A queued event's request as a sample shows it (service.ops.overview.request_text: no apiKey)."""
        headers = {"authorization": "", "x-segment-settings": sitecode, "content-type": "application/json"}
        return overview.request_text(self._client.endpoint, headers, body)

    async def _expired(self, letters: list[DeadLetter]) -> None:
        """Events whose retry window ran out between attempts: dead letters, counted and sampled (their body read
        back from the store only for the samples wanted)."""
        recorder = self._recorder
        wanted = []
        for d in letters:
            self._dead_letter_logged(d.id, d.message_id, d.action, d.route, d.attempts, d.last_http_status, d.last_error)
            source, destination = instance_of("", d.route)
            recorder.count(source, destination, overview.FAILED, overview.DEAD_LETTER)
            if recorder.wants(source, destination, overview.DEAD_LETTER):
                wanted.append((d, source, destination))
        if not wanted:
            return
        try:
            bodies = await self._outbox.dead_letter_bodies([d.id for d, _, _ in wanted])
        except OutboxUnavailable:
            bodies = {}  # sampled with Kameleoon's last answer, without the request
        for d, source, destination in wanted:
            request = self._request_text(d.sitecode, bodies[d.id]) if d.id in bodies else ""
            recorder.sample(source, destination, overview.DEAD_LETTER, d.message_id, "", request, d.last_http_status, d.last_error, d.attempts)

    def _dead_letter_logged(self, id: str, message_id: str, action: str, route: str, attempts: int, http_status: int, error: str) -> None:
        self._metrics.outbox_event("dead_lettered", action)
        log.warning(
            "dead letter",
            outbox_id=id,
            message_id=message_id or None,
            action=action,
            route=route,
            attempts=attempts,
            http_status=http_status,
            error=error,
        )

    # -- housekeeping -------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        tick = 0
        while True:
            try:
                await self._expire()
                if tick % STATS_EVERY == 0:
                    self._metrics.outbox_stats(await self._outbox.stats(now=time.time()))
                if tick % FORGET_EVERY == 0:
                    await self._outbox.housekeep(
                        now=time.time(),
                        dead_letter_retention_s=self._config.dead_letter_retention_s,
                        idempotency_window_s=self._config.idempotency_window_s,
                    )
            except OutboxUnavailable as exc:
                log.warning("outbox housekeeping failed", error=str(exc))
            tick += 1
            await asyncio.sleep(TICK_S)

    async def _expire(self) -> None:
        while True:
            letters: list[DeadLetter] = await self._outbox.expire(now=time.time(), limit=EXPIRE_BATCH)
            await self._expired(letters)
            if len(letters) < EXPIRE_BATCH:
                return


__all__ = ["Circuit", "Deliverer"]


def instance_of(credentials: str, route: str) -> tuple[str, str]:
    """The (source, destination instance) a queued event was accepted for: named by its credentials reference,
    else by its route's prefix (``source/instance/subscription``); ("default", "default") otherwise."""
    if credentials.startswith(INSTANCE):
        source, _, name = credentials[len(INSTANCE) :].partition("/")
        return source, name
    parts = route.split("/", 2)
    if not credentials and len(parts) == 3 and all(parts[:2]):
        return parts[0], parts[1]
    return "default", "default"
