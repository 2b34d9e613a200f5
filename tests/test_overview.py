"""The delivery overview and its samples (DeliveryOverview) through a real server and the stand-in: the counts
equal what Kameleoon took and what each stage stopped; samples show what was received, the request (its apiKey
never) and Kameleoon's answer; replicas on one PostgreSQL see each other's; operators' tokens only."""

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
from tests.test_http_api import basic, post
from tests.test_workspace import ADMIN, API_KEYS, CHECKOUT_KEY, bearer, service, workspace_file  # noqa: F401 (fixtures)

TS = "2026-12-01T10:00:00.000Z"
SECRET = "demo-secret"  # inside API_KEY (base64 JSON)
REFUSED = {"context": {"consent": {"categoryPreferences": {"C0002": False}}}}


def send(message_id: str, delivery: int = 0, **fields) -> pb.SendRequest:
    event = {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": message_id, "timestamp": TS, **fields}
    return pb.SendRequest(event_json=json.dumps(event), delivery=delivery)


def overview_stub(app) -> pb_grpc.DeliveryOverviewStub:
    return pb_grpc.DeliveryOverviewStub(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))


def funnel(answer: pb.DeliveryOverviewResponse) -> dict:
    """(source, destination) -> the funnel as plain values."""
    return {
        (d.source, d.destination): {
            "received": d.received,
            "discarded": {r.reason: r.count for r in d.discarded},
            "failed": {r.reason: r.count for r in d.failed},
            "retrying": d.retrying,
            "delivered": d.delivered,
        }
        for d in answer.destinations
    }


@pytest.fixture
def filters_file(tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps([{"title": "No test events", "enabled": True, "if": 'event = "Test"', "actions": [{"type": "DROP"}]}]))
    return str(path)


async def test_the_overview_counts_what_kameleoon_took_and_what_each_stage_stopped(start_service, sink, filters_file):
    sink.choose = lambda received: Reply(400, '{"error":"bad sitecode"}') if received.json()["messageId"] == "m-bad" else Reply(200)
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, filters=filters_file, consent_categories=("C0002",))
    await stub.Send(send("m-ok"), timeout=10)
    await stub.Send(send("m-ok"), timeout=10)  # a duplicate: received again, not delivered again
    await stub.Send(send("m-consent", **REFUSED), timeout=10)
    await stub.Send(send("m-filtered", event="Test"), timeout=10)
    await stub.Send(
        pb.SendRequest(event_json=json.dumps({"type": "alias", "userId": "u-1", "previousId": "a-1", "messageId": "m-alias"})), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Send(send("m-bad"), timeout=10)
    overview = overview_stub(app)
    answer = await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(window="10m"), timeout=10)
    assert funnel(answer) == {
        ("default", "default"): {
            "received": 6,
            "discarded": {"FILTERED_BY_END_USER_CONSENT": 1, "FILTERED_BY_RULES": 1, "NO_MATCHING_MAPPING": 1},
            "failed": {"HTTP_400": 1},
            "retrying": 0,
            "delivered": 1,
        }
    }
    assert len(sink.accepted()) == 1
    assert answer.to.seconds - getattr(answer, "from").seconds >= 600
    [failed] = (await overview.ListSamples(pb.ListSamplesRequest(reason="HTTP_400"), timeout=10)).samples
    assert (failed.source, failed.destination, failed.message_id, failed.http_status, failed.attempts) == ("default", "default", "m-bad", 400, 1)
    assert json.loads(failed.event)["messageId"] == "m-bad" and json.loads(failed.event)["receivedAt"]  # as stamped
    [bad] = [r for r in sink.received if r.json()["messageId"] == "m-bad"]
    assert failed.request.endswith("\n\n" + bad.body)  # the body as sent
    assert f"POST {sink.url}" in failed.request and "authorization: Basic <redacted>" in failed.request
    assert f"x-segment-settings: {SITECODE}" in failed.request
    assert "bad sitecode" in failed.response
    [consent] = (await overview.ListSamples(pb.ListSamplesRequest(reason="FILTERED_BY_END_USER_CONSENT"), timeout=10)).samples
    assert json.loads(consent.event)["context"] == REFUSED["context"] and consent.request == "" and consent.http_status == 0
    [filtered] = (await overview.ListSamples(pb.ListSamplesRequest(reason="FILTERED_BY_RULES"), timeout=10)).samples
    assert filtered.message_id == "m-filtered"
    everything = str(answer) + str(await overview.ListSamples(pb.ListSamplesRequest(reason="HTTP_400"), timeout=10))
    assert API_KEY not in everything and SECRET not in everything


