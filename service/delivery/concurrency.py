"""How many requests to Kameleoon may be in flight, per sitecode: adaptive concurrency and rate limits.

:class:`Limit` is the algorithm, with no clock or event loop of its own (tests drive it with a
simulated clock): AIMD on the round-trip time and on Kameleoon's back-pressure, after Vector's
adaptive request concurrency (RFC 1858). Time is cut into windows about one round trip long. At the
end of each:

- back-pressure (429, 503, a timeout, a connection error): the limit is multiplied by
  ``decrease_ratio`` (0.9), at least 1, at once, once per window (a 429 comes back at once: waiting
  for the window's end would hand its ticket to the next request, into the same 429);
- else the window's mean RTT well above its moving average (an EWMA, weight ``ewma_alpha`` 0.4),
  by more than ``deviation_scale`` (2.5) times the EWMA of its deviation: decreased the same way;
- else, if requests waited for the limit during the window: increased, doubled while in slow start
  (from the start until the first decrease, so a distant Kameleoon is reached in a few round
  trips), by 5% (at least one) after that; never above ``maximum``.

A limit starts at INITIAL_LIMIT (100, the fixed pool this service had). The RTT test has a floor: a
rise smaller than 5% of the average never counts, so a steady latency's jitter does not shrink it.

:class:`Gate` hands out one sitecode's tickets (an attempt takes one before its request and gives
it back with its RTT and outcome), holds that sitecode's pause after a Retry-After, and spaces its
requests to a rate (a token bucket of one, KAMELEOON_RATE_LIMIT). A fixed limit (KAMELEOON_CONCURRENCY
a number) is a Limit that never moves.
"""

from __future__ import annotations

import asyncio
import collections
import math

import structlog

log = structlog.get_logger("kameleoon.delivery")

# Where an adaptive limit starts: the fixed pool this service had before (it served a nearby Kameleoon
# well); slow start takes it to a distant one's need within a few round trips, back-pressure below it.
INITIAL_LIMIT = 100
# The least deviation the RTT test allows, as a share of the average round trip: a rise of less than
# 2.5 x this never lowers the limit, so the jitter of a steady Kameleoon (and of our own event loop) does not.
RTT_FLOOR = 0.1
# After slow start the limit grows by 1 / GROWTH_SHARE of itself a window (5%, at least one): a limit of
# 400 lowered by a passing rise climbs back in a few seconds at 100 ms a round trip, not in forty.
GROWTH_SHARE = 20


