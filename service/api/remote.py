"""What the operators' commands that talk to a running service share: ``--target``, ``--token``, ``--json``,
one call over a plaintext channel, its failure printed as ``<command>: <gRPC status>: <details>``."""

from __future__ import annotations

import json
import sys

import grpc
from google.protobuf import json_format

DEFAULT_TARGET = "127.0.0.1:50051"


def add_arguments(parser, token: str) -> None:
    """The arguments every such command takes; ``token`` says which token the call needs."""
    parser.add_argument("--target", default=DEFAULT_TARGET, help=f"the service's gRPC HOST:PORT (default {DEFAULT_TARGET}; plaintext)")
    parser.add_argument("--token", help=f"{token}, sent as 'authorization: Bearer'")
    parser.add_argument("--json", action="store_true", help="print the whole answer as one JSON object")


async def call(args, command: str, stub_class, method: str, request):
    """The answer of ``stub_class(channel).<method>(request)``, or None once its failure was printed."""
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else ()
    async with grpc.aio.insecure_channel(args.target) as channel:
        try:
            return await getattr(stub_class(channel), method)(request, metadata=metadata, timeout=60)
        except grpc.aio.AioRpcError as exc:
            print(f"kameleoon-destination {command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return None


def show(args, answer, render) -> int:
    """Print the answer (JSON with --json, else ``render(answer)``); the command's exit status."""
    if args.json:
        print(json.dumps(json_format.MessageToDict(answer), ensure_ascii=False))
    else:
        print(render(answer))
    return 0


def pretty(text: str) -> str:
    """JSON text indented for reading; any other text as it is."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
