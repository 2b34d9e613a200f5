"""``make demo``: the whole path on an embedded default, end to end.

Starts the local Kameleoon sink and the service on free loopback ports, sends
one event per Kameleoon action over gRPC, prints what Kameleoon received.
Then queued delivery: the sink goes down, the same four events (new
messageIds) are accepted into an outbox in a temporary directory, the sink
comes back and the deliverer hands them over. Last, sources and destination
instances: a workspace file gives one source two Kameleoon instances, and one
event sent with the source's write key reaches each. Exit status 0 only when
every event arrived where it should.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import pathlib
import tempfile
import time
from typing import Any

import aiohttp
import grpc
from google.protobuf import json_format

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.server import create_server
from service.config import Config
from service.demo.sink import KameleoonSink
from service.ops import logs

# base64 of {"id":"demo-id","secret":"demo-secret"}
DEMO_API_KEY = "eyJpZCI6ImRlbW8taWQiLCJzZWNyZXQiOiJkZW1vLXNlY3JldCJ9"
DEMO_SITECODE = "demo123456"
DEMO_WRITE_KEY = "wk_demo"
DEMO_CHECKOUT_KEY = "wk_checkout_demo"
DEMO_INSTANCES = {"kameleoon-web": "web0000001", "kameleoon-app": "app0000001"}
TS = "2026-11-28T10:00:00.000Z"


def _requests() -> list[tuple[str, Any]]:
    settings = pb.Settings(api_key=DEMO_API_KEY, sitecode=DEMO_SITECODE)
    log_event = pb.LogEventRequest(
        settings=settings,
        anonymous_id="anon-1",
        user_id="user-1",
        event="Order Completed",
        kameleoon_visitor_code="vc-8f2k1",
        timestamp=TS,
        message_id="demo-track-1",
    )
    json_format.ParseDict({"revenue": 42, "currency": "EUR", "items": 3}, log_event.properties)
    json_format.ParseDict({"locale": "fr-FR"}, log_event.context)
    identify = pb.IdentifyEventRequest(
        settings=settings,
        user_id="user-1",
        kameleoon_visitor_code="vc-8f2k1",
        timestamp=TS,
        message_id="demo-identify-1",
    )
    json_format.ParseDict({"plan": "pro", "email_verified": True}, identify.traits)
    page = pb.PageEventRequest(
        settings=settings,
        anonymous_id="anon-1",
        name="Pricing",
        kameleoon_visitor_code="vc-8f2k1",
        timestamp=TS,
        message_id="demo-page-1",
    )
    json_format.ParseDict({"path": "/pricing", "title": "Pricing"}, page.properties)
    group = pb.GroupEventRequest(
        settings=settings,
        user_id="user-1",
        group_id="acme",
        kameleoon_visitor_code="vc-8f2k1",
        timestamp=TS,
        message_id="demo-group-1",
    )
    json_format.ParseDict({"name": "Acme Inc", "employees": 250}, group.traits)
    return [("LogEvent", log_event), ("IdentifyEvent", identify), ("PageEvent", page), ("GroupEvent", group)]


async def _http_part(port: int, sink: KameleoonSink) -> int:
    """One track through Segment's HTTP Tracking API, as analytics-python posts it (POST /v1/batch, Basic auth)."""
    body = {"batch": [{"type": "track", "userId": "user-1", "event": "Signed Up", "messageId": "demo-http-1", "timestamp": TS}]}
    auth = base64.b64encode(f"{DEMO_WRITE_KEY}:".encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/v1/batch", json=body, headers={"Authorization": f"Basic {auth}"}) as answer:
            print(f"POST /v1/batch (Segment's HTTP API, write key {DEMO_WRITE_KEY}) -> {answer.status} {await answer.text()}")
    deadline = time.monotonic() + 10
    while not sink.received and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for received in sink.received:
        print(f"  Kameleoon received: {received.method} {received.path} messageId={received.json().get('messageId')}\n")
    return len(sink.received)


async def _queued_part(stub, admin, sink: KameleoonSink) -> int:
    """Kameleoon down: events accepted into the outbox; Kameleoon back: delivered. Returns how many arrived."""
    port = sink.port
    await sink.stop()
    print(f"Queued delivery: the Kameleoon sink is down now (nothing listens on port {port}).")
    for method, request in _requests():
        request.message_id = request.message_id.replace("demo-", "demo-queued-")
        request.delivery = pb.DELIVERY_MODE_QUEUED
        response = await getattr(stub, method)(request, timeout=10)
        print(f"{method} -> queued={str(response.queued).lower()} outbox_id={response.outbox_id} (committed to the outbox)")
    stats = await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=10)
    print(f"outbox: {stats.pending + stats.in_flight} waiting for Kameleoon\n")
    await sink.start(port=port)
    print("The Kameleoon sink is back; the deliverer retries on its own:")
    deadline = time.monotonic() + 30
    while len(sink.received) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for received in sink.received:
        print(f"  Kameleoon received: {received.method} {received.path} messageId={received.json().get('messageId')}")
    return len(sink.received)


