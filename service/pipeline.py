"""From a payload or a raw event to what Kameleoon received.

Typed requests arrive as payloads; raw Segment events are parsed, matched
against the subscriptions and mapped into payloads. Both then go the same
way: Segment's validation, Segment's ``perform`` body, one HTTP delivery.
Raw events are validated for every matching subscription before anything is
sent, so a rejected event sends nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from service import jsonwire
from service.actions import Action
from service.credentials import Credentials
from service.delivery import Delivered, KameleoonClient
from service.errors import InvalidArgument, MappingError, Overloaded
from service.idempotency import DeliveredStore, NoStore
from service.metrics import NoMetrics
from service.planner import type_dispatch
from service.subscriptions import Subscription

MAX_EVENT_DEPTH = 64


@dataclass
class Outcome:
    """What delivering one raw event did: one entry per matching subscription."""

    message_id: str
    results: list[tuple[Subscription, Delivered]] = field(default_factory=list)


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
    if event_json.count("{") + event_json.count("[") > MAX_EVENT_DEPTH and _depth_exceeds(event, MAX_EVENT_DEPTH):
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
        store: DeliveredStore | None = None,
        max_in_flight: int = 2000,
        metrics=None,
    ):
        self.client = client
        self.subscriptions = subscriptions
        self._by_type = type_dispatch(subscriptions)
        self.store = store if store is not None else NoStore()
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.metrics = metrics or NoMetrics()
        # messageIds being delivered now -> None, or a future once another delivery of the same id waits.
        self._pending: dict[str, asyncio.Future | None] = {}

    async def deliver_payload(
        self, action: Action, payload: dict, credentials: Credentials, deadline: float | None
    ) -> Delivered:
        """A typed request's payload: validate, build Segment's body, post it (once per messageId)."""
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
            if await self.store.seen(key):
                self.metrics.duplicate(action)
                return DUPLICATE
            pending[key] = None
        if self.in_flight >= self.max_in_flight:
            self._release(key)
            raise Overloaded(f"{self.in_flight} events are being delivered already (KAMELEOON_MAX_IN_FLIGHT): retry later")
        self.in_flight += 1
        try:
            delivered = await self.client.post(body, credentials, deadline, action)
            if key is not None:
                await self.store.remember(key)
            return delivered
        finally:
            self.in_flight -= 1
            self._release(key)

    def _release(self, key: str | None) -> None:
        if key is not None:
            waiter = self._pending.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def plan(self, event: dict) -> list[Planned]:
        """The body each matching subscription would send; InvalidArgument if any of them is rejected."""
        planned = []
        if self._by_type is not None:  # every trigger is type = "...": the candidates are those of the event's type
            kind = event.get("type")
            candidates, check = (self._by_type.get(kind, ()) if type(kind) is str else ()), False
        else:
            candidates, check = self.subscriptions, True
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
        planned = self.plan(event)
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
