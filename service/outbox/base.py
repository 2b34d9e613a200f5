"""The outbox interface: where queued events wait until Kameleoon has them, or an operator sees why not.

One interface, :class:`Outbox`, and one module per store (``sqlite.py``; a
PostgreSQL store is one more module). Everything the rest of the service needs
from a store goes through these methods, so the deliverer, the servicer and the
operator commands never see SQL, a connection or a driver type.

Conventions every store keeps:

- Every method is ``async``; a store never blocks the event loop.
- Times are epoch seconds (``float``, as ``time.time()``), always passed in by
  the caller (``now=``): a store never reads the clock, so tests can move time.
- Ids are strings (the store chooses what they look like); paging cursors are
  opaque strings too.
- An event's life: ``enqueue`` makes it *pending* and due at once; ``claim``
  leases due events to one deliverer for ``lease_s`` (*in flight*); the lease
  holder ends it with ``mark_delivered`` (gone), ``mark_retry`` (pending again,
  due at a later time), ``mark_dead`` (a *dead letter*) or ``release`` (pending,
  due now, the attempt not counted). A lease that runs out (its holder died)
  makes the event claimable again. A mark whose lease is no longer the
  event's (it ran out and someone else claimed the event) changes nothing.
- Events whose retry window ended (``expires_at``) are never claimed;
  ``expire`` turns them into dead letters.
- The idempotency window lives in the store too, one row per key, so every
  process sharing the store agrees. A key is in one of two states:

  *taken* at ``at``: delivered (a synchronous call got Kameleoon's 2xx:
  ``remember``) or enqueued (``enqueue`` stored its event). Within the window
  it makes every later call a duplicate.

  *reserved* until ``until`` with a token: a synchronous delivery is posting
  it right now (``reserve``). A reservation is never a delivery: ``seen``
  ignores it and it never makes anyone answer duplicate. It ends with
  ``remember`` (the post succeeded: taken at that time, whoever held the
  reservation), ``unreserve`` (it failed: the row goes, but only while it is
  still that token's, so a holder that overran its expiry never frees someone
  else's reservation), or by running out: ``until`` is when its holder would
  have finished at the latest (its deadline, or attempts x timeout plus the
  backoffs, plus a margin), so past it the holder is presumed dead and the key
  can be reserved or enqueued again.

  ``reserve`` is atomic (one writer at a time, or PostgreSQL's ON CONFLICT):
  of two processes reserving the same free key, exactly one gets it; the other
  is told ``busy`` and the holder's ``until``, and polls ``reserve`` again until
  the key is taken (a duplicate), or free again (it takes it and posts), or its
  own deadline comes. A second caller therefore never sends while the first
  may still succeed, and never answers duplicate unless a delivery (or an
  enqueue) was recorded.

  The queued rule: ``enqueue`` treats a key taken within the window as a
  duplicate (not stored), an expired reservation or a key taken before the
  window as free (it takes the key for the event it stores), and a *live*
  reservation as neither: the event is not stored, its key is not taken, and
  its :class:`Accepted` says ``busy_until``. The caller waits as a second
  synchronous caller does and enqueues again: the event is then a duplicate if
  the synchronous delivery succeeded, or stored if it failed, expired or its
  process died. So a caller that retries in queued mode on another process
  while a synchronous post of the same messageId is in flight never loses the
  event (a failed post does not leave it answered ``duplicate``) and never
  gets it delivered twice (a successful post does not leave a queued copy).
  The other way round, a synchronous call finding a key taken by ``enqueue``
  is a duplicate, as before: the queued event will be delivered.
- Failures: :class:`~service.errors.OutboxFull` when ``max_pending`` would be
  passed (nothing stored), :class:`~service.errors.OutboxUnavailable` when the
  store cannot read or write (disk full, read-only, gone); never a silent
  success. ``open`` raises :class:`~service.errors.OutboxOpenError` naming the
  store when it cannot be used at all.

A store holds no secret in clear: ``credentials`` is ``"server"`` or an apiKey
sealed by :mod:`service.outbox.sealing`, opaque to the store.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.errors import InvalidArgument


@dataclass(frozen=True)
class NewEvent:
    """A rendered request to store: exactly what will be POSTed, on every attempt."""

    action: str  # Kameleoon action: logEvent, identify, page, group
    route: str  # the action (typed RPCs) or the subscription's name (raw events)
    sitecode: str
    message_id: str  # "" when the event has none
    body: bytes  # the JSON body, byte for byte
    credentials: str  # "server" or a sealed apiKey; never an apiKey in clear
    dedupe_key: str | None = None  # idempotency key; None: never a duplicate


@dataclass(frozen=True)
class Accepted:
    """What ``enqueue`` did with one event: stored under ``id``, a duplicate, or busy (``id`` None for both).

    ``busy_until`` set: a synchronous delivery of the same key is in flight
    (reserved until then); nothing was stored, no key taken: enqueue it again
    later (see the queued rule in the module docstring).
    """

    id: str | None
    duplicate: bool = False
    busy_until: float | None = None

    @property
    def busy(self) -> bool:
        return self.busy_until is not None


TAKEN, DELIVERED, BUSY = "taken", "delivered", "busy"


@dataclass(frozen=True)
class Reservation:
    """What ``reserve`` found for one key.

    ``TAKEN``: the caller holds it and may post; ``token`` proves it to ``unreserve``.
    ``DELIVERED``: taken (delivered or enqueued) within the window: a duplicate.
    ``BUSY``: another delivery holds it until ``until`` (``until`` equals the
    ``now`` of the call when the store saw the key change under it: look again soon).
    """

    state: str
    token: str = ""
    until: float = 0.0


@dataclass(frozen=True)
class Claimed:
    """A due event leased to one deliverer until its lease runs out."""

    id: str
    lease: str  # proves the claim in the marks that follow
    action: str
    route: str
    sitecode: str
    message_id: str
    body: bytes
    credentials: str
    attempts: int  # this attempt included
    accepted_at: float
    expires_at: float  # end of the retry window


@dataclass(frozen=True)
class Retry:
    """Try ``id`` again at ``at``; the last attempt's answer is kept for operators."""

    id: str
    lease: str
    at: float
    http_status: int  # 0: no answer (connection error, timeout)
    error: str


