"""Idempotency: a messageId delivered successfully is not sent again within a window.

The store is a small interface (:class:`DeliveredStore`) so a shared store
(Redis, a database) can replace the in-memory one when several replicas run.
Keys are made by the pipeline from the sitecode, the action or subscription,
and the messageId; only successful deliveries are remembered.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

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
