"""``make demo``: the whole path on an embedded default, end to end.

Starts the local Kameleoon sink and the service on free loopback ports, sends
one event per Kameleoon action over gRPC, prints what Kameleoon received,
stops both. Exit status 0 only when all four arrived.
"""

from __future__ import annotations

import io

import grpc
from google.protobuf import json_format

from service import logs
from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.config import Config
from service.server import create_server
from service.sink import KameleoonSink

# base64 of {"id":"demo-id","secret":"demo-secret"}
DEMO_API_KEY = "eyJpZCI6ImRlbW8taWQiLCJzZWNyZXQiOiJkZW1vLXNlY3JldCJ9"
DEMO_SITECODE = "demo123456"
TS = "2026-11-28T10:00:00.000Z"


def _requests() -> list[tuple[str, object]]:
    settings = pb.Settings(api_key=DEMO_API_KEY, sitecode=DEMO_SITECODE)
    log_event = pb.LogEventRequest(
        settings=settings, anonymous_id="anon-1", user_id="user-1", event="Order Completed",
        kameleoon_visitor_code="vc-8f2k1", timestamp=TS, message_id="demo-track-1",
    )
    json_format.ParseDict({"revenue": 42, "currency": "EUR", "items": 3}, log_event.properties)
    json_format.ParseDict({"locale": "fr-FR"}, log_event.context)
    identify = pb.IdentifyEventRequest(
        settings=settings, user_id="user-1", kameleoon_visitor_code="vc-8f2k1", timestamp=TS, message_id="demo-identify-1",
    )
    json_format.ParseDict({"plan": "pro", "email_verified": True}, identify.traits)
    page = pb.PageEventRequest(
        settings=settings, anonymous_id="anon-1", name="Pricing", kameleoon_visitor_code="vc-8f2k1",
        timestamp=TS, message_id="demo-page-1",
    )
    json_format.ParseDict({"path": "/pricing", "title": "Pricing"}, page.properties)
    group = pb.GroupEventRequest(
        settings=settings, user_id="user-1", group_id="acme", kameleoon_visitor_code="vc-8f2k1",
        timestamp=TS, message_id="demo-group-1",
    )
    json_format.ParseDict({"name": "Acme Inc", "employees": 250}, group.traits)
    return [("LogEvent", log_event), ("IdentifyEvent", identify), ("PageEvent", page), ("GroupEvent", group)]


async def run_demo() -> int:
    log_lines = io.StringIO()
    logs.configure("info", "json", stream=log_lines)
    sink = await KameleoonSink().start()
    app = await create_server(Config(base_url=sink.url, max_attempts=1), "127.0.0.1:0")
    print(f"Kameleoon sink on {sink.url}; service on 127.0.0.1:{app.port}\n")
    failures = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            for method, request in _requests():
                seen = len(sink.received)
                try:
                    response = await getattr(stub, method)(request, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    failures += 1
                    print(f"{method}: FAILED {exc.code().name}: {exc.details()}\n")
                    continue
                print(f"{method} -> http_status={response.http_status} attempts={response.attempts}")
                for received in sink.received[seen:]:
                    shown = received.shown()
                    print(f"  Kameleoon received: {received.method} {received.path}")
                    for name, value in shown["headers"].items():
                        print(f"    {name}: {value}")
                    print(f"    body (exact bytes): {received.body}")
                print()
    finally:
        await app.stop(grace=1)
        await sink.stop()
    print("Service log (one line per RPC):")
    print(log_lines.getvalue().rstrip())
    print(f"\n{4 - failures} of 4 events delivered")
    return 1 if failures or len(sink.received) != 4 else 0
