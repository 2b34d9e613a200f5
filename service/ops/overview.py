"""Where events went, per destination instance: Segment's Delivery Overview and Event Delivery.

- Counts by stage and reason, kept as per-minute rollups for OVERVIEW_RETENTION_S (14 days): ``received``
  (an event reached the instance), ``discarded`` (its reason: consent, the Integrations object, a filter,
  no matching subscription, INVALID_EVENT when a mapping or validation refused it), ``failed`` (HTTP_<status>,
  NETWORK_ERROR, DEAD_LETTER), ``retrying`` (a queued event's attempt failed and it waits for another),
  ``delivered``.
- Samples: the latest SAMPLES_PER_REASON of each instance and failure or discard reason, with what was
  received, the request (its apiKey redacted) and Kameleoon's answer, each text cut at TEXT_BYTES;
  KAMELEOON_SAMPLES=off keeps none (they hold personal data), KAMELEOON_SAMPLE_RETENTION_S bounds their age.

The event path only adds to a dictionary (:class:`Recorder`); ``flush()`` hands what was gathered to a
store every FLUSH_S seconds in one write: the outbox's tables when there is an outbox (replicas share
them), else :class:`MemoryOverview`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import NamedTuple, Protocol

import structlog

log = structlog.get_logger("kameleoon.overview")

RECEIVED, DISCARDED, FAILED, RETRYING, DELIVERED = "received", "discarded", "failed", "retrying", "delivered"
STAGES = (RECEIVED, DISCARDED, FAILED, RETRYING, DELIVERED)
INVALID_EVENT, NETWORK_ERROR, DEAD_LETTER = "INVALID_EVENT", "NETWORK_ERROR", "DEAD_LETTER"
SAMPLES_PER_REASON = 10
TEXT_BYTES = 4096
OVERVIEW_RETENTION_S = 14 * 86400
FLUSH_S = 2.0

Key = tuple[str, str, str, str]  # (source, destination, stage, reason)


def cut(text: str | bytes, limit: int = TEXT_BYTES) -> str:
    """At most ``limit`` bytes of ``text`` as UTF-8, a character never split; what no store's text holds
    replaced: a lone surrogate by '?', a NUL (or bytes that are not UTF-8) by U+FFFD or left out."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return raw[:limit].decode("utf-8", "ignore").replace("\x00", "\ufffd")


def failure_reason(http_status: int) -> str:
    """A final failure's reason: HTTP_<status>, or NETWORK_ERROR when Kameleoon did not answer."""
    return f"HTTP_{http_status}" if http_status else NETWORK_ERROR


class Sample(NamedTuple):
    """One event a stage stopped or Kameleoon did not take, as the stores keep it (a tuple, in this order)."""

    source: str
    destination: str
    reason: str
    at: float  # epoch seconds
    message_id: str
    event: str  # what was received (JSON text), cut
    request: str  # the request to Kameleoon: method, URL, headers (apiKey redacted), body; cut
    http_status: int  # Kameleoon's answer; 0: none
    response: str  # the first TEXT_BYTES of Kameleoon's answer, or the error
    attempts: int


def request_text(url: str, headers: dict[str, str], body: bytes) -> str:
    """The request as a sample shows it: its apiKey never (the authorization header is redacted)."""
    lines = [f"POST {url}"] + [f"{name}: {'Basic <redacted>' if name == 'authorization' else value}" for name, value in headers.items()]
    return cut("\n".join(lines) + "\n\n" + body.decode("utf-8", "replace"))


class OverviewStore(Protocol):
    """Where rollups and samples are kept (the outbox's stores implement it, and MemoryOverview)."""

    async def add_overview(
        self, minute: int, rows: list[tuple], samples: list[Sample], *, first_minute: int, samples_since: float, samples_kept: int
    ) -> None: ...

    async def overview(self, since: float, until: float) -> list[tuple]: ...

    async def samples(self, reason: str, source: str = "", destination: str = "") -> list[tuple]: ...


