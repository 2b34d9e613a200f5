"""The DeliveryOverview gRPC service: where events went, per destination instance (service.ops.overview).

GetDeliveryOverview sums the per-minute rollups of a window into each instance's funnel; ListSamples shows
the latest samples of a reason. Both flush this process's recorder first, so what it just recorded is
counted; other replicas' last FLUSH_S seconds may not be yet.
"""

from __future__ import annotations

import time

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.timestamps import timestamp_of, timestamp_seconds
from service.errors import CallError, InvalidArgument, abort
from service.ops import overview
from service.ops.overview import Recorder, Sample

WINDOWS = {"10m": 600, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "14d": 14 * 86400}
DEFAULT_WINDOW = "1h"


def window_of(request: pb.GetDeliveryOverviewRequest, now: float) -> tuple[float, float]:
    """[since, until) of a request: from and to when given, else the named window ending now."""
    if request.HasField("from") or request.HasField("to"):
        since = timestamp_seconds(getattr(request, "from")) if request.HasField("from") else now - WINDOWS[DEFAULT_WINDOW]
        until = timestamp_seconds(request.to) if request.HasField("to") else now
        if until <= since:
            raise InvalidArgument("to must be after from", field="to")
        return since, until
    name = request.window or DEFAULT_WINDOW
    if name not in WINDOWS:
        raise InvalidArgument(f"window must be one of {', '.join(WINDOWS)}, got {name!r}", field="window")
    # The minute now is counted: until is the end of this minute.
    return now - WINDOWS[name], (now // 60 + 1) * 60


def funnel(rows: list[tuple]) -> list[pb.DestinationOverview]:
    """Rollup rows (source, destination, stage, reason, count) as one funnel per instance, sorted by name."""
    found: dict[tuple[str, str], pb.DestinationOverview] = {}
    reasons: dict[tuple[str, str, str], dict[str, int]] = {}
    for source, destination, stage, reason, count in rows:
        shown = found.get((source, destination))
        if shown is None:
            shown = found[(source, destination)] = pb.DestinationOverview(source=source, destination=destination)
        if stage in (overview.DISCARDED, overview.FAILED):
            by = reasons.setdefault((source, destination, stage), {})
            by[reason] = by.get(reason, 0) + count
        elif stage in (overview.RECEIVED, overview.RETRYING, overview.DELIVERED):
            setattr(shown, stage, getattr(shown, stage) + count)
    for (source, destination, stage), by in reasons.items():
        getattr(found[(source, destination)], stage).extend(pb.ReasonCount(reason=r, count=n) for r, n in sorted(by.items(), key=lambda i: -i[1]))
    return [found[key] for key in sorted(found)]


def sample_message(sample: Sample) -> pb.DeliverySample:
    return pb.DeliverySample(
        source=sample.source,
        destination=sample.destination,
        reason=sample.reason,
        at=timestamp_of(sample.at),
        message_id=sample.message_id,
        event=sample.event,
        request=sample.request,
        http_status=sample.http_status,
        response=sample.response,
        attempts=sample.attempts,
    )


class DeliveryOverviewServicer(pb_grpc.DeliveryOverviewServicer):
    def __init__(self, recorder: Recorder):
        self._recorder = recorder

    async def GetDeliveryOverview(self, request, context):
        try:
            since, until = window_of(request, time.time())
            await self._recorder.flush()
            rows = await self._recorder.store.overview(since, until)
        except CallError as exc:
            await abort(context, exc)
        response = pb.DeliveryOverviewResponse(destinations=funnel(rows))
        getattr(response, "from").CopyFrom(timestamp_of(since))
        response.to.CopyFrom(timestamp_of(until))
        return response

    async def ListSamples(self, request, context):
        try:
            if not request.reason:
                raise InvalidArgument("reason is required: a discard or failure reason, as GetDeliveryOverview names it", field="reason")
            await self._recorder.flush()
            found = await self._recorder.store.samples(request.reason, request.source, request.destination)
        except CallError as exc:
            await abort(context, exc)
        return pb.ListSamplesResponse(samples=[sample_message(Sample(*row)) for row in found])