async def test_queued_retries_and_dead_letters_are_counted_and_sampled(start_service, sink, tmp_path):
    sink.choose = lambda received: Reply(503, "busy")
    app, stub = await start_service(
        api_key=API_KEY, sitecode=SITECODE, outbox=f"sqlite:///{tmp_path}/outbox.db", retry_window_s=0.5, retry_max_backoff_s=0.05
    )
    await stub.Send(send("m-dead", pb.DELIVERY_MODE_QUEUED), timeout=10)
    overview = overview_stub(app)
    counted = {}

    async def dead():
        counted.update(funnel(await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), timeout=10)))
        return counted[("default", "default")]["failed"] == {"DEAD_LETTER": 1}

    await eventually(dead, what="m-dead in the overview as a dead letter")
    tries = len(sink.received)
    assert counted[("default", "default")]["received"] == 1 and counted[("default", "default")]["delivered"] == 0
    [letter] = (await overview.ListSamples(pb.ListSamplesRequest(reason="DEAD_LETTER"), timeout=10)).samples
    assert (letter.message_id, letter.http_status, letter.attempts) == ("m-dead", 503, tries) and "busy" in letter.response
    assert letter.request.endswith("\n\n" + sink.received[0].body) and "authorization: Basic <redacted>" in letter.request
    # Each attempt that failed and waited for another is counted and sampled under its status, newest first.
    retried = (await overview.ListSamples(pb.ListSamplesRequest(reason="HTTP_503"), timeout=10)).samples
    assert counted[("default", "default")]["retrying"] == len(retried) >= 1
    assert [s.attempts for s in retried] == list(range(len(retried), 0, -1))
    first = retried[-1]
    assert first.request.endswith("\n\n" + sink.received[0].body) and "authorization: Basic <redacted>" in first.request
    assert json.loads(first.request.split("\n\n", 1)[1])["messageId"] == "m-dead"
    assert API_KEY not in str(letter) + str(retried)


async def test_samples_off_keeps_the_counts_only(start_service, sink, filters_file):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, filters=filters_file, samples="off")
    await stub.Send(send("m-filtered", event="Test"), timeout=10)
    overview = overview_stub(app)
    answer = await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), timeout=10)
    assert funnel(answer)[("default", "default")]["discarded"] == {"FILTERED_BY_RULES": 1}
    assert (await overview.ListSamples(pb.ListSamplesRequest(reason="FILTERED_BY_RULES"), timeout=10)).samples == []


async def test_replicas_on_one_postgresql_see_each_others_counts_and_samples(start_service, sink, postgres_url, filters_file):
    first, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, outbox=postgres_url, filters=filters_file)
    second, _ = await start_service(api_key=API_KEY, sitecode=SITECODE, outbox=postgres_url, filters=filters_file)
    await stub.Send(send("m-1"), timeout=10)
    await stub.Send(send("m-filtered", event="Test"), timeout=10)
    overview = overview_stub(second)
    seen = {}

    async def counted():
        seen.update(funnel(await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(window="1h"), timeout=10)))
        return seen.get(("default", "default"), {}).get("received") == 2

    await eventually(counted, what="the first replica's counts, read through the second")
    assert seen[("default", "default")]["delivered"] == len(sink.accepted()) == 1
    assert seen[("default", "default")]["discarded"] == {"FILTERED_BY_RULES": 1}
    [sample] = (await overview.ListSamples(pb.ListSamplesRequest(reason="FILTERED_BY_RULES"), timeout=10)).samples
    assert sample.message_id == "m-filtered"


async def test_the_overview_is_for_operators_and_counts_each_workspace_instance(service, sink):  # noqa: F811 (the fixture)
    app, stub, _ = await service()
    await stub.Send(send("m-1"), metadata=bearer(CHECKOUT_KEY), timeout=10)
    overview = overview_stub(app)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await overview.ListSamples(pb.ListSamplesRequest(reason="HTTP_400"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    answer = await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), metadata=bearer(ADMIN), timeout=10)
    counted = funnel(answer)
    assert sorted(counted) == [("checkout", "eu"), ("checkout", "us")]  # "off" is disabled: nothing reaches it
    assert all(c["received"] == c["delivered"] == 1 for c in counted.values())
    assert not any(key in str(answer) for key in API_KEYS.values())


