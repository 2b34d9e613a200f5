"""Idempotency: a messageId delivered successfully is not sent again within a window.

The store is a small interface (:class:`DeliveredStore`): in memory
(:class:`MemoryStore`) when no outbox is configured, else in the outbox
(:class:`OutboxStore`), shared by every process using it. Keys are made by the
pipeline from the sitecode, the action or subscription, and the messageId;
synchronous calls remember successful deliveries, queued calls take the key
when the event is committed.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

from service.errors import OutboxUnavailable

BUCKETS = 8


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

    A store that cannot be read or written does not stop synchronous calls: a
    failed look-up counts as not seen (the event is sent; at least once), a failed
    record is logged.
    """

    def __init__(self, outbox, window_s: float, log):
        self._outbox = outbox
        self._window = window_s
        self._log = log

    async def seen(self, key: str) -> bool:
        try:
            return await self._outbox.seen(key, now=time.time(), window_s=self._window)
        except OutboxUnavailable as exc:
            self._log.warning("idempotency look-up failed", error=str(exc))
            return False

    async def remember(self, key: str) -> None:
        try:
            await self._outbox.remember(key, now=time.time())
        except OutboxUnavailable as exc:
            self._log.warning("idempotency record failed", error=str(exc))
