"""The idempotency window kept in the outbox, shared by every process (and replica) using it: the
:class:`~service.delivery.idempotency.SharedWindow` synchronous delivery reserves keys in, on top of
the store's ``reserve``, ``remember`` and ``unreserve`` (service.outbox.base explains the states)."""

from __future__ import annotations

import asyncio
import time

from service.delivery.client import DEADLINE_RESERVE_S
from service.delivery.idempotency import UNRESERVED, log_wait, polls
from service.errors import DeadlineExceeded, OutboxUnavailable
from service.outbox.base import DELIVERED, TAKEN

# Added to a reservation beyond the end of its delivery (a pool slot waited for, the store's answers, clocks).
RESERVE_MARGIN_S = 5.0


class OutboxStore:
    """The window kept in the outbox, shared by every process (and replica) using it.

    A synchronous delivery reserves its key (:meth:`reserve`) before posting and
    settles it after (:meth:`settle`). The reservation lasts until the delivery
    will have finished at the latest: the caller's deadline, or ``longest_s``
    (service.delivery.client.longest_post_s) when that is sooner or there is none,
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
                    raise DeadlineExceeded("the call's deadline passed while another delivery of this messageId was in flight; nothing was sent")
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
