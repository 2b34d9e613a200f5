"""The event tester (Preview) through a real server and the stand-in: the request it shows is the one delivery
puts on the wire, byte for byte; without `send` nothing is sent, remembered or stored; each stage's verdict;
with `send`, Kameleoon's answer; the CLI `try`."""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import API_KEY, SITECODE, bad_request_field

TS = "2026-12-01T10:00:00.000Z"
SERVER = {"api_key": API_KEY, "sitecode": SITECODE}


def event(**fields) -> str:
    return json.dumps({"type": "track", "event": "Order Completed", "userId": "u-1", "properties": {"revenue": 42}, "timestamp": TS, **fields})


def stages(shown) -> list[tuple[str, str, str]]:
    return [(s.stage, s.name, s.verdict) for s in shown.stages]


async def test_the_previewed_request_is_what_delivery_sends_byte_for_byte(start_service, sink):
    app, stub = await start_service(**SERVER, metrics_listen=("127.0.0.1", 0))
    text = event(messageId="p-1", context={"ip": "203.0.113.9", "note": "é ✓ \u2028"})
    preview = await stub.Preview(pb.PreviewRequest(event_json=text), timeout=10)
    assert sink.received == [], "a preview sends nothing"
    [shown] = preview.destinations
    [request] = shown.requests
    sent = await stub.Send(pb.SendRequest(event_json=text), timeout=10)
    assert [(r.http_status, r.duplicate) for r in sent.results] == [(200, False)], "a preview leaves no idempotency entry"
    [received] = sink.received
    assert request.body.encode() == received.body.encode()
    assert (request.method, request.url) == (received.method, f"{sink.url}")
    assert received.path == "/segmentio"
    headers = [(h.name, h.value) for h in request.headers]
    assert ("authorization", "Basic <redacted>") in headers and API_KEY not in str(preview)
    for name, value in headers:
        if name != "authorization":
            assert received.headers[name] == value, name
    assert preview.message_id == "p-1" and shown.destination == "default" and shown.discard_reason == ""
    assert (request.subscription, request.action) == ("Track Calls", "logEvent")
    registry = app.metrics.registry
    assert registry.get_sample_value("kameleoon_previews_total", {"sent": "false"}) == 1
    assert registry.get_sample_value("kameleoon_deliveries_total", {"action": "logEvent", "http_status": "200"}) == 1  # the Send's only


async def test_a_preview_stores_nothing_in_the_outbox(start_service, sink, tmp_path):
    _, stub = await start_service(**SERVER, outbox=f"sqlite:///{tmp_path}/outbox.db", delivery="queued")
    await stub.Preview(pb.PreviewRequest(event_json=event(messageId="p-2")), timeout=10)
    queued = await stub.Send(pb.SendRequest(event_json=event(messageId="p-2")), timeout=10)
    assert [(r.queued, r.duplicate) for r in queued.results] == [(True, False)]
    await sink.wait_for(1)
    assert [r.json()["messageId"] for r in sink.received] == ["p-2"]


async def test_stamping_and_each_subscriptions_verdict(start_service, sink):
    _, stub = await start_service(**SERVER)
    preview = await stub.Preview(pb.PreviewRequest(event_json=json.dumps({"type": "track", "event": "E", "userId": "u"})), timeout=10)
    verdicts = {s.name: s.verdict for s in preview.stages}
    assert verdicts == {"receivedAt": "stamped", "messageId": "stamped", "timestamp": "stamped"}
    assert preview.message_id.startswith("api-") and json.loads(preview.event_json)["messageId"] == preview.message_id
    [shown] = preview.destinations
    assert sorted(stages(shown)) == [
        ("subscription", "Group Calls", "not_matched"),
        ("subscription", "Identify Calls", "not_matched"),
        ("subscription", "Page Calls", "not_matched"),
        ("subscription", "Track Calls", "matched"),
    ]
    screen = await stub.Preview(pb.PreviewRequest(event_json=json.dumps({"type": "screen", "messageId": "s", "timestamp": TS})), timeout=10)
    assert screen.destinations[0].discard_reason == "NO_MATCHING_MAPPING" and not screen.destinations[0].requests
    assert {s.name: s.verdict for s in screen.stages}["messageId"] == "kept"
    assert sink.received == []


