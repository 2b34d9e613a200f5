"""What every way in does with an event, stage after stage: ingest, route, then deliver now or queue.

    typed request:  payload -> filters -> validation, body -> sync delivery | outbox
    raw event:      (parsed by service.ingest) -> stamped -> consent -> Integrations object
                    -> filters -> subscriptions, mapping, validation, bodies
                    -> sync delivery of each body, concurrently | every body committed to the outbox at once

The stages are service.ingest (stamping, consent, the Integrations object), service.routing
(:class:`Router`), service.delivery (:class:`SyncDelivery`) and service.outbox (:class:`Acceptor`);
this module only calls them in order and gathers what they say. An event a stage stops is sent
nowhere and answered OK with its ``discard_reason`` (Segment's Delivery Overview words), counted
in ``kameleoon_discarded_events_total``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from service.delivery.client import Delivered, KameleoonClient
from service.delivery.credentials import Credentials
from service.delivery.idempotency import key
from service.delivery.sync import SyncDelivery
from service.errors import CallError
from service.ingest import consent, integrations, message_id_of
from service.ingest.consent import Consent
from service.ingest.stamp import Stamper
from service.ops.metrics import NoMetrics
from service.outbox.accept import Acceptor, Queued
from service.outbox.base import NewEvent
from service.routing.actions import Action
from service.routing.filters import FilterSet
from service.routing.router import FILTERED_BY_RULES, NO_MATCHING_MAPPING, Planned, Router
from service.routing.subscriptions import Subscription


@dataclass
class Outcome:
    """What delivering one raw event did: one entry per matching subscription."""

    message_id: str
    results: list[tuple[Subscription, Delivered | Queued]] = field(default_factory=list)
    filtered_by: str = ""  # the destination filter that dropped the event: nothing sent
    discard_reason: str = ""  # why nothing was sent: Segment's Delivery Overview words


class Pipeline:
    def __init__(self, router: Router, sync: SyncDelivery, acceptor: Acceptor, consent: Consent | None = None, metrics=None):
        self.router = router
        self.sync = sync
        self.acceptor = acceptor
        self.consent = consent or Consent()
        self.metrics = metrics or NoMetrics()
        self.stamp = Stamper()

    @property
    def client(self) -> KameleoonClient:
        return self.sync.client

    def _discard(self, reason: str) -> str:
        self.metrics.discarded_event(reason)
        return reason

    def _route(self, event: dict, filters: FilterSet, subscriptions: tuple[Subscription, ...]) -> tuple[Outcome, list[Planned]]:
        """A raw event through the stages before delivery: its Outcome (a discard reason when one stopped
        it) and the body of each subscription it matched; InvalidArgument when a mapping rejects it."""
        self.stamp(event)
        outcome = Outcome(message_id_of(event))
        # Each gate is called only when the event or the configuration gives it something to decide.
        if self.consent.categories and not self.consent.allows(event):
            outcome.discard_reason = self._discard(consent.REASON)
            return outcome, []
        if event.get("integrations") and not integrations.allows(event):
            outcome.discard_reason = self._discard(integrations.REASON)
            return outcome, []
        kept, outcome.filtered_by = self.router.filter_event(event, filters)
        if kept is None:
            outcome.discard_reason = self._discard(FILTERED_BY_RULES)
            return outcome, []
        planned = self.router.plan(kept, subscriptions)
        if not planned:
            outcome.discard_reason = self._discard(NO_MATCHING_MAPPING)
        return outcome, planned

    def _filtered(self, filtered_by: str) -> Delivered:
        """The answer of a typed request a destination filter dropped: nothing sent."""
        return Delivered(http_status=0, attempts=0, filtered_by=filtered_by, discard_reason=self._discard(FILTERED_BY_RULES))

    # -- sync delivery ------------------------------------------------------------

    async def deliver_payload(self, action: Action, payload: dict, credentials: Credentials, deadline: float | None) -> Delivered:
        """A typed request's payload: filter, validate, build Segment's body, post it (once per messageId)."""
        kept, filtered_by = self.router.filter_payload(action, payload)
        if kept is None:
            return self._filtered(filtered_by)
        valid, body = self.router.payload_body(action, kept)
        return await self.sync.deliver(key(credentials, action.slug, valid.get("messageId")), body, credentials, deadline, action.slug)

    async def send_event(self, event: dict, credentials: Credentials, deadline: float | None) -> Outcome:
        """Deliver a raw event to every matching subscription, concurrently; the first failure is raised."""
        filters, subscriptions = self.router.current()  # this event's configuration, whatever a reload does
        outcome, planned = self._route(event, filters, subscriptions)
        deliver = self.sync.deliver
        if len(planned) == 1:  # the usual case, awaited directly: no task to spawn
            subscription, body = planned[0]
            done = await deliver(key(credentials, subscription.name, outcome.message_id), body, credentials, deadline, subscription.action.slug)
            outcome.results.append((subscription, done))
            return outcome
        if not planned:
            return outcome
        deliveries = [deliver(key(credentials, sub.name, outcome.message_id), body, credentials, deadline, sub.action.slug) for sub, body in planned]
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        for (subscription, _), result in zip(planned, results):
            if isinstance(result, BaseException):
                raise result
            outcome.results.append((subscription, result))
        return outcome

    # -- queued delivery ----------------------------------------------------------

    async def queue_payload(self, action: Action, payload: dict, credentials: Credentials) -> Queued | Delivered:
        """A typed request's payload: filter, validate, build the body, commit it to the outbox."""
        kept, filtered_by = self.router.filter_payload(action, payload)
        if kept is None:
            return self._filtered(filtered_by)
        valid, body = self.router.payload_body(action, kept)
        acceptor = self.acceptor
        event = acceptor.new_event(action.slug, action.slug, valid.get("messageId") or "", body, credentials, acceptor.reference(credentials))
        [queued] = await acceptor.enqueue([event])
        if isinstance(queued, CallError):
            raise queued
        return queued

    async def queue_events(self, items: list[tuple[dict, Credentials]]) -> list[Outcome | CallError]:
        """Raw events, each through the stages before delivery; every body of every event committed in one transaction.

        One entry per item, in order: its Outcome (results hold Queued), or the CallError refusing it.
        """
        acceptor = self.acceptor
        filters, subscriptions = self.router.current()  # one configuration for the whole call
        results: list[Outcome | CallError] = []
        events: list[NewEvent] = []
        owners: list[tuple[Outcome, Subscription]] = []
        for event, credentials in items:
            try:
                outcome, planned = self._route(event, filters, subscriptions)
                reference = acceptor.reference(credentials) if planned else ""
            except CallError as exc:
                results.append(exc)
                continue
            results.append(outcome)
            for sub, body in planned:
                events.append(acceptor.new_event(sub.action.slug, sub.name, outcome.message_id, body, credentials, reference))
                owners.append((outcome, sub))
        if not events:
            return results
        try:
            accepted = await acceptor.enqueue(events)
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