@pytest.mark.parametrize(
    "request_, field",
    [
        (pb.GetDeliveryOverviewRequest(window="3h"), "window"),
        (pb.GetDeliveryOverviewRequest(**{"from": {"seconds": 2000}, "to": {"seconds": 1000}}), "to"),
    ],
    ids=["window", "from-after-to"],
)
async def test_a_window_the_overview_does_not_know_is_refused_naming_the_field(start_service, request_, field):
    app, _ = await start_service()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await overview_stub(app).GetDeliveryOverview(request_, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_field(refused.value) == field


async def test_samples_need_a_reason(start_service):
    app, _ = await start_service()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await overview_stub(app).ListSamples(pb.ListSamplesRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_field(refused.value) == "reason"


async def test_events_refused_at_ingest_are_discarded_and_sampled_as_text(start_service, sink):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, max_event_bytes=8192)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Send(pb.SendRequest(event_json='{"type": "track", oops'), timeout=10)
    huge = json.dumps({"type": "track", "event": "E", "userId": "u-1", "properties": {"text": "é" * 10_000}})
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Send(pb.SendRequest(event_json=huge), timeout=10)
    overview = overview_stub(app)
    counted = funnel(await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), timeout=10))
    assert counted[("default", "default")]["discarded"] == {"INVALID_EVENT": 2} and counted[("default", "default")]["received"] == 2
    too_big, not_json = (await overview.ListSamples(pb.ListSamplesRequest(reason="INVALID_EVENT"), timeout=10)).samples
    assert not_json.event == '{"type": "track", oops' and "not valid JSON" in not_json.response
    assert huge.startswith(too_big.event) and len(too_big.event.encode()) <= 4096 < len(huge.encode())
    assert "KAMELEOON_MAX_EVENT_BYTES" in too_big.response
    assert sink.received == []


async def test_the_tracking_apis_ingest_drops_are_discarded_with_their_reason(start_service, sink, tmp_path):
    app, _ = await start_service(
        api_key=API_KEY, sitecode=SITECODE, http_listen=("127.0.0.1", 0), write_keys=("wk_1",), outbox=f"sqlite:///{tmp_path}/o.db"
    )
    status, _, _ = await post(f"http://127.0.0.1:{app.http_port}/v1/track", {"event": "E", "messageId": "m-anonymous"}, basic("wk_1"))
    assert status == 200  # Segment's answer: taken, then dropped
    overview = overview_stub(app)
    token = bearer("wk_1")
    counted = funnel(await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), metadata=token, timeout=10))
    assert counted[("default", "default")]["discarded"] == {"NO_USER_ANON_ID": 1}
    [dropped] = (await overview.ListSamples(pb.ListSamplesRequest(reason="NO_USER_ANON_ID"), metadata=token, timeout=10)).samples
    assert dropped.message_id == "m-anonymous" and json.loads(dropped.event)["event"] == "E"


async def test_the_overview_and_samples_commands_print_what_the_rpcs_answer(start_service, sink, filters_file):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, filters=filters_file, auth_tokens=("tok",))
    token = bearer("tok")
    await stub.Send(send("m-1"), metadata=token, timeout=10)
    await stub.Send(send("m-filtered", event="Test", properties={"note": "<b>kept as text</b>"}), metadata=token, timeout=10)

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", *args, "--target", f"127.0.0.1:{app.port}", stdout=-1, stderr=-1
        )
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    code, out, err = await run("overview", "--window", "10m", "--token", "tok")
    assert code == 0, err
    lines = out.splitlines()
    assert "default/default" in lines and "  received   2" in lines and "  delivered  1" in lines
    assert "  discarded  1: FILTERED_BY_RULES 1" in lines and "  failed     0: none" in lines
    code, out, err = await run("samples", "FILTERED_BY_RULES", "--token", "tok")
    assert code == 0, err
    assert "default/default FILTERED_BY_RULES messageId m-filtered" in out and '"note": "<b>kept as text</b>"' in out
    code, out, _ = await run("samples", "FILTERED_BY_RULES", "--destination", "other", "--token", "tok", "--json")
    assert code == 0 and json.loads(out) == {}
    code, _, err = await run("overview")
    assert code == 1 and "UNAUTHENTICATED" in err


async def test_typed_requests_are_counted_and_sampled_as_raw_events_are(start_service, sink, filters_file):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, filters=filters_file)
    await stub.LogEvent(pb.LogEventRequest(event="Order Completed", user_id="u-1", timestamp=TS, message_id="t-ok"), timeout=10)
    filtered = await stub.LogEvent(pb.LogEventRequest(event="Test", user_id="u-1", timestamp=TS, message_id="t-filtered"), timeout=10)
    assert filtered.discard_reason == "FILTERED_BY_RULES"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.LogEvent(pb.LogEventRequest(event="Order Completed", user_id="u-1", timestamp="not a date", message_id="t-bad"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    overview = overview_stub(app)
    counted = funnel(await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), timeout=10))
    assert counted == {
        ("default", "default"): {
            "received": 3,
            "discarded": {"FILTERED_BY_RULES": 1, "INVALID_EVENT": 1},
            "failed": {},
            "retrying": 0,
            "delivered": 1,
        }
    }
    assert len(sink.accepted()) == 1
    [dropped] = (await overview.ListSamples(pb.ListSamplesRequest(reason="FILTERED_BY_RULES"), timeout=10)).samples
    assert dropped.message_id == "t-filtered" and json.loads(dropped.event)["event"] == "Test"
    [invalid] = (await overview.ListSamples(pb.ListSamplesRequest(reason="INVALID_EVENT"), timeout=10)).samples
    assert invalid.message_id == "t-bad" and "timestamp" in invalid.response and json.loads(invalid.event)["messageId"] == "t-bad"
