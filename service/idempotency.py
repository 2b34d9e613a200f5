"""Idempotency: a messageId delivered successfully is not sent again within a window.

The store is a small interface (:class:`DeliveredStore`) so a shared store
(Redis, a database) can replace the in-memory one when several replicas run.
Keys are made by the pipeline from the sitecode, the action or subscription,
and the messageId; only successful deliveries are remembered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class DeliveredStore(Protocol):
    async def seen(self, key: str) -> bool:
        """Whether ``key`` was delivered within the window."""

    async def remember(self, key: str) -> None:
        """Record that ``key`` was delivered now."""


class MemoryStore:
    """In-process store: at most ``max_entries`` keys, each kept ``window_s`` seconds (oldest dropped first)."""

    def __init__(self, window_s: float, max_entries: int, clock=time.monotonic):
        self._window = window_s
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def seen(self, key: str) -> bool:
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[key]
            return False
        return True

    async def remember(self, key: str) -> None:
        now = self._clock()
        self._expiry.pop(key, None)
        self._expiry[key] = now + self._window
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now and len(self._expiry) <= self._max:
                break
            del self._expiry[oldest]


class NoStore:
    """Idempotency turned off (window 0)."""

    async def seen(self, key: str) -> bool:
        return False

    async def remember(self, key: str) -> None:
        return None
