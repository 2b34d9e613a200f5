"""The OutboxAdmin gRPC service: operators' view of the outbox (stats, dead letters, one event's fate).

Thin, like the event servicer: each RPC turns its request into a store call
(service.outbox.base) and the answer into a response. Without an outbox every
RPC answers FAILED_PRECONDITION naming KAMELEOON_OUTBOX. Dead letters are
shown without their body or credentials, so never an apiKey.
"""

from __future__ import annotations

import time

import structlog

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.event_fate import fates
from service.api.timestamps import timestamp_of, timestamp_seconds
from service.errors import CallError, InvalidArgument, MissingSetting, abort
from service.outbox.base import DeadLetter, DeadLetterFilter, Outbox
from service.routing.mapping.jsvalue import well_formed

log = structlog.get_logger("kameleoon.outbox")

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def filter_of(message: pb.DeadLetterFilter) -> DeadLetterFilter:
    return DeadLetterFilter(
        ids=tuple(message.ids),
        action=message.action or None,
        http_status=message.http_status if message.http_status or message.has_http_status else None,
        since=timestamp_seconds(message.since) if message.HasField("since") else None,
        until=timestamp_seconds(message.until) if message.HasField("until") else None,
    )


def dead_letter_message(letter: DeadLetter) -> pb.DeadLetter:
    return pb.DeadLetter(
        id=letter.id,
        message_id=well_formed(letter.message_id),
        action=letter.action,
        route=letter.route,
        sitecode=letter.sitecode,
        attempts=letter.attempts,
        accepted_at=timestamp_of(letter.accepted_at),
        first_attempt_at=timestamp_of(letter.first_attempt_at),
        last_attempt_at=timestamp_of(letter.last_attempt_at),
        dead_at=timestamp_of(letter.dead_at),
        last_http_status=letter.last_http_status,
        last_error=letter.last_error,
    )


def stats_message(stats, location: str) -> pb.OutboxStats:
    return pb.OutboxStats(
        pending=stats.pending,
        in_flight=stats.in_flight,
        dead=stats.dead,
        oldest_pending_age_s=stats.oldest_pending_age_s,
        actions=[
            pb.ActionOutboxStats(action=action, pending=entry.pending, in_flight=entry.in_flight, dead=entry.dead)
            for action, entry in sorted(stats.by_action.items())
        ],
        location=location,
    )


def acting_filter(request) -> DeadLetterFilter:
    """The filter of a Retry or Purge: an empty one only with ``all`` set, so nothing is done to every letter by mistake."""
    where = filter_of(request.filter)
    if where.is_empty() and not request.all:
        raise InvalidArgument("filter is empty: name ids or a filter, or set all to act on every dead letter", field="filter")
    return where


class OutboxAdminServicer(pb_grpc.OutboxAdminServicer):
    def __init__(self, outbox: Outbox | None, retry_window_s: float, on_retried=lambda: None, event_keys=lambda message_id: {}):
        self._outbox = outbox
        self._window = retry_window_s
        self.on_retried = on_retried  # the local deliverer's wake-up
        self._event_keys = event_keys  # messageId -> the idempotency keys its deliveries could hold (service.api.event_fate)

    def _store(self) -> Outbox:
        if self._outbox is None:
            raise MissingSetting("this server has no outbox: set KAMELEOON_OUTBOX (or KAMELEOON_DELIVERY=queued)")
        return self._outbox

    async def GetEvent(self, request, context):
        try:
            if not request.message_id:
                raise InvalidArgument("message_id is required", field="message_id")
            found = await fates(self._store(), request.message_id, self._event_keys, time.time())
        except CallError as exc:
            await abort(context, exc)
        return pb.GetEventResponse(message_id=request.message_id, fates=found)

    async def GetOutboxStats(self, request, context):
        try:
            store = self._store()
            return stats_message(await store.stats(now=time.time()), store.location)
        except CallError as exc:
            await abort(context, exc)

    async def ListDeadLetters(self, request, context):
        try:
            store = self._store()
            size = request.page_size or DEFAULT_PAGE
            if not 0 < size <= MAX_PAGE:
                raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE}", field="page_size")
            letters, cursor = await store.list_dead_letters(filter_of(request.filter), limit=size, cursor=request.page_token or None)
        except CallError as exc:
            await abort(context, exc)
        return pb.ListDeadLettersResponse(dead_letters=[dead_letter_message(d) for d in letters], next_page_token=cursor or "")

    async def RetryDeadLetters(self, request, context):
        try:
            count = await self._store().retry_dead_letters(acting_filter(request), now=time.time(), window_s=self._window)
        except CallError as exc:
            await abort(context, exc)
        log.info("dead letters retried", count=count)
        self.on_retried()
        return pb.RetryDeadLettersResponse(retried=count)

    async def PurgeDeadLetters(self, request, context):
        try:
            count = await self._store().purge_dead_letters(acting_filter(request))
        except CallError as exc:
            await abort(context, exc)
        log.info("dead letters purged", count=count)
        return pb.PurgeDeadLettersResponse(purged=count)
