"""Operators' questions to a running service, from a shell, through its RPCs (an admin token when it has them).

- ``overview [--window 1h]``: each destination instance's funnel over the window (DeliveryOverview).
- ``samples REASON [--source S] [--destination D]``: the latest samples of a discard or failure reason, each
  as you sent it, the request to Kameleoon and its answer (DeliveryOverview).
- ``events show MESSAGE_ID``: where that event stands in each instance and subscription (OutboxAdmin.GetEvent).

Readable by default, ``--json`` for the whole answer. Exit status: 0 when the service answered, 1 when the
call failed (its gRPC status printed).
"""

from __future__ import annotations

import datetime

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api import remote
from service.api.overview_admin import WINDOWS

ADMIN_TOKEN = "a token of KAMELEOON_ADMIN_TOKENS (of KAMELEOON_AUTH_TOKENS without them and without a workspace)"


def add_parser(commands) -> None:
    overview = commands.add_parser("overview", help="where events went: each destination instance's funnel over a window")
    overview.add_argument("--window", default="1h", choices=tuple(WINDOWS), help="how far back, ending now (default 1h)")
    remote.add_arguments(overview, token=ADMIN_TOKEN)
    samples = commands.add_parser("samples", help="the latest samples of a discard or failure reason, with their payloads")
    samples.add_argument("reason", help="a reason as the overview names it: FILTERED_BY_RULES, HTTP_400, DEAD_LETTER, ...")
    samples.add_argument("--source", default="", help="only this source's")
    samples.add_argument("--destination", default="", help="only this destination instance's")
    remote.add_arguments(samples, token=ADMIN_TOKEN)
    events = commands.add_parser("events", help="one event's fate: pending, in flight, delivered, dead or unknown")
    actions = events.add_subparsers(dest="events_command", required=True)
    show = actions.add_parser("show", help="where MESSAGE_ID stands in each destination instance and subscription")
    show.add_argument("message_id", metavar="MESSAGE_ID")
    remote.add_arguments(show, token=ADMIN_TOKEN)


async def run(args) -> int:
    if args.command == "events":
        answer = await remote.call(args, "events show", pb_grpc.OutboxAdminStub, "GetEvent", pb.GetEventRequest(message_id=args.message_id))
        return 1 if answer is None else remote.show(args, answer, render_event)
    if args.command == "overview":
        answer = await remote.call(
            args, "overview", pb_grpc.DeliveryOverviewStub, "GetDeliveryOverview", pb.GetDeliveryOverviewRequest(window=args.window)
        )
        return 1 if answer is None else remote.show(args, answer, render_overview)
    request = pb.ListSamplesRequest(reason=args.reason, source=args.source, destination=args.destination)
    answer = await remote.call(args, "samples", pb_grpc.DeliveryOverviewStub, "ListSamples", request)
    return 1 if answer is None else remote.show(args, answer, render_samples)


def _when(stamp) -> str:
    return datetime.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _reasons(counts) -> str:
    return ", ".join(f"{each.reason} {each.count}" for each in counts) or "none"


def render_overview(answer: pb.DeliveryOverviewResponse) -> str:
    lines = [f"from {_when(getattr(answer, 'from'))} to {_when(answer.to)}"]
    if not answer.destinations:
        lines.append("no events")
    for shown in answer.destinations:
        lines += [
            f"{shown.source}/{shown.destination}",
            f"  received   {shown.received}",
            f"  discarded  {sum(each.count for each in shown.discarded)}: {_reasons(shown.discarded)}",
            f"  failed     {sum(each.count for each in shown.failed)}: {_reasons(shown.failed)}",
            f"  retrying   {shown.retrying}",
            f"  delivered  {shown.delivered}",
        ]
    return "\n".join(lines)


def render_event(answer: pb.GetEventResponse) -> str:
    if not answer.fates:
        return f"messageId {answer.message_id}: unknown (never accepted, delivered before the idempotency window, or purged)"
    lines = [f"messageId {answer.message_id}"]
    for fate in answer.fates:
        where = f"{fate.source}/{fate.destination} {fate.route}"
        when = {"pending": "due", "in_flight": "lease until", "dead": "died", "delivered": "at"}.get(fate.state, "at")
        line = f"  {where}: {fate.state} ({when} {_when(fate.at)}"
        if fate.state != "delivered":
            line += f", attempts {fate.attempts}, outbox id {fate.id}"
        lines.append(line + ")")
        if fate.last_http_status or fate.last_error:
            lines.append(f"    last answer: HTTP {fate.last_http_status or '-'} {fate.last_error}".rstrip())
    return "\n".join(lines)


def _indented(text: str) -> list[str]:
    return ["    " + line for line in text.splitlines()] or ["    (nothing)"]


def render_samples(answer: pb.ListSamplesResponse) -> str:
    lines: list[str] = []
    for sample in answer.samples:
        lines.append(f"{_when(sample.at)} {sample.source}/{sample.destination} {sample.reason} messageId {sample.message_id or '-'}")
        if sample.event:
            lines += ["  you sent:", *_indented(remote.pretty(sample.event))]
        if sample.request:
            head, _, body = sample.request.partition("\n\n")
            lines += ["  request to Kameleoon:", *_indented(head), *_indented(remote.pretty(body))]
        if sample.http_status or sample.response:
            status = f"HTTP {sample.http_status}" if sample.http_status else "no answer"
            lines += [f"  answer: {status} after {sample.attempts} attempt(s)", *_indented(sample.response)]
    return "\n".join(lines) or "no samples"
