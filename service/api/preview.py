"""The event tester (``Preview``): one raw event through every stage, as Segment's Event Tester shows it.

For each destination instance of the caller's source: each stage's verdict (stamping, the Integrations
object, consent, each destination filter by title, each subscription's trigger) and, for every matched
subscription, the request delivery would send (method, URL, the headers the service sets with the
apiKey redacted, the body byte for byte) or the mapping's or validation's error naming the field.

It calls the stages themselves, not the pipeline, so nothing is recorded: no delivery, no idempotency
entry, no outbox row, no metric but ``kameleoon_previews_total``. With ``send`` each request is posted
for real (KAMELEOON_MAX_ATTEMPTS, no idempotency window) and Kameleoon's answer is shown.
"""

from __future__ import annotations

from kameleoon.destination.v1 import destination_pb2 as pb
from service import jsonwire
from service.api.pipeline import Pipeline, Target, copy_event
from service.errors import DeliveryError, InvalidArgument, MappingError
from service.ingest import consent, integrations, message_id_of
from service.routing.filters import FilterSet
from service.routing.router import FILTERED_BY_RULES, NO_MATCHING_MAPPING

ANSWER_BYTES = 4096  # of Kameleoon's answer body shown
REDACTED = "Basic <redacted>"
STAMPED_FIELDS = ("receivedAt", "messageId", "timestamp")


def _stages_of_stamping(before: dict, event: dict) -> list[pb.PreviewStage]:
    stages = []
    for name in STAMPED_FIELDS:
        value = event.get(name)
        kept = before.get(name) not in (None, "") if name == "messageId" else before.get(name) is not None  # as stamp.py decides
        verdict = "kept" if kept else "stamped"
        stages.append(
            pb.PreviewStage(stage="stamp", name=name, verdict=verdict, detail=value if isinstance(value, str) else jsonwire.dumps(value).decode())
        )
    return stages


def _filter_stages(filters: FilterSet, event: dict) -> tuple[dict | None, list[pb.PreviewStage]]:
    """The filters on ``event`` (changed in place): what each enabled filter did, and the event they let through."""
    verdict = filters.apply(event)
    acted = dict(verdict.outcomes)
    stages = []
    for flt in filters.filters:
        if not flt.enabled:
            continue
        outcome = acted.get(flt.title)
        detail = (verdict.error or "") if outcome == "error" else ""
        stages.append(pb.PreviewStage(stage="filter", name=flt.title, verdict=outcome or "no_match", detail=detail))
        if verdict.stopped_by == flt.title:
            break  # the filters after it never saw the event
    return verdict.event, stages


class Previewer:
    def __init__(self, pipeline: Pipeline, metrics):
        self._pipeline = pipeline
        self._metrics = metrics

    async def preview(self, event: dict, where: list[Target], send: bool, skip_filters: bool, deadline: float | None) -> pb.PreviewResponse:
        """``event`` (parsed) through every stage for each of ``where``; with ``send``, each request posted."""
        self._metrics.preview(send)
        before = {name: event.get(name) for name in STAMPED_FIELDS}
        self._pipeline.stamp(event)
        response = pb.PreviewResponse(message_id=message_id_of(event), event_json=jsonwire.dumps(event).decode())
        response.stages.extend(_stages_of_stamping(before, event))
        if event.get("integrations"):
            allowed = integrations.allows(event)
            response.stages.add(stage="integrations", verdict="passed" if allowed else "discarded", detail="" if allowed else integrations.REASON)
            if not allowed:
                for target in where:
                    response.destinations.add(destination=target.instance.name, discard_reason=integrations.REASON)
                return response
        for target in where:
            shown = response.destinations.add(destination=target.instance.name)
            await self._instance(target, copy_event(event), shown, send, skip_filters, deadline)
        return response

    async def _instance(self, target: Target, event: dict, shown: pb.DestinationPreview, send: bool, skip: bool, deadline: float | None) -> None:
        instance = target.instance
        if instance.consent.categories:
            allowed = instance.consent.allows(event)
            shown.stages.add(stage="consent", verdict="passed" if allowed else "discarded", detail=", ".join(instance.consent.categories))
            if not allowed:
                shown.discard_reason = consent.REASON
                return
        filters, subscriptions = instance.router.current()
        if skip:
            shown.stages.add(stage="filter", verdict="skipped")
        elif filters.steps:
            kept, stages = _filter_stages(filters, event)
            shown.stages.extend(stages)
            if kept is None:
                shown.discard_reason = FILTERED_BY_RULES
                return
            event = kept
        for subscription in subscriptions:
            try:
                matched = subscription.matches(event)
            except MappingError as exc:
                shown.stages.add(stage="subscription", name=subscription.name, verdict="error", detail=str(exc))
                continue
            shown.stages.add(stage="subscription", name=subscription.name, verdict="matched" if matched else "not_matched")
            if matched:
                await self._request(target, subscription, event, shown.requests.add(), send, deadline)
        if not shown.requests:
            shown.discard_reason = NO_MATCHING_MAPPING

    async def _request(self, target: Target, subscription, event: dict, shown: pb.PreviewedRequest, send: bool, deadline: float | None) -> None:
        client = self._pipeline.client
        shown.subscription, shown.action, shown.method, shown.url = subscription.name, subscription.action.slug, "POST", client.endpoint
        for name, value in target.credentials.headers().items():
            shown.headers.add(name=name, value=REDACTED if name == "authorization" else value)
        try:
            body = jsonwire.dumps(subscription.body(event))
        except InvalidArgument as exc:
            shown.error, shown.error_field = str(exc), exc.field or ""
            return
        except MappingError as exc:
            shown.error = f"mapping failed: {exc}"
            return
        shown.body = body.decode("utf-8", "replace")  # a lone surrogate (legal JSON) cannot be a protobuf string
        if not send:
            return
        answer: list[str] = []
        try:
            delivered = await client.post(body, target.credentials, deadline, subscription.action.slug, answer=answer)
            shown.answer.http_status, shown.answer.attempts = delivered.http_status, delivered.attempts
        except DeliveryError as exc:
            shown.answer.http_status, shown.answer.attempts, shown.answer.error = exc.http_status, exc.attempts, str(exc)
        if answer:
            shown.answer.body = answer[-1].encode("utf-8", "replace")[:ANSWER_BYTES].decode("utf-8", "ignore")
