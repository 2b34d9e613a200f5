"""The destination's configuration in force (filters, subscriptions) and what it makes of an event.

Destination filters come first: an event they drop is sent nowhere (its ``filtered_by`` says which
filter). Then every subscription whose trigger matches maps the event into its action's payload,
validated and rendered into Segment's body; if any of them is rejected, the whole event is
(InvalidArgument), so a rejected event sends nothing. Each event reads the configuration once
(:meth:`Router.current`), so a reload never changes an event half way.
"""

from __future__ import annotations

from typing import NamedTuple

import structlog

from service import jsonwire
from service.errors import InvalidArgument, MappingError
from service.ops.metrics import NoMetrics
from service.routing.actions import Action
from service.routing.filters import NO_FILTERS, FilterSet, Verdict
from service.routing.planner import type_dispatch
from service.routing.subscriptions import Subscription

log = structlog.get_logger("kameleoon.filters")

# Why an event is not sent, in Segment's Delivery Overview words: a destination filter dropped it;
# no subscription matched it.
FILTERED_BY_RULES = "FILTERED_BY_RULES"
NO_MATCHING_MAPPING = "NO_MATCHING_MAPPING"


class Planned(NamedTuple):
    subscription: Subscription
    body: bytes


class Router:
    def __init__(self, subscriptions: tuple[Subscription, ...], filters: FilterSet = NO_FILTERS, metrics=None):
        self.subscriptions = subscriptions
        self.filters = filters
        self.metrics = metrics or NoMetrics()
        self._dispatch = (subscriptions, type_dispatch(subscriptions))  # (subscriptions, by type or None)
        self._warned: set[tuple] = set()  # (filter, reason) already logged

    def reconfigure(self, subscriptions: tuple[Subscription, ...] | None = None, filters: FilterSet | None = None) -> None:
        """Put new subscriptions and/or filters in force; events already started keep the ones they read."""
        if subscriptions is not None:
            self.subscriptions = subscriptions
        if filters is not None:
            self.filters = filters

    def current(self) -> tuple[FilterSet, tuple[Subscription, ...]]:
        """The filters and subscriptions in force now: what one event (or one batch) goes by."""
        return self.filters, self.subscriptions

    def _filtered(self, verdict: Verdict) -> None:
        for title, outcome in verdict.outcomes:
            self.metrics.filtered_event(title, outcome)
        if verdict.error is not None and (verdict.stopped_by, verdict.error) not in self._warned:
            if len(self._warned) < 1000:  # once per filter and reason: the metric counts every event
                self._warned.add((verdict.stopped_by, verdict.error))
            log.warning("filter condition cannot be evaluated: events dropped", filter=verdict.stopped_by, error=verdict.error)

    def filter_payload(self, action: Action, payload: dict) -> tuple[dict | None, str]:
        """The payload the filters let through (None: dropped) and the filter that dropped it."""
        filters = self.filters
        if not filters.steps:  # empty when no filter is configured: nothing to do (no call, a tuple test)
            return payload, ""
        verdict = filters.apply_payload(action, payload)
        self._filtered(verdict)
        return verdict.event, verdict.stopped_by or ""

    def filter_event(self, event: dict, filters: FilterSet) -> tuple[dict | None, str]:
        """The raw event ``filters`` let through (None: dropped) and the filter that dropped it."""
        if not filters.steps:
            return event, ""
        verdict = filters.apply(event)
        self._filtered(verdict)
        return verdict.event, (verdict.stopped_by or "") if verdict.event is None else ""

    @staticmethod
    def payload_body(action: Action, payload: dict) -> tuple[dict, bytes]:
        """A typed request's payload, validated (InvalidArgument naming the field), and Segment's body of it."""
        valid = action.validate(payload)
        return valid, jsonwire.dumps(action.body(valid))

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
