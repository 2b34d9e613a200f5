"""The gRPC floor: a bare grpc.aio server whose handlers return an empty response at once.

``python -m bench --grpc-floor`` drives it like the service (unary Send, same
requests, same load generator): its events/s is what grpc.aio alone allows on
this machine, with no mapping and no HTTP. It answers the typed methods and
Send with an empty message (valid: every field is optional) and prints
``PORT <n>`` once listening.
"""

from __future__ import annotations

import sys

import grpc

from bench.common import run, until_stopped

SERVICE = "kameleoon.destination.v1.KameleoonDestination"
METHODS = ("LogEvent", "IdentifyEvent", "PageEvent", "GroupEvent", "Send")


async def serve() -> None:
    async def empty(request: bytes, context) -> bytes:
        return b""

    handler = grpc.unary_unary_rpc_method_handler(empty, request_deserializer=None, response_serializer=None)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {m: handler for m in METHODS}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await until_stopped()
    await server.stop(0)


if __name__ == "__main__":
    run(serve())
    sys.exit(0)
