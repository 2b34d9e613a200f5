"""What every way in does with an event, stage after stage: ingest, route per instance, then deliver now or queue.

    typed request:  payload -> per instance: filters -> validation, body -> sync delivery | outbox
    raw event:      (parsed by service.ingest) -> stamped, once -> the Integrations object, once
                    -> per instance of the caller's source: consent -> filters -> subscriptions, mapping,
                       validation, bodies
                    -> sync delivery of each body, concurrently | every body committed to the outbox at once

A call's :class:`Target` s are the instances of its source (service.workspace) with the credentials
each delivers with. The stages are service.ingest (stamping, consent, the Integrations object),
service.routing (each instance's :class:`Router`), service.delivery (:class:`SyncDelivery`) and
service.outbox (:class:`Acceptor`); this module only calls them in order and gathers what they say.
An instance a stage stops sends nothing and says why in Segment's Delivery Overview words, counted in
``kameleoon_discarded_events_total``; an event sent nowhere is answered OK with that reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

from service.config import Config
from service.delivery import credentials as credentials_of
from service.delivery.client import Delivered, KameleoonClient
from service.delivery.credentials import Credentials
from service.delivery.idempotency import key
from service.delivery.sync import SyncDelivery
from service.errors import CallError, SettingsRefused
from service.ingest import consent, integrations, message_id_of
from service.ingest.stamp import Stamper
from service.ops.metrics import NoMetrics
from service.outbox.accept import Acceptor, Queued
from service.outbox.base import NewEvent
from service.routing.actions import Action
from service.routing.router import FILTERED_BY_RULES, NO_MATCHING_MAPPING
from service.routing.subscriptions import Subscription
from service.workspace.model import Instance, Source


class Target(NamedTuple):
    """One instance an event goes to, and the credentials it is delivered with there."""

    instance: Instance
    credentials: Credentials


@dataclass
class Outcome:
    """What delivering one raw event did: one result per subscription matched, in each instance."""

    message_id: str
    results: list[tuple[Subscription, Delivered | Queued, Instance]] = field(default_factory=list)
    filtered_by: str = ""  # the destination filter that dropped the event: nothing sent
    discard_reason: str = ""  # sent nowhere: why, Segment's Delivery Overview words (the first instance's)
    discards: list[tuple[Instance, str, str]] = field(default_factory=list)  # (instance, reason, filtered_by) sending nothing


Planned = tuple[Target, Subscription, bytes]


def targets(source: Source, settings, config: Config) -> list[Target]:
    """Where a call's events go: every enabled instance of its source, each with the credentials the workspace
    gives it (the server's for the implicit instance). A request carrying its own ``settings`` goes, as a
    one-off, to the source's first instance with those credentials, unless the source forbids it."""
    if settings is not None:
        if not source.allow_request_settings:
            raise SettingsRefused(f"source {source.name!r} does not take settings in requests (allow_request_settings: false)")
        first = (source.enabled_instances or source.instances)[0]
        # The one-off keeps the instance's routing; its apiKey is the request's: sealed in the outbox, not named.
        one_off = first if first.implicit else dataclasses.replace(first, credentials=None)
        return [Target(one_off, credentials_of.resolve(settings, config))]
    memo = source.memo  # the same for every call of the source: made once (a reload makes new sources)
    if memo and memo[0] is config:
        return memo[1]
    made = [Target(i, i.credentials or credentials_of.resolve(None, config)) for i in source.enabled_instances]
    source.memo[:] = (config, made)
    return made


def _named(instance: Instance) -> tuple[str, str] | None:
    """A workspace instance's (source, name), which the outbox stores instead of its apiKey; None: the implicit one."""
    return None if instance.implicit else (instance.source, instance.name)


def copy_event(value):
    """A JSON value, copied: each instance's filters change the event they are given."""
    if type(value) is dict:
        return {k: copy_event(v) for k, v in value.items()}
    if type(value) is list:
        return [copy_event(v) for v in value]
    return value


class Pipeline:
    def __init__(self, sync: SyncDelivery, acceptor: Acceptor, metrics=None):
        self.sync = sync
        self.acceptor = acceptor
        self.metrics = metrics or NoMetrics()
        self.stamp = Stamper()

    @property
    def client(self) -> KameleoonClient:
        return self.sync.client

    def _discard(self, reason: str, instance: Instance | None = None) -> str:
        self.metrics.discarded_event(reason)
        if instance is not None and not instance.implicit:
            self.metrics.instance_event(instance.source, instance.name, "discarded")
        return reason

    def _tally(self, results) -> None:
        """Count each (instance, result) of a workspace's call in kameleoon_destination_events_total."""
        count = self.metrics.instance_event
        for instance, done in results:
            if not instance.implicit:
                count(instance.source, instance.name, "queued" if type(done) is Queued else "delivered")

    def _route(self, event: dict, targets: list[Target]) -> tuple[Outcome, list[Planned]]:
        """A raw event through the stages before delivery, in each target: its Outcome (a discard reason for
        each instance a stage stopped) and the bodies to send; InvalidArgument when a mapping rejects it."""
        self.stamp(event)
        outcome = Outcome(message_id_of(event))
        # Each gate is called only when the event or the configuration gives it something to decide.
        if event.get("integrations") and not integrations.allows(event):
            reason = integrations.REASON
            outcome.discards = [(target.instance, self._discard(reason, target.instance), "") for target in targets]
            outcome.discard_reason = reason
            return outcome, []
        planned: list[Planned] = []
        several = len(targets) > 1
        for target in targets:
            instance = target.instance
            router = instance.router
            if instance.consent.categories and not instance.consent.allows(event):
                outcome.discards.append((instance, self._discard(consent.REASON, instance), ""))
                continue
            filters, subscriptions = router.current()  # this event's configuration, whatever a reload does
            kept, filtered_by = router.filter_event(copy_event(event) if several and filters.steps else event, filters)
            if kept is None:
                outcome.discards.append((instance, self._discard(FILTERED_BY_RULES, instance), filtered_by))
                continue
            plans = router.plan(kept, subscriptions)
            if not plans:
                outcome.discards.append((instance, self._discard(NO_MATCHING_MAPPING, instance), ""))
            for subscription, body in plans:
                planned.append((target, subscription, body))
        if not planned and outcome.discards:
            _, outcome.discard_reason, outcome.filtered_by = outcome.discards[0]
        return outcome, planned

    def _filtered(self, filtered_by: str, instance: Instance) -> Delivered:
        """The answer of a typed request a destination filter dropped: nothing sent."""
        return Delivered(http_status=0, attempts=0, filtered_by=filtered_by, discard_reason=self._discard(FILTERED_BY_RULES, instance))

    # -- sync delivery ------------------------------------------------------------

    async def deliver_payload(
        self, action: Action, payload: dict, targets: list[Target], deadline: float | None
    ) -> list[tuple[Instance, Queued | Delivered]]:
        """A typed request's payload, in each target: filter, validate, build Segment's body, post it (once per
        messageId and instance). Validation refuses it before anything is sent anywhere."""
        bodies = []
        for target in targets:
            router = target.instance.router
            kept, filtered_by = router.filter_payload(action, copy_event(payload) if len(targets) > 1 else payload)
            bodies.append((target, None, filtered_by) if kept is None else (target, router.payload_body(action, kept), ""))
        results: list[tuple[Instance, Queued | Delivered]] = []
        for target, made, filtered_by in bodies:  # one at a time: typed requests go to one instance but for fan-out setups
            if made is None:
                results.append((target.instance, self._filtered(filtered_by, target.instance)))
                continue
            valid, body = made
            route = target.instance.route(action.slug)
            done = await self.sync.deliver(key(target.credentials, route, valid.get("messageId")), body, target.credentials, deadline, action.slug)
            results.append((target.instance, done))
            self._tally(((target.instance, done),))
        return results

    async def send_event(self, event: dict, targets: list[Target], deadline: float | None) -> Outcome:
        """Deliver a raw event to every matching subscription of every target, concurrently; the first failure is raised."""
        outcome, planned = self._route(event, targets)
        deliver = self.sync.deliver
        if len(planned) == 1:  # the usual case, awaited directly: no task to spawn
            target, subscription, body = planned[0]
            creds = target.credentials
            done = await deliver(
                key(creds, target.instance.prefix + subscription.name, outcome.message_id), body, creds, deadline, subscription.action.slug
            )
            outcome.results.append((subscription, done, target.instance))
            if not target.instance.implicit:
                self.metrics.instance_event(target.instance.source, target.instance.name, "delivered")
            return outcome
        if not planned:
            return outcome
        deliveries = [
            deliver(key(t.credentials, t.instance.prefix + sub.name, outcome.message_id), body, t.credentials, deadline, sub.action.slug)
            for t, sub, body in planned
        ]
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        for (target, subscription, _), result in zip(planned, results):
            if isinstance(result, BaseException):
                raise result
            outcome.results.append((subscription, result, target.instance))
        self._tally((instance, done) for _, done, instance in outcome.results)
        return outcome

    # -- queued delivery ----------------------------------------------------------

    async def queue_payload(self, action: Action, payload: dict, targets: list[Target]) -> list[tuple[Instance, Queued | Delivered]]:
        """A typed request's payload, in each target: filter, validate, build the body; every body committed at once."""
        acceptor = self.acceptor
        results: list[tuple[Instance, Queued | Delivered]] = []
        events, owners = [], []
        for target in targets:
            router = target.instance.router
            kept, filtered_by = router.filter_payload(action, copy_event(payload) if len(targets) > 1 else payload)
            if kept is None:
                results.append((target.instance, self._filtered(filtered_by, target.instance)))
                continue
            valid, body = router.payload_body(action, kept)
            route = target.instance.route(action.slug)
            reference = acceptor.reference(target.credentials, _named(target.instance))
            events.append(acceptor.new_event(action.slug, route, valid.get("messageId") or "", body, target.credentials, reference))
            owners.append(len(results))
            results.append((target.instance, Delivered(0, 0)))  # replaced below
        if events:
            accepted = await acceptor.enqueue(events)
            for index, queued in zip(owners, accepted):
                if isinstance(queued, CallError):
                    raise queued
                results[index] = (results[index][0], queued)
            self._tally(results[index] for index in owners)
        return results

    async def queue_events(self, items: list[tuple[dict, list[Target]]]) -> list[Outcome | CallError]:
        """Raw events, each through the stages before delivery; every body of every event committed in one transaction.

        One entry per item, in order: its Outcome (results hold Queued), or the CallError refusing it.
        """
        acceptor = self.acceptor
        results: list[Outcome | CallError] = []
        events: list[NewEvent] = []
        owners: list[tuple[Outcome, Subscription, Instance]] = []
        for event, targets in items:
            try:
                outcome, planned = self._route(event, targets)
                references = {id(t): acceptor.reference(t.credentials, _named(t.instance)) for t, _, _ in planned}
            except CallError as exc:
                results.append(exc)
                continue
            results.append(outcome)
            for target, sub, body in planned:
                route = target.instance.prefix + sub.name
                events.append(acceptor.new_event(sub.action.slug, route, outcome.message_id, body, target.credentials, references[id(target)]))
                owners.append((outcome, sub, target.instance))
        if not events:
            return results
        try:
            accepted = await acceptor.enqueue(events)
        except CallError as exc:
            failed = {id(outcome) for outcome, _, _ in owners}
            return [exc if id(result) in failed else result for result in results]
        refused: dict[int, CallError] = {}
        for (outcome, sub, instance), queued in zip(owners, accepted):
            if isinstance(queued, CallError):
                refused[id(outcome)] = queued
            else:
                outcome.results.append((sub, queued, instance))
                if not instance.implicit:
                    self.metrics.instance_event(instance.source, instance.name, "queued")
        if refused:
            return [refused.get(id(result), result) for result in results]
        return results
