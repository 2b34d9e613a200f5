"""The gRPC floor: a bare grpc.aio server whose handlers return an empty response at once.

``python -m bench`` drives it like the service (unary Send, same requests, same
load generator): its events/s and CPU per call are what grpc.aio alone costs on
this machine, with no mapping and no HTTP. It answers the typed methods and
Send with an empty message (valid: every field is optional) and prints
``PORT <n>`` once listening.

``--post URL``: the one-process floor. Each Send, and each message of a
SendStream, first POSTs a body with aiohttp (the HTTP floor's session, bodies
and header lines) to URL, on the same uvloop, then answers: grpc.aio and aiohttp
in one process, doing nothing else. A stream's POSTs run as the service runs
them: up to the service's default stream window in flight, answered in order.
On this host that costs more than the two floors measured apart (they contend
for the same event loop, caches and cores).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys

import grpc

from bench.common import run, until_stopped
from service.config import Config

SERVICE = "kameleoon.destination.v1.KameleoonDestination"
METHODS = ("LogEvent", "IdentifyEvent", "PageEvent", "GroupEvent", "Send")
WINDOW = Config.stream_window  # the service's default KAMELEOON_STREAM_WINDOW


async def serve(post_url: str | None, events_file: str | None) -> None:
    post = None
    if post_url:
        import yarl

        from bench import events as ev
        from bench.loadgen import floor_session

        with open(events_file) as f:
            parts = ev.service_body_parts(json.load(f))
        session = floor_session(100)
        url, headers, numbers = yarl.URL(post_url), ev.kameleoon_headers(), itertools.count()

        async def post() -> None:
            n = next(numbers)
            async with session.post(url, data=ev.service_body(parts[n % len(parts)], f"floor-{n}"), headers=headers) as response:
                await response.read()

    async def empty(request: bytes, context) -> bytes:
        if post is not None:
            await post()
        return b""

    async def stream(request_iterator, context):
        if post is None:
            async for _ in request_iterator:
                yield b""
            return
        # As the service does: up to WINDOW messages' POSTs in flight, answered in order.
        window, queue = asyncio.Semaphore(WINDOW), asyncio.Queue()

        async def read() -> None:
            async for _ in request_iterator:
                await window.acquire()
                queue.put_nowait(asyncio.ensure_future(post()))
            queue.put_nowait(None)

        reader = asyncio.ensure_future(read())
        while (task := await queue.get()) is not None:
            await task
            window.release()
            yield b""
        await reader

    handler = grpc.unary_unary_rpc_method_handler(empty, request_deserializer=None, response_serializer=None)
    methods = {m: handler for m in METHODS}
    methods["SendStream"] = grpc.stream_stream_rpc_method_handler(stream, request_deserializer=None, response_serializer=None)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await until_stopped()
    await server.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor")
    parser.add_argument("--post", metavar="URL", help="POST a body to URL before answering (the one-process floor)")
    parser.add_argument("--events", metavar="FILE", help="the bench's events (JSON), whose service bodies --post sends")
    args = parser.parse_args(argv)
    run(serve(args.post, args.events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
