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

from service import jsonwire
from service.config import Config
from service.delivery import credentials as credentials_of
from service.delivery.client import Delivered, KameleoonClient
from service.delivery.credentials import Credentials
from service.delivery.idempotency import key
from service.delivery.sync import SyncDelivery
from service.errors import CallError, DeliveryError, InvalidArgument, SettingsRefused
from service.ingest import consent, integrations, message_id_of
from service.ingest.stamp import Stamper
from service.ops import overview
from service.ops.metrics import NoMetrics
from service.ops.overview import NoRecorder, Recorder
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
    """``recorder``: the delivery overview's counts and samples (service.ops.overview), per instance."""

    def __init__(self, sync: SyncDelivery, acceptor: Acceptor, metrics=None, recorder: Recorder | NoRecorder | None = None):
        self.sync = sync
        self.acceptor = acceptor
        self.metrics = metrics or NoMetrics()
        self.recorder = recorder or NoRecorder()
        self.stamp = Stamper()

    @property
    def client(self) -> KameleoonClient:
        return self.sync.client

    def _discard(self, reason: str, instance: Instance, event: dict | None = None, message_id: str = "", error: str = "") -> str:
        """``event`` (or a typed request's payload) sent nowhere in ``instance``: counted, sampled."""
        self.metrics.discarded_event(reason)
        if not instance.implicit:
            self.metrics.instance_event(instance.source, instance.name, "discarded")
        recorder = self.recorder
        recorder.count(instance.source, instance.name, overview.DISCARDED, reason)
        if recorder.wants(instance.source, instance.name, reason):
            recorder.sample(instance.source, instance.name, reason, message_id, jsonwire.dumps(event) if event is not None else b"", response=error)
        return reason

    def refused(self, source: Source, event: str | bytes | dict, reason: str = overview.INVALID_EVENT, error: str = "") -> None:
        """An event refused before it met any instance's stages (not JSON, over the size limit, missing what
        ingest needs): received and discarded in each enabled instance of its source, sampled as text."""
        recorder = self.recorder
        message_id = message_id_of(event) if isinstance(event, dict) else ""
        for instance in source.enabled_instances:
            recorder.count(instance.source, instance.name, overview.RECEIVED)
            recorder.count(instance.source, instance.name, overview.DISCARDED, reason)
            if recorder.wants(instance.source, instance.name, reason):
                shown = jsonwire.dumps(event) if isinstance(event, dict) else event
                recorder.sample(instance.source, instance.name, reason, message_id, shown, response=error)

    def _failed(self, target: Target, action: str, body: bytes, exc: DeliveryError, message_id: str, event: dict | None) -> None:
        """A sync delivery Kameleoon did not take: counted by its status, sampled with the request."""
        instance, recorder = target.instance, self.recorder
        reason = overview.failure_reason(exc.http_status)
        recorder.count(instance.source, instance.name, overview.FAILED, reason)
        if recorder.wants(instance.source, instance.name, reason):
            request = overview.request_text(self.client.endpoint, target.credentials.headers(), body)
            shown = jsonwire.dumps(event) if event is not None else b""
            recorder.sample(instance.source, instance.name, reason, message_id, shown, request, exc.http_status, str(exc), exc.attempts)

    def _delivered(self, instance: Instance, done: Delivered) -> None:
        if not done.duplicate:
            self.recorder.count(instance.source, instance.name, overview.DELIVERED)

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
            for target in targets:
                self.recorder.count(target.instance.source, target.instance.name, overview.RECEIVED)
            outcome.discards = [(target.instance, self._discard(reason, target.instance, event, outcome.message_id), "") for target in targets]
            outcome.discard_reason = reason
            return outcome, []
        planned: list[Planned] = []
        several = len(targets) > 1
        count = self.recorder.count
        for target in targets:
            instance = target.instance
            count(instance.source, instance.name, overview.RECEIVED)
            router = instance.router
            if instance.consent.categories and not instance.consent.allows(event):
                outcome.discards.append((instance, self._discard(consent.REASON, instance, event, outcome.message_id), ""))
                continue
            filters, subscriptions = router.current()  # this event's configuration, whatever a reload does
            kept, filtered_by = router.filter_event(copy_event(event) if several and filters.steps else event, filters)
            if kept is None:
                outcome.discards.append((instance, self._discard(FILTERED_BY_RULES, instance, event, outcome.message_id), filtered_by))
                continue
            try:
                plans = router.plan(kept, subscriptions)
            except InvalidArgument as exc:
                self._discard(overview.INVALID_EVENT, instance, event, outcome.message_id, str(exc))
                raise
            if not plans:
                outcome.discards.append((instance, self._discard(NO_MATCHING_MAPPING, instance, event, outcome.message_id), ""))
            for subscription, body in plans:
                planned.append((target, subscription, body))
        if not planned and outcome.discards:
            _, outcome.discard_reason, outcome.filtered_by = outcome.discards[0]
        return outcome, planned

    def _filtered(self, filtered_by: str, instance: Instance, payload: dict, message_id: str) -> Delivered:
        """The answer of a typed request a destination filter dropped: nothing sent."""
        reason = self._discard(FILTERED_BY_RULES, instance, payload, message_id)
        return Delivered(http_status=0, attempts=0, filtered_by=filtered_by, discard_reason=reason)

    def _payload_bodies(self, action: Action, payload: dict, targets: list[Target]) -> list[tuple[Target, tuple[dict, bytes] | None, str]]:
        """A typed request's payload in each target: (target, (valid payload, body) or None when a filter dropped
        it, the filter's title); InvalidArgument, before anything is sent anywhere, when validation refuses it."""
        message_id = payload.get("messageId") or ""
        several = len(targets) > 1
        made: list[tuple[Target, tuple[dict, bytes] | None, str]] = []
        for target in targets:
            instance = target.instance
            self.recorder.count(instance.source, instance.name, overview.RECEIVED)
            router = instance.router
            kept, filtered_by = router.filter_payload(action, copy_event(payload) if several else payload)
            if kept is None:
                made.append((target, None, filtered_by))
                continue
            try:
                made.append((target, router.payload_body(action, kept), ""))
            except InvalidArgument as exc:
                self._discard(overview.INVALID_EVENT, instance, payload, message_id, str(exc))
                raise
        return made

    # -- sync delivery ------------------------------------------------------------

    async def deliver_payload(
        self, action: Action, payload: dict, targets: list[Target], deadline: float | None
    ) -> list[tuple[Instance, Queued | Delivered]]:
        """A typed request's payload, in each target: filter, validate, build Segment's body, post it (once per
        messageId and instance). Validation refuses it before anything is sent anywhere."""
        message_id = payload.get("messageId") or ""
        results: list[tuple[Instance, Queued | Delivered]] = []
        for target, made, filtered_by in self._payload_bodies(action, payload, targets):  # one at a time: few fan out
            if made is None:
                results.append((target.instance, self._filtered(filtered_by, target.instance, payload, message_id)))
                continue
            valid, body = made
            route = target.instance.route(action.slug)
            try:
                done = await self.sync.deliver(
                    key(target.credentials, route, valid.get("messageId")), body, target.credentials, deadline, action.slug
                )
            except DeliveryError as exc:
                self._failed(target, action.slug, body, exc, message_id, payload)
                raise
            results.append((target.instance, done))
            self._delivered(target.instance, done)
            self._tally(((target.instance, done),))
        return results

    async def send_event(self, event: dict, targets: list[Target], deadline: float | None) -> Outcome:
        """Deliver a raw event to every matching subscription of every target, concurrently; the first failure is raised."""
        outcome, planned = self._route(event, targets)
        deliver = self.sync.deliver
        if len(planned) == 1:  # the usual case, awaited directly: no task to spawn
            target, subscription, body = planned[0]
            creds, instance = target.credentials, target.instance
            try:
                done = await deliver(
                    key(creds, instance.prefix + subscription.name, outcome.message_id), body, creds, deadline, subscription.action.slug
                )
            except DeliveryError as exc:
                self._failed(target, subscription.action.slug, body, exc, outcome.message_id, event)
                raise
            outcome.results.append((subscription, done, instance))
            self._delivered(instance, done)
            if not instance.implicit:
                self.metrics.instance_event(instance.source, instance.name, "delivered")
            return outcome
        if not planned:
            return outcome
        deliveries = [
            deliver(key(t.credentials, t.instance.prefix + sub.name, outcome.message_id), body, t.credentials, deadline, sub.action.slug)
            for t, sub, body in planned
        ]
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        failure: BaseException | None = None
        for (target, subscription, body), result in zip(planned, results):
            if isinstance(result, DeliveryError):
                self._failed(target, subscription.action.slug, body, result, outcome.message_id, event)
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            outcome.results.append((subscription, result, target.instance))
            self._delivered(target.instance, result)
        if failure is not None:
            raise failure
        self._tally((instance, done) for _, done, instance in outcome.results)
        return outcome

    # -- queued delivery ----------------------------------------------------------

    async def queue_payload(self, action: Action, payload: dict, targets: list[Target]) -> list[tuple[Instance, Queued | Delivered]]:
        """A typed request's payload, in each target: filter, validate, build the body; every body committed at once."""
        acceptor = self.acceptor
        message_id = payload.get("messageId") or ""
        results: list[tuple[Instance, Queued | Delivered]] = []
        events, owners = [], []
        for target, made, filtered_by in self._payload_bodies(action, payload, targets):
            if made is None:
                results.append((target.instance, self._filtered(filtered_by, target.instance, payload, message_id)))
                continue
            valid, body = made
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