@dataclass(frozen=True)
class Dead:
    """Give up on ``id``: it becomes a dead letter with the last answer."""

    id: str
    lease: str
    http_status: int
    error: str


@dataclass(frozen=True)
class DeadLetter:
    id: str
    action: str
    route: str
    sitecode: str
    message_id: str
    attempts: int
    accepted_at: float
    first_attempt_at: float | None  # None when never attempted (the window ended first)
    last_attempt_at: float | None
    dead_at: float
    last_http_status: int
    last_error: str


PENDING, IN_FLIGHT, DEAD = "pending", "in_flight", "dead"  # a Found row's state (a delivered one: DELIVERED)


@dataclass(frozen=True)
class Found:
    """One row of the outbox holding a messageId (OutboxAdmin.GetEvent)."""

    state: str  # PENDING, IN_FLIGHT or DEAD
    id: str
    action: str
    route: str
    sitecode: str
    credentials: str  # the reference: names a workspace's instance
    attempts: int
    at: float  # pending: when due; in flight: when its lease runs out; dead: when it died
    last_status: int
    last_error: str


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters an operator means; every field left at its default matches all."""

    ids: tuple[str, ...] = ()
    action: str | None = None
    http_status: int | None = None
    since: float | None = None  # dead_at >= since
    until: float | None = None  # dead_at < until

    def is_empty(self) -> bool:
        return not self.ids and self.action is None and self.http_status is None and self.since is None and self.until is None


@dataclass
class ActionStats:
    pending: int = 0
    in_flight: int = 0
    dead: int = 0


@dataclass
class Stats:
    pending: int = 0  # waiting (due now or later), not leased
    in_flight: int = 0  # leased to a deliverer right now
    dead: int = 0  # dead letters kept
    oldest_pending_age_s: float = 0.0  # age of the oldest event not yet delivered (pending or in flight); 0 when none
    by_action: dict[str, ActionStats] = field(default_factory=dict)


@dataclass(frozen=True)
class Disk:
    """The outbox's filesystem: bytes free for us, and the headroom below which new events are refused."""

    free_bytes: int
    headroom_bytes: int


