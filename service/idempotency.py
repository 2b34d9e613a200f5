"""Idempotency: a messageId delivered successfully is not sent again within a window.

The store is a small interface (:class:`DeliveredStore`): in memory
(:class:`MemoryStore`) when no outbox is configured, else in the outbox
(:class:`OutboxStore`), shared by every process using it. Keys are made by the
pipeline from the sitecode, the action or subscription, and the messageId;
synchronous calls remember successful deliveries, queued calls take the key
when the event is committed.

In memory, a process knows what it is delivering itself (the pipeline waits
for it). Across processes the outbox keeps a *reservation* while a
synchronous post is in flight (service.outbox.base): :meth:`OutboxStore.reserve`
takes it, or waits while another process holds it, polling the store
(:func:`polls`), until that one delivered it (a duplicate) or failed (this one
posts), or the caller's deadline comes; :meth:`OutboxStore.settle` ends it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Iterator, Protocol

import structlog

from service.delivery import DEADLINE_RESERVE_S
from service.errors import DeadlineExceeded, OutboxUnavailable
from service.outbox.base import DELIVERED, TAKEN

BUCKETS = 8
# Waiting for another process's delivery of a key: look again after 20 ms, then 40, 80, ... 250 ms at most.
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.25
# Added to a reservation beyond the end of its delivery (a pool slot waited for, the store's answers, clocks).
RESERVE_MARGIN_S = 5.0

log = structlog.get_logger("kameleoon.idempotency")
# The token of a post made without a reservation: the store could not be asked.
UNRESERVED = ""


class DeliveredStore(Protocol):
    async def seen(self, key: str) -> bool:
        """Whether ``key`` was delivered within the window."""

    async def remember(self, key: str) -> None:
        """Record that ``key`` was delivered now."""


class MemoryStore:
    """In-process store, compact and bounded.

    Keys are kept as 64-bit hashes in time buckets (each 1/8 of the window);
    a whole bucket is forgotten once it is older than the window, and the
    oldest ones go early when more than ``max_entries`` keys are held. So a key
    is remembered for at least ``window_s`` (unless the bound forces it out)
    and at most 1/8 longer; memory is about 60 bytes per key.
    """

    def __init__(self, window_s: float, max_entries: int, clock=time.monotonic):
        self._window = window_s
        self._span = window_s / BUCKETS
        self._max = max_entries
        self._clock = clock
        self._buckets: deque[tuple[float, set[int]]] = deque()  # (start time, hashes), oldest first
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _expire(self, now: float) -> None:
        buckets = self._buckets
        while buckets and (buckets[0][0] + self._span + self._window <= now or self._count > self._max):
            self._count -= len(buckets.popleft()[1])

    async def seen(self, key: str) -> bool:
        self._expire(self._clock())
        digest = hash(key)
        for _, keys in self._buckets:
            if digest in keys:
                return True
        return False

    async def remember(self, key: str) -> None:
        now = self._clock()
        if not self._buckets or self._buckets[-1][0] + self._span <= now:
            self._buckets.append((now, set()))
        keys = self._buckets[-1][1]
        digest = hash(key)
        if digest not in keys:
            keys.add(digest)
            self._count += 1
        self._expire(now)


class NoStore:
    """Idempotency turned off (window 0)."""

    async def seen(self, key: str) -> bool:
        return False

    async def remember(self, key: str) -> None:
        return None


class OutboxStore:
    """The window kept in the outbox, shared by every process (and replica) using it.

    A synchronous delivery reserves its key (:meth:`reserve`) before posting and
    settles it after (:meth:`settle`). The reservation lasts until the delivery
    will have finished at the latest: the caller's deadline, or ``longest_s``
    (service.delivery.longest_post_s) when that is sooner or there is none,
    plus :data:`RESERVE_MARGIN_S`; past it the holder is presumed dead and the
    key free. A store that cannot be read or written does not stop synchronous
    calls: the event is posted without a reservation (at least once: while the
    store is down, two replicas may both post it) and the failure is logged; one
    that fails after the post is logged too (the reservation runs out by itself).
    """

    def __init__(self, outbox, window_s: float, log, longest_s: float):
        self._outbox = outbox
        self._window = window_s
        self._log = log
        self._longest = longest_s

    async def reserve(self, key: str, deadline: float | None) -> str | None:
        """Hold ``key`` for a post: the reservation's token (:data:`UNRESERVED` when the store could not
        be asked: post anyway); None when it was delivered or queued already.

        While another process holds it, waits (polling) until that one settles it
        or its reservation runs out. ``deadline`` is the caller's, an absolute
        ``loop.time()``: DeadlineExceeded when it comes first (nothing posted).
        """
        loop = asyncio.get_running_loop()
        pauses = polls()
        waited = False
        while True:
            now = time.time()
            left = self._longest if deadline is None else min(self._longest, max(deadline - loop.time(), 0.0))
            try:
                found = await self._outbox.reserve(key, now=now, window_s=self._window, until=now + left + RESERVE_MARGIN_S)
            except OutboxUnavailable as exc:
                self._log.warning("idempotency look-up failed: posting without a reservation", error=str(exc))
                return UNRESERVED
            if found.state == TAKEN:
                return found.token
            if found.state == DELIVERED:
                return None
            if not waited:  # busy: another delivery holds it
                waited = True
                log_wait(key.split("\x1f", 2)[-1], found.until)
            pause = next(pauses)
            if deadline is not None:
                left = deadline - DEADLINE_RESERVE_S - loop.time()
                if left <= 0:
                    raise DeadlineExceeded(
                        "the call's deadline passed while another delivery of this messageId was in flight; nothing was sent"
                    )
                pause = min(pause, left)
            await asyncio.sleep(pause)

    async def settle(self, key: str, token: str, delivered: bool) -> None:
        """End the reservation ``token``: the key taken now if the post ``delivered``, else freed for a next one."""
        if token == UNRESERVED and not delivered:  # nothing reserved, nothing to free
            return
        try:
            if delivered:
                await self._outbox.remember(key, now=time.time())
            else:
                await self._outbox.unreserve(key, token, now=time.time())
        except OutboxUnavailable as exc:
            self._log.warning("idempotency record failed" if delivered else "idempotency release failed", error=str(exc))


def log_wait(message_id: str, held_until: float) -> None:
    """One debug line per call that waits for a delivery of its messageId in flight in another process."""
    log.debug("waiting for another delivery of this messageId", message_id=message_id, held_until=round(held_until, 3))


def polls() -> Iterator[float]:
    """The pauses between two looks at a key another delivery holds: growing from POLL_FIRST_S to POLL_MAX_S."""
    pause = POLL_FIRST_S
    while True:
        yield pause
        pause = min(pause * 2, POLL_MAX_S)
