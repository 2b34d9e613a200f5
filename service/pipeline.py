"""From a payload or a raw event to what Kameleoon received.

Typed requests arrive as payloads; raw Segment events are parsed, matched
against the subscriptions and mapped into payloads. Both then go the same
way: Segment's validation, Segment's ``perform`` body, one HTTP delivery.
Raw events are validated for every matching subscription before anything is
sent, so a rejected event sends nothing. Destination filters come first, on
both: an event they drop answers OK with ``filtered_by`` and sends nothing.
Each event reads the filters and subscriptions in force once, when it
starts, so a reload never changes an event half way.

Queued delivery takes the same way up to the body, then commits the rendered
request to the outbox instead of posting it (``queue_payload``,
``queue_events``); the deliverer (service.outbox.deliverer) posts it later.

Once per messageId: within a process, a delivery waits for one of the same
key in flight; with an outbox, the key is also reserved there while posting
(service.idempotency.OutboxStore), and a queued event meeting such a
reservation is enqueued again once it ends (``_commit_when_free``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import structlog

from service import jsonwire
from service.actions import Action
from service.credentials import Credentials
from service.delivery import Delivered, KameleoonClient
from service.errors import CallError, InvalidArgument, MappingError, MissingSetting, OutboxUnavailable, Overloaded
from service.filters import NO_FILTERS, FilterSet, Verdict
from service.idempotency import POLL_MAX_S, DeliveredStore, NoStore, OutboxStore, log_wait, polls
from service.metrics import NoMetrics
from service.outbox.base import Accepted, NewEvent, Outbox
from service.outbox.sealing import Sealer
from service.planner import type_dispatch
from service.subscriptions import Subscription

MAX_EVENT_DEPTH = 64
log = structlog.get_logger("kameleoon.filters")


@dataclass
class Outcome:
    """What delivering one raw event did: one entry per matching subscription."""

    message_id: str
    results: list[tuple[Subscription, Delivered]] = field(default_factory=list)
    filtered_by: str = ""  # the destination filter that dropped the event: nothing sent


@dataclass(frozen=True)
class Queued:
    """A queued event: committed to the outbox under ``outbox_id`` (or a duplicate, not stored again)."""

    outbox_id: str
    duplicate: bool = False
    http_status: int = 0  # nothing was sent during the call
    attempts: int = 0
    filtered_by: str = ""

    @property
    def queued(self) -> bool:
        return not self.duplicate


@dataclass(frozen=True)
class QueueSettings:
    """What queued acceptance needs besides the store (from KAMELEOON_* settings)."""

    window_s: float = 14400.0
    idempotency_window_s: float = 86400.0
    max_pending: int = 0


class Planned(NamedTuple):
    subscription: Subscription
    body: bytes


def _depth_exceeds(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def parse_event(event_json: str) -> dict:
    """One Segment event from JSON text, or InvalidArgument naming event_json."""
    if not event_json.strip():
        raise InvalidArgument("event_json is empty: send one Segment event as a JSON object", field="event_json")
    try:
        event = jsonwire.loads(event_json)
    except RecursionError:
        raise InvalidArgument(f"event_json nests deeper than {MAX_EVENT_DEPTH} levels", field="event_json") from None
    except ValueError as exc:
        raise InvalidArgument(f"event_json is not valid JSON: {exc}", field="event_json") from None
    if not isinstance(event, dict):
        raise InvalidArgument(f"event_json must be a JSON object, got {type(event).__name__}", field="event_json")
    # N brackets nest at most N + 1 levels (values inside the innermost count too): walk only then.
    if event_json.count("{") + event_json.count("[") >= MAX_EVENT_DEPTH and _depth_exceeds(event, MAX_EVENT_DEPTH):
        raise InvalidArgument(f"event_json nests deeper than {MAX_EVENT_DEPTH} levels", field="event_json")
    return event


def _key(credentials: Credentials, route: str, message_id) -> str | None:
    """The idempotency key of one delivery; None when there is no messageId to go by."""
    if not message_id or not isinstance(message_id, str):
        return None
    return f"{credentials.sitecode}\x1f{route}\x1f{message_id}"


def message_id_of(event: dict) -> str:
    value = event.get("messageId")
    return value if isinstance(value, str) else "" if value is None else jsonwire.js_string(value)


DUPLICATE = Delivered(http_status=0, attempts=0, duplicate=True)


class Pipeline:
    def __init__(
        self,
        client: KameleoonClient,
        subscriptions: tuple[Subscription, ...],
        store: DeliveredStore | OutboxStore | None = None,
        max_in_flight: int = 2000,
        metrics=None,
        filters: FilterSet = NO_FILTERS,
        outbox: Outbox | None = None,
        sealer: Sealer | None = None,
        queue_settings: QueueSettings = QueueSettings(),
    ):
        self.client = client
        self.outbox = outbox
        self.sealer = sealer or Sealer(None, None)
        self.queue_settings = queue_settings
        self.on_enqueued: Callable[[], None] = lambda: None  # the deliverer's wake-up
        self.subscriptions = subscriptions
        self.filters = filters
        self._dispatch = (subscriptions, type_dispatch(subscriptions))  # (subscriptions, by type or None)
        self.store = store if store is not None else NoStore()
        # The window in the outbox, shared with other processes: keys are reserved there while posting.
        self._shared = store if isinstance(store, OutboxStore) else None
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.metrics = metrics or NoMetrics()
        # messageIds being delivered now -> None, or a future once another delivery of the same id waits.
        self._pending: dict[str, asyncio.Future | None] = {}
        self._warned: set[tuple] = set()  # (filter, reason) already logged

    def reconfigure(self, subscriptions: tuple[Subscription, ...] | None = None, filters: FilterSet | None = None) -> None:
        """Put new subscriptions and/or filters in force; events already started keep the ones they read."""
        if subscriptions is not None:
            self.subscriptions = subscriptions
        if filters is not None:
            self.filters = filters

    def _filtered(self, verdict: Verdict) -> None:
        for title, outcome in verdict.outcomes:
            self.metrics.filtered_event(title, outcome)
        if verdict.error is not None and (verdict.stopped_by, verdict.error) not in self._warned:
            if len(self._warned) < 1000:  # once per filter and reason: the metric counts every event
                self._warned.add((verdict.stopped_by, verdict.error))
            log.warning("filter condition cannot be evaluated: events dropped", filter=verdict.stopped_by, error=verdict.error)

    def _filter_payload(self, action: Action, payload: dict) -> tuple[dict | None, str]:
        """The payload the filters let through (None: dropped) and the filter that dropped it."""
        filters = self.filters
        if not filters.steps:  # empty when no filter is configured: nothing to do (no call, a tuple test)
            return payload, ""
        verdict = filters.apply_payload(action, payload)
        self._filtered(verdict)
        return verdict.event, verdict.stopped_by or ""

    def _filter_event(self, event: dict, outcome: Outcome, filters: FilterSet) -> dict | None:
        """The raw event the filters let through; None (and ``outcome.filtered_by`` set) when dropped."""
        if not filters.steps:
            return event
        verdict = filters.apply(event)
        self._filtered(verdict)
        if verdict.event is None:
            outcome.filtered_by = verdict.stopped_by or ""
        return verdict.event

    async def deliver_payload(
        self, action: Action, payload: dict, credentials: Credentials, deadline: float | None
    ) -> Delivered:
        """A typed request's payload: filter, validate, build Segment's body, post it (once per messageId)."""
        payload, filtered_by = self._filter_payload(action, payload)
        if payload is None:
            return Delivered(http_status=0, attempts=0, filtered_by=filtered_by)
        valid = action.validate(payload)
        body = jsonwire.dumps(action.body(valid))
        key = _key(credentials, action.slug, valid.get("messageId"))
        return await self._deliver_once(key, body, credentials, deadline, action.slug)

    async def _deliver_once(
        self, key: str | None, body: bytes, credentials: Credentials, deadline: float | None, action: str
    ) -> Delivered:
        """Post ``body`` unless ``key`` was delivered already (or is being delivered right now)."""
        if key is not None:
            pending = self._pending
            while key in pending:  # the same messageId is being delivered: wait for that one to end
                waiter = pending[key]
                if waiter is None:
                    waiter = pending[key] = asyncio.get_running_loop().create_future()
                await asyncio.shield(waiter)
            if self._shared is not None:
                return await self._deliver_reserved(key, body, credentials, deadline, action)
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

    async def _deliver_reserved(self, key: str, body: bytes, credentials: Credentials, deadline: float | None, action: str) -> Delivered:
        """``_deliver_once`` on the outbox's window: the key is reserved there while the post is in flight, so a
        delivery of the same messageId in another process waits for this one (service.idempotency.OutboxStore)."""
        shared = self._shared
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

    def plan(self, event: dict, subscriptions: tuple[Subscription, ...] | None = None) -> list[Planned]:
        """The body each matching subscription would send; InvalidArgument if any of them is rejected."""
        planned = []
        subscriptions = self.subscriptions if subscriptions is None else subscriptions
        if self._dispatch[0] is not subscriptions:  # a reload: the new subscriptions' table, made once
            self._dispatch = (subscriptions, type_dispatch(subscriptions))
        by_type = self._dispatch[1]
        if by_type is not None:  # every trigger is type = "...": the candidates are those of the event's type
            kind = event.get("type")
            candidates, check = (by_type.get(kind, ()) if type(kind) is str else ()), False
        else:
            candidates, check = subscriptions, True
        for subscription in candidates:
            try:
                if check and not subscription.matches(event):
                    continue
            except MappingError as exc:
                raise InvalidArgument(f"subscription {subscription.name!r}: its trigger cannot be evaluated on this event: {exc}") from None
            try:
                body = subscription.body(event)
            except InvalidArgument as exc:
                raise InvalidArgument(f"subscription {subscription.name!r} ({subscription.action.slug}): {exc}", field=exc.field) from None
            except MappingError as exc:
                raise InvalidArgument(f"subscription {subscription.name!r}: mapping failed: {exc}") from None
            planned.append(Planned(subscription, jsonwire.dumps(body)))
        return planned

    async def send_event(self, event: dict, credentials: Credentials, deadline: float | None) -> Outcome:
        """Deliver a raw event to every matching subscription, concurrently; the first failure is raised."""
        outcome = Outcome(message_id_of(event))
        filters, subscriptions = self.filters, self.subscriptions  # this event's configuration, whatever a reload does
        event = self._filter_event(event, outcome, filters)
        if event is None:
            return outcome
        planned = self.plan(event, subscriptions)
        if len(planned) == 1:  # the usual case, awaited directly: no task to spawn
            subscription, body = planned[0]
            key = _key(credentials, subscription.name, outcome.message_id)
            done = await self._deliver_once(key, body, credentials, deadline, subscription.action.slug)
            outcome.results.append((subscription, done))
            return outcome
        if not planned:
            return outcome
        deliveries = [
            self._deliver_once(
                _key(credentials, item.subscription.name, outcome.message_id),
                item.body,
                credentials,
                deadline,
                item.subscription.action.slug,
            )
            for item in planned
        ]
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        for item, result in zip(planned, results):
            if isinstance(result, BaseException):
                raise result
            outcome.results.append((item.subscription, result))
        return outcome

    # -- queued delivery ----------------------------------------------------------

    async def queue_payload(self, action: Action, payload: dict, credentials: Credentials) -> Queued | Delivered:
        """A typed request's payload: filter, validate, build the body, commit it to the outbox."""
        payload, filtered_by = self._filter_payload(action, payload)
        if payload is None:
            return Delivered(http_status=0, attempts=0, filtered_by=filtered_by)
        valid = action.validate(payload)
        body = jsonwire.dumps(action.body(valid))
        message_id = valid.get("messageId") or ""
        event = self._new_event(action.slug, action.slug, message_id, body, credentials, self.sealer.reference(credentials))
        [queued] = await self._enqueue([event])
        if isinstance(queued, CallError):
            raise queued
        return queued

    async def queue_events(self, items: list[tuple[dict, Credentials]]) -> list[Outcome | CallError]:
        """Raw events, each through the filters and subscriptions; every body of every event committed in one transaction.

        One entry per item, in order: its Outcome (results hold Queued), or the CallError refusing it.
        """
        filters, subscriptions = self.filters, self.subscriptions  # one configuration for the whole call
        results: list[Outcome | CallError] = []
        events: list[NewEvent] = []
        owners: list[tuple[Outcome, Subscription]] = []
        for event, credentials in items:
            outcome = Outcome(message_id_of(event))
            try:
                event = self._filter_event(event, outcome, filters)
                planned = self.plan(event, subscriptions) if event is not None else []
                reference = self.sealer.reference(credentials) if planned else ""
            except CallError as exc:
                results.append(exc)
                continue
            results.append(outcome)
            for item in planned:
                sub = item.subscription
                events.append(self._new_event(sub.action.slug, sub.name, outcome.message_id, item.body, credentials, reference))
                owners.append((outcome, sub))
        if not events:
            return results
        try:
            accepted = await self._enqueue(events)
        except CallError as exc:
            failed = {id(outcome) for outcome, _ in owners}
            return [exc if id(result) in failed else result for result in results]
        refused: dict[int, CallError] = {}
        for (outcome, sub), queued in zip(owners, accepted):
            if isinstance(queued, CallError):
                refused[id(outcome)] = queued
            else:
                outcome.results.append((sub, queued))
        if refused:
            return [refused.get(id(result), result) for result in results]
        return results

    def _new_event(self, action: str, route: str, message_id: str, body: bytes, credentials: Credentials, reference: str) -> NewEvent:
        key = _key(credentials, route, message_id) if self.queue_settings.idempotency_window_s else None
        return NewEvent(action, route, credentials.sitecode, message_id, body, reference, key)

    async def _enqueue(self, events: list[NewEvent]) -> list[Queued | CallError]:
        """Commit ``events``: each Queued (stored, or a duplicate not stored again), or OutboxUnavailable for
        one a synchronous delivery in another process kept busy too long. Raises the CallError refusing them all."""
        if self.outbox is None:
            raise MissingSetting(
                "queued delivery needs an outbox: set KAMELEOON_OUTBOX (or KAMELEOON_DELIVERY=queued for the default location)"
            )
        accepted = await self._commit(events)
        results: list[Queued | CallError] = [Queued(result.id or "", result.duplicate) for result in accepted]
        busy = [index for index, result in enumerate(accepted) if result.busy]
        if busy:
            await self._commit_when_free(events, results, busy, max(accepted[index].busy_until for index in busy))
        return results

    async def _commit(self, events: list[NewEvent]) -> list[Accepted]:
        """One enqueue, counted in the metrics (a busy event is neither enqueued nor a duplicate)."""
        settings = self.queue_settings
        accepted = await self.outbox.enqueue(
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