async def test_a_validation_error_names_the_field_and_nothing_else_stops(start_service, sink):
    _, stub = await start_service(**SERVER)
    preview = await stub.Preview(pb.PreviewRequest(event_json=event(messageId="p-3", properties="x")), timeout=10)
    [request] = preview.destinations[0].requests
    assert (request.error_field, request.body) == ("properties", "")
    assert "properties must be a object, got string" in request.error
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.Preview(pb.PreviewRequest(event_json="{not json"), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_field(bad.value) == "event_json"
    assert sink.received == []


async def test_filters_consent_and_the_integrations_object_say_what_they_did(start_service, sink, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(
        json.dumps(
            [
                {"title": "Drop tests", "enabled": True, "if": 'event = "Test"', "actions": [{"type": "DROP"}]},
                {"title": "No ip", "enabled": True, "if": "all", "actions": [{"type": "DROP_PROPERTIES", "fields": {"context": ["ip"]}}]},
            ]
        )
    )
    _, stub = await start_service(**SERVER, filters=str(filters), consent_categories=("C0002",))
    dropped = await stub.Preview(pb.PreviewRequest(event_json=event(event="Test", messageId="f-1")), timeout=10)
    [shown] = dropped.destinations
    assert (shown.discard_reason, stages(shown)) == ("FILTERED_BY_RULES", [("consent", "", "passed"), ("filter", "Drop tests", "dropped")])
    skipped = await stub.Preview(pb.PreviewRequest(event_json=event(event="Test", messageId="f-1"), skip_filters=True), timeout=10)
    assert stages(skipped.destinations[0])[1] == ("filter", "", "skipped") and len(skipped.destinations[0].requests) == 1
    trimmed = await stub.Preview(pb.PreviewRequest(event_json=event(messageId="f-2", context={"ip": "1.2.3.4", "x": 1})), timeout=10)
    assert stages(trimmed.destinations[0])[1:3] == [("filter", "Drop tests", "no_match"), ("filter", "No ip", "properties_dropped")]
    assert json.loads(trimmed.destinations[0].requests[0].body)["context"] == {"x": 1}
    refused = event(messageId="f-3", context={"consent": {"categoryPreferences": {"C0002": False}}})
    consent = await stub.Preview(pb.PreviewRequest(event_json=refused), timeout=10)
    assert consent.destinations[0].discard_reason == "FILTERED_BY_END_USER_CONSENT"
    assert stages(consent.destinations[0]) == [("consent", "", "discarded")]
    off = await stub.Preview(pb.PreviewRequest(event_json=event(messageId="f-4", integrations={"All": False})), timeout=10)
    assert stages(off)[-1] == ("integrations", "", "discarded") and off.destinations[0].discard_reason == "FILTERED_BY_INTEGRATIONS_OBJECT"
    assert sink.received == []


async def test_send_delivers_once_and_shows_kameleoons_answer(start_service, sink):
    _, stub = await start_service(**SERVER, max_attempts=1)
    sent = await stub.Preview(pb.PreviewRequest(event_json=event(messageId="s-1"), send=True), timeout=10)
    answer = sent.destinations[0].requests[0].answer
    assert (answer.http_status, answer.body, answer.attempts, answer.error) == (200, '{"status":"ok"}', 1, "")
    assert [r.json()["messageId"] for r in sink.received] == ["s-1"]
    sink.default = Reply(400, '{"error":"unknown sitecode"}')
    again = await stub.Preview(pb.PreviewRequest(event_json=event(messageId="s-1"), send=True), timeout=10)  # no idempotency window
    answer = again.destinations[0].requests[0].answer
    assert (answer.http_status, answer.body) == (400, '{"error":"unknown sitecode"}') and "HTTP 400" in answer.error
    assert len(sink.received) == 2


async def test_the_try_command_reads_a_file_and_prints_the_request(start_service, sink, tmp_path):
    app, _ = await start_service(**SERVER)
    path = tmp_path / "event.json"
    path.write_text(event(messageId="cli-1"))

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "try", *args, "--target", f"127.0.0.1:{app.port}", stdout=-1, stderr=-1
        )
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    code, out, err = await run(str(path))
    assert code == 0, err
    assert "Track Calls: matched" in out and "POST " + sink.url in out and '"revenue": 42' in out and "Basic <redacted>" in out
    code, out, _ = await run(str(path), "--json", "--send")
    assert code == 0 and json.loads(out)["destinations"][0]["requests"][0]["answer"]["httpStatus"] == 200
    assert [r.json()["messageId"] for r in sink.received] == ["cli-1"]
    code, _, err = await run(str(tmp_path / "absent.json"))
    assert code == 2 and "absent.json" in err