async def _overview_part(channel: grpc.aio.Channel, page_port: int | None) -> bool:
    """Where every event of the demo went (kameleoon-destination overview), and whether the page shows it."""
    from service.api.admin_commands import render_overview

    answer = await pb_grpc.DeliveryOverviewStub(channel).GetDeliveryOverview(pb.GetDeliveryOverviewRequest(window="10m"), timeout=10)
    print("\nThe delivery overview (kameleoon-destination overview; the operator's page shows the same):")
    print(render_overview(answer))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{page_port}/?window=10m") as shown:
            return shown.status == 200 and "Delivery overview" in await shown.text()


async def _workspace_part(sink: KameleoonSink, directory: str) -> int:
    """A second service reading a workspace file: one source, two instances; one event reaches each instance once."""
    folder = pathlib.Path(directory)
    (folder / "kameleoon.key").write_text(DEMO_API_KEY)  # a Secret mounted as a file, in production
    instances = [{"name": name, "settings": {"apiKey": {"file": "kameleoon.key"}, "sitecode": sitecode}} for name, sitecode in DEMO_INSTANCES.items()]
    workspace = {"sources": [{"name": "checkout", "write_keys": [DEMO_CHECKOUT_KEY], "destinations": instances}]}
    (folder / "workspace.json").write_text(json.dumps(workspace, indent=2))
    print(f"Sources and destinations: a workspace file (KAMELEOON_WORKSPACE) gives source 'checkout' two instances, {', '.join(DEMO_INSTANCES)}.")
    app = await create_server(Config(base_url=sink.url, max_attempts=1, workspace=str(folder / "workspace.json")), "127.0.0.1:0")
    event = {"type": "track", "userId": "user-1", "event": "Checkout Started", "messageId": "demo-workspace-1", "timestamp": TS}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            answer = await stub.Send(
                pb.SendRequest(event_json=json.dumps(event)), metadata=(("authorization", f"Bearer {DEMO_CHECKOUT_KEY}"),), timeout=10
            )
    finally:
        await app.stop(grace=1)
    print("Send (authorization: Bearer <checkout's write key>, no settings) ->")
    for result in answer.results:
        print(f"  destination={result.destination} subscription={result.subscription!r} http_status={result.http_status}")
    for received in sink.received:
        print(f"  Kameleoon received: x-segment-settings={received.headers.get('x-segment-settings')} messageId={received.json().get('messageId')}")
    return len({received.headers.get("x-segment-settings") for received in sink.received if received.status == 200})


async def run_demo() -> int:
    log_lines = io.StringIO()
    logs.configure("info", "json", stream=log_lines)
    sink = await KameleoonSink().start()
    outbox_dir = tempfile.TemporaryDirectory(prefix="kameleoon-demo-")
    # The server holds the demo apiKey, so the outbox stores a reference to it, never the key.
    config = Config(
        base_url=sink.url,
        max_attempts=1,
        api_key=DEMO_API_KEY,
        sitecode=DEMO_SITECODE,
        outbox=f"sqlite:///{outbox_dir.name}/outbox.db",
        retry_max_backoff_s=0.5,
        http_listen=("127.0.0.1", 0),
        write_keys=(DEMO_WRITE_KEY,),
        admin_listen=("127.0.0.1", 0),  # loopback, no tokens: open to this machine only
    )
    app = await create_server(config, "127.0.0.1:0")
    print(
        f"Kameleoon sink on {sink.url}; service on 127.0.0.1:{app.port} (gRPC), http://127.0.0.1:{app.http_port} (Segment's HTTP API), "
        f"http://127.0.0.1:{app.page_port}/ (the operator's page, while the demo runs)\n"
    )
    failures = 0
    queued = fanned_out = over_http = synced = page = 0
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
            synced = len(sink.received)
            sink.received.clear()
            assert app.http_port is not None  # http_listen is set above
            over_http = await _http_part(app.http_port, sink)
            sink.received.clear()
            queued = await _queued_part(stub, pb_grpc.OutboxAdminStub(channel), sink)
            page = await _overview_part(channel, app.page_port)
        await app.stop(grace=1)
        print()
        sink.received.clear()
        fanned_out = await _workspace_part(sink, outbox_dir.name)
    finally:
        await app.stop(grace=1)
        await sink.stop()
        outbox_dir.cleanup()
    print("\nService log (one line per RPC):")
    print(log_lines.getvalue().rstrip())
    print(f"\n{4 - failures} of 4 events delivered")
    print(f"{over_http} of 1 event sent as Segment's libraries send it delivered")
    print(f"{queued} of 4 queued events delivered after the outage")
    print(f"{fanned_out} of 2 destination instances of one source received its event")
    print(f"the operator's page {'answered' if page else 'did not answer'} with the delivery overview")
    return 1 if failures or synced != 4 or over_http != 1 or queued != 4 or fanned_out != 2 or not page else 0
