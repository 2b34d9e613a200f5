"""Idempotency: a messageId delivered successfully is not sent again within a window.

The store is a small interface (:class:`DeliveredStore`): in memory
(:class:`MemoryStore`) when no outbox is configured, else in the outbox
(service.outbox.window.OutboxStore), shared by every process using it. Keys are
made by :func:`key` from the sitecode, the action or subscription, and the
messageId; synchronous calls remember successful deliveries, queued calls take
the key when the event is committed.

In memory, a process knows what it is delivering itself (service.delivery.sync
waits for it). Across processes a :class:`SharedWindow` keeps a *reservation*
while a synchronous post is in flight: ``reserve`` takes it, or waits while
another process holds it, polling (:func:`polls`), until that one delivered it
(a duplicate) or failed (this one posts), or the caller's deadline comes;
``settle`` ends it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import structlog

from service.delivery.credentials import Credentials

BUCKETS = 8
# Waiting for another process's delivery of a key: look again after 20 ms, then 40, 80, ... 250 ms at most.
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.25

log = structlog.get_logger("kameleoon.idempotency")
# The token of a post made without a reservation: the store could not be asked.
UNRESERVED = ""


class DeliveredStore(Protocol):
    async def seen(self, key: str) -> bool:
        """Whether ``key`` was delivered within the window."""

    async def remember(self, key: str) -> None:
        """Record that ``key`` was delivered now."""


@runtime_checkable
class SharedWindow(Protocol):
    """A window shared by several processes, which also holds a key while a synchronous post is in flight."""

    async def reserve(self, key: str, deadline: float | None) -> str | None:
        """The reservation's token (:data:`UNRESERVED`: the store could not be asked, post anyway), or None
        when ``key`` was delivered or queued already; waits while another process holds it."""

    async def settle(self, key: str, token: str, delivered: bool) -> None:
        """End the reservation ``token``: the key taken if the post ``delivered``, else freed."""


def key(credentials: Credentials, route: str, message_id) -> str | None:
    """The idempotency key of one delivery; None when there is no messageId to go by."""
    if not message_id or not isinstance(message_id, str):
        return None
    return stored_key(credentials.sitecode, route, message_id)


def stored_key(sitecode: str, route: str, message_id: str) -> str:
    """An idempotency key from its parts: what :func:`key` makes, and what the outbox remakes from a row."""
    return f"{sitecode}\x1f{route}\x1f{message_id}"


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


def log_wait(message_id: str, held_until: float) -> None:
    """One debug line per call that waits for a delivery of its messageId in flight in another process."""
    log.debug("waiting for another delivery of this messageId", message_id=message_id, held_until=round(held_until, 3))


def polls() -> Iterator[float]:
    """The pauses between two looks at a key another delivery holds: growing from POLL_FIRST_S to POLL_MAX_S."""
    pause = POLL_FIRST_S
    while True:
        yield pause
        pause = min(pause * 2, POLL_MAX_S)
