"""``kameleoon-destination try [FILE|-]``: the event tester from a shell, through a running service's Preview RPC.

Reads one raw event (a file, or ``-`` / nothing for standard input), asks the service at ``--target`` what
each stage makes of it and prints it: each destination instance, each stage's verdict, each matched
subscription's request with its body pretty-printed (``--json``: the whole answer as one JSON object).
``--send`` delivers each request for real and shows Kameleoon's answer. Exit status: 0 when the service
answered, 1 when the call failed (its gRPC status printed), 2 when the event cannot be read.
"""

from __future__ import annotations

import sys

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api import remote


def add_parser(commands) -> None:
    tester = commands.add_parser("try", help="preview one raw event: each stage's verdict and the request Kameleoon would get")
    tester.add_argument("file", nargs="?", default="-", help="a file holding the event's JSON (default -: standard input)")
    tester.add_argument("--send", action="store_true", help="deliver each request for real and show Kameleoon's answer")
    tester.add_argument("--skip-filters", action="store_true", help="leave the destination filters out")
    remote.add_arguments(tester, token="a write key, or a token of KAMELEOON_AUTH_TOKENS")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as file:
        return file.read()


async def run(args) -> int:
    try:
        text = _read(args.file)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"kameleoon-destination try: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    request = pb.PreviewRequest(event_json=text, send=args.send, skip_filters=args.skip_filters)
    answer = await remote.call(args, "try", pb_grpc.KameleoonDestinationStub, "Preview", request)
    return 1 if answer is None else remote.show(args, answer, render)


def _stage(stage: pb.PreviewStage) -> str:
    name = f" {stage.name}" if stage.name else ""
    detail = f" ({stage.detail})" if stage.detail else ""
    return f"{stage.stage}{name}: {stage.verdict}{detail}"


def render(answer: pb.PreviewResponse) -> str:
    """The answer as a person reads it."""
    lines = [f"messageId {answer.message_id}"]
    lines += [f"  {_stage(stage)}" for stage in answer.stages]
    for shown in answer.destinations:
        lines.append(f"destination {shown.destination}" + (f": not sent, {shown.discard_reason}" if shown.discard_reason else ""))
        for stage in shown.stages:
            if stage.stage == "subscription":
                lines.append(f"  {stage.name}: {stage.verdict}" + (f" ({stage.detail})" if stage.detail else ""))
            else:
                lines.append(f"  {_stage(stage)}")
        for request in shown.requests:
            lines.append(f"  {request.subscription} ({request.action}):")
            if request.error:
                lines.append(f"    refused: {request.error}" + (f" [field {request.error_field}]" if request.error_field else ""))
                continue
            lines.append(f"    {request.method} {request.url}")
            lines += [f"    {header.name}: {header.value}" for header in request.headers]
            lines += ["    " + line for line in remote.pretty(request.body).splitlines()]
            if request.HasField("answer"):
                got = request.answer
                lines.append(
                    f"    Kameleoon answered HTTP {got.http_status or '-'} after {got.attempts} attempt(s)" + (f": {got.error}" if got.error else "")
                )
                if got.body:
                    lines.append(f"    {got.body}")
    return "\n".join(lines)