class Outbox(abc.ABC):
    """A durable store of rendered requests; see the module docstring for the rules every store keeps."""

    #: Where the store is, fit for logs and errors (never a password).
    location: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if needed; OutboxOpenError naming the store when it cannot be used."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and disconnect."""

    def disk(self) -> Disk | None:
        """The free space of the store's filesystem and the headroom kept on it; None where the store
        cannot see its disk (a database server's)."""
        return None

    def verify(self) -> str | None:
        """A problem that makes the store unusable until a restart (its file deleted or replaced under it),
        in words an operator can act on; None when there is none. Cheap: called every few seconds."""
        return None

    # -- accepting ------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(
        self, events: Sequence[NewEvent], *, now: float, window_s: float, idempotency_window_s: float, max_pending: int
    ) -> list[Accepted]:
        """Store ``events`` in one transaction, committed durably before returning; one Accepted each, in order.

        Each is due at ``now`` and expires at ``now + window_s``. An event whose
        ``dedupe_key`` was taken within ``idempotency_window_s`` (by an earlier
        event or ``remember``, or earlier in ``events``) is not stored:
        ``Accepted(None, duplicate=True)``. An event whose key a live reservation
        holds is not stored either: ``Accepted(None, busy_until=...)`` (so are
        its repeats in ``events``). OutboxFull when the events not yet
        delivered would then number more than ``max_pending`` (0: no limit):
        nothing is stored, no key taken.
        """

    # -- delivering -----------------------------------------------------------

    @abc.abstractmethod
    async def claim(self, limit: int, *, now: float, lease_s: float) -> list[Claimed]:
        """Lease up to ``limit`` due, unexpired events (earliest due first) until ``now + lease_s``; attempts + 1."""

    @abc.abstractmethod
    async def next_due(self) -> float | None:
        """When the earliest event (pending, or whose lease runs out) becomes claimable; None when there is none."""

    @abc.abstractmethod
    async def mark_delivered(self, claims: Sequence[Claimed], *, now: float, keys: Sequence[str] = ()) -> int:
        """Kameleoon took these: they leave the outbox, and ``keys`` (their idempotency keys) say they were
        delivered at ``now``. Returns how many were still held by these leases."""

    @abc.abstractmethod
    async def mark_retry(self, retries: Sequence[Retry], *, now: float) -> int:
        """Pending again, due at each ``at``, with the last answer kept. Returns how many were still held."""

    @abc.abstractmethod
    async def mark_dead(self, dead: Sequence[Dead], *, now: float) -> int:
        """These become dead letters (dead_at ``now``). Returns how many were still held."""

    @abc.abstractmethod
    async def release(self, claims: Sequence[Claimed], *, now: float) -> int:
        """Not attempted after all (shutdown): pending and due at once, the attempt not counted."""

    @abc.abstractmethod
    async def expire(self, *, now: float, limit: int) -> list[DeadLetter]:
        """Turn up to ``limit`` events whose window ended (and that no live lease holds) into dead letters."""

    # -- operators ------------------------------------------------------------

    @abc.abstractmethod
    async def stats(self, *, now: float) -> Stats:
        """Counts by state and by action; ``now`` decides which leases are live."""

    @abc.abstractmethod
    async def dead_letter_bodies(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The bodies (the request to Kameleoon, no credentials) of these dead letters, by id."""

    @abc.abstractmethod
    async def list_dead_letters(self, where: DeadLetterFilter, *, limit: int, cursor: str | None = None) -> tuple[list[DeadLetter], str | None]:
        """One page of dead letters (oldest id first) and the cursor of the next page (None: last page)."""

    @abc.abstractmethod
    async def retry_dead_letters(self, where: DeadLetterFilter, *, now: float, window_s: float) -> int:
        """Back to pending, due at ``now`` with a fresh window (expires ``now + window_s``); how many."""

    @abc.abstractmethod
    async def purge_dead_letters(self, where: DeadLetterFilter) -> int:
        """Delete dead letters for good; how many."""

    @abc.abstractmethod
    async def housekeep(self, *, now: float, dead_letter_retention_s: float, idempotency_window_s: float) -> tuple[int, int]:
        """Forget dead letters older than the retention and idempotency keys older than the window; (letters, keys)."""

    # -- one event's fate (OutboxAdmin.GetEvent) -----------------------------------

    @abc.abstractmethod
    async def find_event(self, message_id: str, *, now: float) -> list[Found]:
        """Every row of the outbox holding ``message_id``: pending, in flight or dead (a scan: for operators)."""

    @abc.abstractmethod
    async def delivered_at(self, keys: Sequence[str]) -> dict[str, float]:
        """Of these idempotency keys, those delivered within the window (queued or synchronous), and when."""

    # -- the delivery overview (service.ops.overview): rollups and samples ------

    @abc.abstractmethod
    async def add_overview(
        self, minute: int, rows: Sequence[tuple], samples: Sequence[tuple], *, first_minute: int, samples_since: float, samples_kept: int
    ) -> None:
        """In one write: add ``rows`` (source, destination, stage, reason, count) to ``minute``'s rollup, add
        ``samples`` (service.ops.overview.Sample's fields, in order); forget rollups of minutes before
        ``first_minute``, samples taken before ``samples_since``, and all but the latest ``samples_kept`` of each
        (source, destination, reason)."""

    @abc.abstractmethod
    async def overview(self, since: float, until: float) -> list[tuple]:
        """(source, destination, stage, reason, count) summed over the minutes starting in [since, until)."""

    @abc.abstractmethod
    async def samples(self, reason: str, source: str = "", destination: str = "") -> list[tuple]:
        """The samples kept of ``reason`` (of one source and instance when given), newest first, as tuples."""

    # -- the idempotency window of synchronous deliveries ---------------------

    @abc.abstractmethod
    async def reserve(self, key: str, *, now: float, window_s: float, until: float) -> Reservation:
        """Reserve ``key`` until ``until`` for a synchronous delivery about to post, atomically.

        ``TAKEN`` (with a fresh token) when the key is free: absent, taken before
        the window, or reserved by someone whose reservation ran out (``until <=
        now``); ``DELIVERED`` when taken within the window; ``BUSY`` with the
        holder's expiry while another reservation is live.
        """

    @abc.abstractmethod
    async def unreserve(self, key: str, token: str, *, now: float) -> bool:
        """The delivery holding ``token`` failed: free ``key`` if that reservation still holds it; whether it did."""

    @abc.abstractmethod
    async def seen(self, key: str, *, now: float, window_s: float) -> bool:
        """Whether ``key`` was taken (enqueued or remembered) within the window; a reservation is not."""

    @abc.abstractmethod
    async def remember(self, key: str, *, now: float) -> None:
        """Take ``key`` at ``now``: a synchronous delivery succeeded (its reservation, if any, ends here)."""


def page_after(cursor: str) -> int:
    """The dead letter id a paging cursor stands for (both stores page by their integer ids). A cursor
    no page gave is the caller's mistake, refused naming the request's page_token: read as "from the
    start" or "past the end" it would list the wrong letters without a word."""
    if cursor.isascii() and cursor.isdigit() and int(cursor) < 2**63:
        return int(cursor)
    raise InvalidArgument("page_token is not one a page of dead letters gave: pass next_page_token as it came", field="page_token")


__all__ = [
    "Accepted",
    "ActionStats",
    "Claimed",
    "Dead",
    "DeadLetter",
    "DeadLetterFilter",
    "BUSY",
    "DELIVERED",
    "NewEvent",
    "Outbox",
    "Reservation",
    "Retry",
    "Stats",
    "TAKEN",
    "page_after",
]
