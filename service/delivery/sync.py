"""Synchronous delivery: one rendered body posted during the call, once per messageId.

Within a process, a delivery of a key waits for one of the same key in flight,
then answers duplicate if that one was remembered (service.delivery.idempotency).
With a shared window (the outbox's, service.outbox.window), the key is also
reserved there while posting, so a delivery of the same messageId in another
process waits for this one. At most ``max_in_flight`` posts at once; past it,
Overloaded (RESOURCE_EXHAUSTED) and nothing is sent.
"""

from __future__ import annotations

import asyncio

from service.delivery.client import Delivered, KameleoonClient
from service.delivery.credentials import Credentials
from service.delivery.idempotency import DeliveredStore, NoStore, SharedWindow
from service.errors import Overloaded
from service.ops.metrics import NoMetrics

DUPLICATE = Delivered(http_status=0, attempts=0, duplicate=True)


class SyncDelivery:
    def __init__(self, client: KameleoonClient, store: DeliveredStore | SharedWindow | None = None, max_in_flight: int = 2000, metrics=None):
        self.client = client
        # The window shared with other processes: keys are reserved there while posting. Else one of this process.
        self._shared: SharedWindow | None = None
        self.store: DeliveredStore = NoStore()
        if isinstance(store, SharedWindow):
            self._shared = store
        elif store is not None:
            self.store = store
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.metrics = metrics or NoMetrics()
        # messageIds being delivered now -> None, or a future once another delivery of the same id waits.
        self._pending: dict[str, asyncio.Future | None] = {}

    async def deliver(self, key: str | None, body: bytes, credentials: Credentials, deadline: float | None, action: str) -> Delivered:
        """Post ``body`` unless ``key`` was delivered already (or is being delivered right now)."""
        if key is not None:
            pending = self._pending
            while key in pending:  # the same messageId is being delivered: wait for that one to end
                waiter = pending[key]
                if waiter is None:
                    waiter = pending[key] = asyncio.get_running_loop().create_future()
                await asyncio.shield(waiter)
            if self._shared is not None:
                return await self._deliver_reserved(self._shared, key, body, credentials, deadline, action)
            if await self.store.seen(key):
                self.metrics.duplicate(action)
                return DUPLICATE
            pending[key] = None
        if self.in_flight >= self.max_in_flight:
            self._release(key)
            raise self._overloaded()
        self.in_flight += 1
        try:
            delivered = await self.client.post(body, credentials, deadline, action)
            if key is not None:
                await self.store.remember(key)
            return delivered
        finally:
            self.in_flight -= 1
            self._release(key)

    async def _deliver_reserved(
        self, shared: SharedWindow, key: str, body: bytes, credentials: Credentials, deadline: float | None, action: str
    ) -> Delivered:
        """``deliver`` on the shared window: the key is reserved there while the post is in flight, so a
        delivery of the same messageId in another process waits for this one."""
        self._pending[key] = None
        try:
            token = await shared.reserve(key, deadline)  # DeadlineExceeded: nothing posted
            if token is None:
                self.metrics.duplicate(action)
                return DUPLICATE
            if self.in_flight >= self.max_in_flight:
                await shared.settle(key, token, delivered=False)
                raise self._overloaded()
            self.in_flight += 1
            delivered = False
            try:
                done = await self.client.post(body, credentials, deadline, action)
                delivered = True
                return done
            finally:
                self.in_flight -= 1
                # Settled even when the call is cancelled: a live process never leaves its reservation behind.
                await asyncio.shield(shared.settle(key, token, delivered))
        finally:
            self._release(key)

    def _overloaded(self) -> Overloaded:
        return Overloaded(f"{self.in_flight} events are being delivered already (KAMELEOON_MAX_IN_FLIGHT): retry later")

    def _release(self, key: str | None) -> None:
        if key is not None:
            waiter = self._pending.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