class MemoryOverview:
    """Rollups and samples in this process, for a service without an outbox."""

    def __init__(self) -> None:
        self._minutes: dict[int, collections.Counter] = {}
        self._samples: dict[tuple[str, str, str], collections.deque[Sample]] = {}

    async def add_overview(
        self, minute: int, rows: list[tuple], samples: list[Sample], *, first_minute: int, samples_since: float, samples_kept: int
    ) -> None:
        bucket = self._minutes.setdefault(minute, collections.Counter())
        for source, destination, stage, reason, count in rows:
            bucket[(source, destination, stage, reason)] += count
        for gone in [m for m in self._minutes if m < first_minute]:
            del self._minutes[gone]
        for sample in samples:
            kind = (sample.source, sample.destination, sample.reason)
            self._samples.setdefault(kind, collections.deque(maxlen=samples_kept)).append(sample)
        for key, kept in list(self._samples.items()):
            while kept and kept[0].at < samples_since:
                kept.popleft()
            if not kept:
                del self._samples[key]

    async def overview(self, since: float, until: float) -> list[tuple]:
        total: collections.Counter = collections.Counter()
        for minute, bucket in self._minutes.items():
            if since <= minute * 60 < until:
                total.update(bucket)
        return [(*key, count) for key, count in total.items()]

    async def samples(self, reason: str, source: str = "", destination: str = "") -> list[tuple]:
        found: list[Sample] = [
            sample
            for (src, dst, why), kept in self._samples.items()
            if why == reason and (not source or src == source) and (not destination or dst == destination)
            for sample in kept
        ]
        found.sort(key=lambda sample: sample.at, reverse=True)
        return list(found)


class Recorder:
    """What the event path reports; ``flush()`` writes it to ``store``. ``samples``: keep samples at all."""

    def __init__(self, store: OverviewStore, samples: bool = True, sample_retention_s: float = 7 * 86400, clock=time.time):
        self.store = store
        self.keep_samples = samples
        self._retention = sample_retention_s
        self._clock = clock
        self._counts: dict[Key, int] = {}
        self._samples: dict[tuple[str, str, str], collections.deque[Sample]] = {}
        self._task: asyncio.Task | None = None

    def count(self, source: str, destination: str, stage: str, reason: str = "") -> None:
        key = (source, destination, stage, reason)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    def wants(self, source: str, destination: str, reason: str) -> bool:
        """Whether a sample of this reason would be kept: samples are on and fewer than SAMPLES_PER_REASON of it
        wait for the next flush. Callers ask first, so a burst of discards encodes ten events, not every one."""
        if not self.keep_samples:
            return False
        kept = self._samples.get((source, destination, reason))
        return kept is None or len(kept) < SAMPLES_PER_REASON

    def sample(
        self,
        source: str,
        destination: str,
        reason: str,
        message_id: str,
        event: str | bytes = "",
        request: str = "",
        http_status: int = 0,
        response: str = "",
        attempts: int = 0,
    ) -> None:
        """One sample, kept when :meth:`wants` says so: the first SAMPLES_PER_REASON of a reason between two
        flushes (the stores keep the latest of those)."""
        if not self.wants(source, destination, reason):
            return
        kept = self._samples.get((source, destination, reason))
        if kept is None:
            kept = self._samples[(source, destination, reason)] = collections.deque(maxlen=SAMPLES_PER_REASON)
        at = self._clock()
        kept.append(Sample(source, destination, reason, at, cut(message_id, 1024), cut(event), cut(request), http_status, cut(response), attempts))

    async def flush(self) -> None:
        """Hand what was gathered since the last flush to the store, in one write (kept for the next on failure)."""
        counts, self._counts = self._counts, {}
        samples = [sample for kept in self._samples.values() for sample in kept]
        self._samples = {}
        if not counts and not samples:
            return
        now = self._clock()
        rows = [(*key, count) for key, count in counts.items()]
        try:
            await self.store.add_overview(
                int(now // 60),
                rows,
                samples,
                first_minute=int((now - OVERVIEW_RETENTION_S) // 60),
                samples_since=now - self._retention,
                samples_kept=SAMPLES_PER_REASON,
            )
        except Exception as exc:  # the store is unreachable: keep the counts (samples are dropped: bounded memory)
            for key, count in counts.items():
                self._counts[key] = self._counts.get(key, 0) + count
            log.warning("delivery overview not written: kept for the next try", error=f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()


class NoRecorder:
    """Stands in where nothing is recorded (benchmarks' pieces, tests of one stage)."""

    keep_samples = False

    def count(self, source: str, destination: str, stage: str, reason: str = "") -> None:
        pass

    def wants(self, source: str, destination: str, reason: str) -> bool:
        return False

    def sample(self, *args, **kwargs) -> None:
        pass
