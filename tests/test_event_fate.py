"""One event's fate (OutboxAdmin.GetEvent, ``kameleoon-destination events show``) through a real server and the
stand-in: delivered (when), pending (due, attempts, last answer), in flight, dead (why), or unknown, per
destination instance and subscription."""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from tests.conftest import API_KEY, SITECODE, bad_request_field, eventually
from tests.test_workspace import ADMIN, CHECKOUT_KEY, SITECODES, bearer, service, track, workspace_file  # noqa: F401 (fixtures)

QUEUED = pb.DELIVERY_MODE_QUEUED


def fates(answer: pb.GetEventResponse) -> dict[tuple[str, str], tuple]:
    return {(f.destination, f.route): (f.state, f.attempts, f.last_http_status) for f in answer.fates}


async def test_each_instances_delivery_of_an_event_is_shown_where_it_stands(service, sink):  # noqa: F811 (the fixture)
    """checkout's two instances: eu refuses the event for good (400), us takes it; then us is down (503)."""
    sink.choose = lambda received: Reply(400, "no") if received.headers["x-segment-settings"] == SITECODES["eu"] else Reply(200)
    app, stub, admin = await service()
    await stub.Send(track("m-1", QUEUED), metadata=bearer(CHECKOUT_KEY), timeout=10)
    got: dict = {}

    async def settled():
        answer = await admin.GetEvent(pb.GetEventRequest(message_id="m-1"), metadata=bearer(ADMIN), timeout=10)
        got.update(fates(answer))
        return {state for state, _, _ in got.values()} == {"dead", "delivered"}

    await eventually(settled, what="m-1 dead at eu and delivered at us")
    assert got == {
        ("eu", "checkout/eu/Track Calls"): ("dead", 1, 400),
        ("us", "checkout/us/Track Calls"): ("delivered", 0, 0),
    }
    [taken] = [r for r in sink.accepted() if r.json()["messageId"] == "m-1"]
    answer = await admin.GetEvent(pb.GetEventRequest(message_id="m-1"), metadata=bearer(ADMIN), timeout=10)
    delivered = next(f for f in answer.fates if f.state == "delivered")
    assert delivered.source == "checkout" and delivered.action == "logEvent" and delivered.at.seconds > 0
    dead = next(f for f in answer.fates if f.state == "dead")
    assert dead.last_error and dead.id and taken.headers["x-segment-settings"] == SITECODES["us"]
    assert (dead.source, dead.action) == ("checkout", "logEvent") and dead.at.seconds >= delivered.at.seconds - 60 > 0
    # Kameleoon down: the next event waits for its next attempt, its last answer kept.
    sink.choose = lambda received: Reply(503, "busy")
    await stub.Send(track("m-2", QUEUED), metadata=bearer(CHECKOUT_KEY), timeout=10)

    async def waiting():
        answer = await admin.GetEvent(pb.GetEventRequest(message_id="m-2"), metadata=bearer(ADMIN), timeout=10)
        got.clear()
        got.update(fates(answer))
        return len(got) == 2 and all(state == "pending" and attempts >= 1 for state, attempts, _ in got.values())

    await eventually(waiting, what="m-2 pending at both instances after a failed attempt")
    assert {status for _, _, status in got.values()} == {503}
    unknown = await admin.GetEvent(pb.GetEventRequest(message_id="m-404"), metadata=bearer(ADMIN), timeout=10)
    assert list(unknown.fates) == []
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await admin.GetEvent(pb.GetEventRequest(message_id="m-1"), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_event_in_flight_and_a_synchronous_delivery_through_the_shared_window(start_service, sink, tmp_path):
    hold = asyncio.Event()
    sink.choose = lambda received: Reply(hold=hold) if received.json()["messageId"] == "m-held" else Reply()
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, outbox=f"sqlite:///{tmp_path}/outbox.db")
    admin = pb_grpc.OutboxAdminStub(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
    await stub.Send(pb.SendRequest(event_json=json.dumps({"type": "track", "event": "E", "userId": "u", "messageId": "m-held"}), delivery=QUEUED))
    await sink.wait_until(lambda: len(sink.received) == 1)
    held = await admin.GetEvent(pb.GetEventRequest(message_id="m-held"), timeout=10)
    assert [(f.destination, f.route, f.state, f.attempts) for f in held.fates] == [("default", "Track Calls", "in_flight", 1)]
    hold.set()
    await stub.Send(pb.SendRequest(event_json=json.dumps({"type": "identify", "userId": "u", "messageId": "m-sync"})), timeout=10)
    synced = await admin.GetEvent(pb.GetEventRequest(message_id="m-sync"), timeout=10)
    assert [(f.route, f.state) for f in synced.fates] == [("Identify Calls", "delivered")]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.GetEvent(pb.GetEventRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_field(refused.value) == "message_id"


async def test_events_show_prints_each_fate(start_service, sink, tmp_path):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, outbox=f"sqlite:///{tmp_path}/outbox.db")
    await stub.Send(pb.SendRequest(event_json=json.dumps({"type": "track", "event": "E", "userId": "u", "messageId": "m-cli"})), timeout=10)

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "events", "show", *args, "--target", f"127.0.0.1:{app.port}", stdout=-1, stderr=-1
        )
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    code, out, err = await run("m-cli")
    assert code == 0, err
    assert "default/default Track Calls: delivered (at " in out
    code, out, _ = await run("m-none")
    assert code == 0 and "m-none: unknown" in out
    code, out, _ = await run("m-cli", "--json")
    assert json.loads(out)["fates"][0]["state"] == "delivered"
