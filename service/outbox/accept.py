"""Queued acceptance: rendered requests committed to the outbox, answered once they are stored.

What is stored is exactly what will be POSTed (service.outbox.base.NewEvent), with a credentials
reference instead of an apiKey (service.outbox.sealing). An event whose messageId a synchronous
delivery in another process holds right now (a live reservation) is enqueued again once that one
ends: a duplicate if it succeeded, stored if it failed (:meth:`Acceptor._commit_when_free`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.delivery.credentials import Credentials
from service.delivery.idempotency import POLL_MAX_S, key, log_wait, polls
from service.errors import CallError, MissingSetting, OutboxUnavailable
from service.ops.metrics import NoMetrics
from service.outbox.base import Accepted, NewEvent, Outbox
from service.outbox.sealing import Sealer


@dataclass(frozen=True)
class Queued:
    """A queued event: committed to the outbox under ``outbox_id`` (or a duplicate, not stored again)."""

    outbox_id: str
    duplicate: bool = False
    http_status: int = 0  # nothing was sent during the call
    attempts: int = 0
    filtered_by: str = ""
    discard_reason: str = ""  # a queued event was not discarded

    @property
    def queued(self) -> bool:
        return not self.duplicate


@dataclass(frozen=True)
class QueueSettings:
    """What queued acceptance needs besides the store (from KAMELEOON_* settings)."""

    window_s: float = 14400.0
    idempotency_window_s: float = 86400.0
    max_pending: int = 0


class Acceptor:
    def __init__(self, outbox: Outbox | None, sealer: Sealer | None = None, settings: QueueSettings = QueueSettings(), metrics=None):
        self.outbox = outbox
        self.sealer = sealer or Sealer(None, None)
        self.settings = settings
        self.metrics = metrics or NoMetrics()
        self.on_enqueued: Callable[[], None] = lambda: None  # the deliverer's wake-up

    def reference(self, credentials: Credentials, instance: tuple[str, str] | None = None) -> str:
        """What the outbox stores for ``credentials``: a workspace instance's (source, name) when given, else
        "server" or the request's own apiKey sealed; MissingSetting when an apiKey cannot be sealed."""
        if instance is None:
            return self.sealer.reference(credentials)
        return self.sealer.instance_reference(*instance)

    def new_event(self, action: str, route: str, message_id: str, body: bytes, credentials: Credentials, reference: str) -> NewEvent:
        """The rendered request to store; its idempotency key by ``route`` (an action or a subscription's name)."""
        dedupe = key(credentials, route, message_id) if self.settings.idempotency_window_s else None
        return NewEvent(action, route, credentials.sitecode, message_id, body, reference, dedupe)

    async def enqueue(self, events: list[NewEvent]) -> list[Queued | CallError]:
        """Commit ``events``: each Queued (stored, or a duplicate not stored again), or OutboxUnavailable for
        one a synchronous delivery in another process kept busy too long. Raises the CallError refusing them all."""
        if self.outbox is None:
            raise MissingSetting("queued delivery needs an outbox: set KAMELEOON_OUTBOX (or KAMELEOON_DELIVERY=queued for the default location)")
        accepted = await self._commit(events)
        results: list[Queued | CallError] = [Queued(result.id or "", result.duplicate) for result in accepted]
        busy = [index for index, result in enumerate(accepted) if result.busy]
        if busy:
            await self._commit_when_free(events, results, busy, max(accepted[index].busy_until or 0.0 for index in busy))
        return results

    async def _commit(self, events: list[NewEvent]) -> list[Accepted]:
        """One enqueue, counted in the metrics (a busy event is neither enqueued nor a duplicate)."""
        settings, outbox = self.settings, self.outbox
        assert outbox is not None  # enqueue refused the call otherwise
        accepted = await outbox.enqueue(
            events,
            now=time.time(),
            window_s=settings.window_s,
            idempotency_window_s=settings.idempotency_window_s,
            max_pending=settings.max_pending,
        )
        for event, result in zip(events, accepted):
            if result.duplicate:
                self.metrics.duplicate(event.action)
            elif result.id is not None:
                self.metrics.outbox_event("enqueued", event.action)
        self.on_enqueued()
        return accepted

    async def _commit_when_free(self, events: list[NewEvent], results: list, busy: list[int], until: float) -> None:
        """Enqueue the ``busy`` events again, polling as a second synchronous caller does, until each is stored
        (the delivery holding its key failed, or its process died) or a duplicate (it succeeded). One still held
        once the reservations first met (``until``) have run out, another delivery having taken the key since,
        is refused: OutboxUnavailable in ``results``, nothing queued, never an OK."""
        for index in busy:
            log_wait(events[index].message_id, until)
        pauses = polls()
        while busy:
            if time.time() > until + POLL_MAX_S:
                for index in busy:
                    results[index] = OutboxUnavailable(
                        f"messageId {events[index].message_id!r} is being delivered synchronously by another process "
                        "and its outcome is not known yet: nothing was queued, retry later"
                    )
                return
            await asyncio.sleep(next(pauses))
            accepted = await self._commit([events[index] for index in busy])
            for index, result in zip(busy, accepted):
                results[index] = Queued(result.id or "", result.duplicate)
            busy = [index for index, result in zip(busy, accepted) if result.busy]