class Limit:
    __slots__ = (
        "limit",
        "maximum",
        "in_flight",
        "fixed",
        "slow_start",
        "rtt",
        "deviation",
        "decrease_ratio",
        "deviation_scale",
        "ewma_alpha",
        "_window_end",
        "_sum",
        "_count",
        "_reached",
        "_pushed_back",
        "_decreased",
    )

    def __init__(
        self,
        maximum: int,
        *,
        initial: int = INITIAL_LIMIT,
        fixed: bool = False,
        decrease_ratio: float = 0.9,
        deviation_scale: float = 2.5,
        ewma_alpha: float = 0.4,
    ):
        self.maximum = maximum
        self.limit = maximum if fixed else max(1, min(initial, maximum))
        self.fixed = fixed
        self.in_flight = 0
        self.slow_start = True
        self.rtt: float | None = None  # the moving average of the windows' mean round trip, seconds
        self.deviation = 0.0  # the moving average of its absolute deviation
        self.decrease_ratio = decrease_ratio
        self.deviation_scale = deviation_scale
        self.ewma_alpha = ewma_alpha
        self._window_end: float | None = None
        self._sum = 0.0
        self._count = 0
        self._reached = False  # requests waited for the limit in this window: more would have been used
        self._pushed_back = False
        self._decreased = False  # the limit was lowered in this window already

    def started(self) -> None:
        self.in_flight += 1
        if self.in_flight >= self.limit:
            self._reached = True

    def blocked(self) -> None:
        """A request had to wait for the limit."""
        self._reached = True

    def finished(self, rtt: float | None, pushed_back: bool, now: float) -> None:
        """One request ended: ``rtt`` its round trip (None: no answer), ``pushed_back`` Kameleoon's back-pressure."""
        self.in_flight -= 1
        if self.fixed:
            return
        if pushed_back:
            self._pushed_back = True
            if not self._decreased:
                self._decrease()
        elif rtt is not None:
            self._sum += rtt
            self._count += 1
        if self._window_end is None:
            self._window_end = now + (rtt or 0.05)
        elif now >= self._window_end:
            self._adjust(now)

    def _decrease(self) -> None:
        self.limit = max(1, math.floor(self.limit * self.decrease_ratio))
        self.slow_start = False
        self._decreased = True

    def _adjust(self, now: float) -> None:
        mean = self._sum / self._count if self._count else None
        if self._pushed_back:
            pass  # lowered already, when it came
        elif mean is not None and self.rtt is not None and mean > self.rtt + self.deviation_scale * max(self.deviation, self.rtt * RTT_FLOOR):
            self._decrease()
        elif self._reached:
            self.limit = min(self.maximum, self.limit * 2 if self.slow_start else self.limit + max(1, self.limit // GROWTH_SHARE))
        if mean is not None:
            if self.rtt is None:
                self.rtt = mean
            else:
                self.deviation += self.ewma_alpha * (abs(mean - self.rtt) - self.deviation)
                self.rtt += self.ewma_alpha * (mean - self.rtt)
        self._sum, self._count, self._reached, self._pushed_back, self._decreased = 0.0, 0, self.in_flight >= self.limit, False, False
        self._window_end = now + (self.rtt if self.rtt else 0.05)


class Gate:
    """One sitecode's tickets, as many as its Limit allows, first come first served; its pause and its rate.

    A line is logged when the limit falls to half of its peak (Kameleoon pushing back) and when it has
    climbed back to twice that low, not at every change."""

    __slots__ = ("limit", "sitecode", "paused_until", "_interval", "_next_slot", "_waiters", "_peak", "_low")

    def __init__(self, limit: Limit, rate: float = 0.0, sitecode: str = ""):
        self.limit = limit
        self.sitecode = sitecode
        self._peak = limit.limit
        self._low: int | None = None  # the lowest limit since it halved; None: not halved
        self.paused_until = 0.0  # a loop.time(): Kameleoon's Retry-After for this sitecode
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next_slot = 0.0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    def take_now(self) -> bool:
        """Take a ticket when one is free, nobody waits and no rate applies: no await needed."""
        limit = self.limit
        if limit.in_flight < limit.limit and not self._waiters and not self._interval:
            limit.started()
            return True
        return False

    async def wait(self) -> None:
        """Wait for a ticket (when take_now() said no), then for the rate's next slot."""
        loop = asyncio.get_running_loop()
        limit = self.limit
        if limit.in_flight < limit.limit and not self._waiters:
            limit.started()
        else:
            limit.blocked()
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_or_free()  # handed a ticket as the wait was cancelled: pass it on
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        if self._interval:
            now = loop.time()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            if slot > now:
                try:
                    await asyncio.sleep(slot - now)
                except asyncio.CancelledError:
                    self._wake_or_free()
                    raise

    def give(self, rtt: float | None, pushed_back: bool, now: float) -> None:
        """A request ended: its ticket back, its round trip and outcome into the limit; waiters woken as the limit allows."""
        limit = self.limit
        before = limit.limit
        limit.finished(rtt, pushed_back, now)
        if limit.limit != before:
            self._changed()
        waiters = self._waiters
        while waiters and limit.in_flight < limit.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                limit.started()  # the ticket goes straight to the first waiter
                waiter.set_result(None)

    def _changed(self) -> None:
        value = self.limit.limit
        if self._low is None:
            if value > self._peak:
                self._peak = value
            elif value <= self._peak // 2:
                self._low = value
                log.warning(
                    "kameleoon pushes back: concurrency limit halved", sitecode=self.sitecode, limit=value, peak=self._peak, rtt_ms=self._rtt_ms()
                )
        elif value < self._low:
            self._low = value
        elif value >= 2 * self._low:
            log.info("concurrency limit recovered", sitecode=self.sitecode, limit=value, low=self._low, rtt_ms=self._rtt_ms())
            self._low, self._peak = None, value

    def _rtt_ms(self) -> float | None:
        return None if self.limit.rtt is None else round(self.limit.rtt * 1000, 1)

    def _wake_or_free(self) -> None:
        """A ticket taken but not used (its waiter was cancelled): back, with no sample."""
        self.limit.in_flight -= 1
        waiters = self._waiters
        while waiters and self.limit.in_flight < self.limit.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                self.limit.started()
                waiter.set_result(None)

    def pause(self, until: float) -> None:
        """Kameleoon's Retry-After: no request of this sitecode starts before ``until`` (a loop.time())."""
        if until > self.paused_until:
            self.paused_until = until
