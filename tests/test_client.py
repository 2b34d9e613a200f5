"""kameleoon.destination.client against a real server and the real sink: helpers, settings, deadlines, gRPC retries."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest

from kameleoon.destination.client import (
    KameleoonDestinationClient,
    KameleoonDestinationSyncClient,
    rfc3339,
    service_config,
)
from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import API_KEY, SITECODE, eventually

TS = "2026-11-28T10:00:00.000Z"


@pytest.fixture
async def connect():
    """connect(app, **client_options) -> an async client on the app's port, closed after the test."""
    clients = []

    def make(app, **options):
        options = {"api_key": API_KEY, "sitecode": SITECODE, "timeout": 5, **options}
        client = KameleoonDestinationClient(f"127.0.0.1:{app.port}", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(start_service, connect):
    app, _ = await start_service()
    return connect(app)


async def test_log_event_sends_the_exact_body(client, sink):
    response = await client.log_event(
        event="Order Completed",
        properties={"revenue": 42},
        kameleoon_visitor_code="vc-1",
        timestamp=TS,
        message_id="m-1",
    )
    assert (response.http_status, response.attempts, response.message_id) == (200, 1, "m-1")
    [received] = sink.received
    assert received.body == (
        '{"event":"Order Completed","type":"track","properties":{"revenue":42,"kameleoonVisitorCode":"vc-1"},'
        '"timestamp":"2026-11-28T10:00:00.000Z","messageId":"m-1"}'
    )


async def test_log_event_with_context_and_ids(client, sink):
    await client.log_event(
        event="Signed Up",
        user_id="u-1",
        anonymous_id="a-1",
        properties={"plan": "pro"},
        context={"ip": "203.0.113.7"},
        timestamp=TS,
        message_id="m-2",
    )
    [received] = sink.received
    assert received.json() == {
        "anonymousId": "a-1",
        "userId": "u-1",
        "event": "Signed Up",
        "type": "track",
        "properties": {"plan": "pro"},
        "timestamp": TS,
        "context": {"ip": "203.0.113.7"},
        "messageId": "m-2",
    }


async def test_identify_page_group_deliver(client, sink):
    identified = await client.identify(user_id="u-1", traits={"plan": "pro"}, kameleoon_visitor_code="vc-1", timestamp=TS, message_id="i-1")
    paged = await client.page(name="Pricing", properties={"path": "/pricing"}, context={"locale": "fr-FR"}, timestamp=TS, message_id="p-1")
    grouped = await client.group(group_id="acme", traits={"size": 250}, user_id="u-1", timestamp=TS, message_id="g-1")
    assert [r.http_status for r in (identified, paged, grouped)] == [200, 200, 200]
    identify, page, group = (r.json() for r in sink.received)
    assert identify == {
        "userId": "u-1",
        "type": "identify",
        "properties": {"plan": "pro", "kameleoonVisitorCode": "vc-1"},
        "timestamp": TS,
        "messageId": "i-1",
    }
    assert page == {
        "type": "page",
        "properties": {"path": "/pricing"},
        "name": "Pricing",
        "context": {"locale": "fr-FR"},
        "timestamp": TS,
        "messageId": "p-1",
    }
    assert group == {"userId": "u-1", "type": "group", "groupId": "acme", "properties": {"size": 250}, "timestamp": TS, "messageId": "g-1"}


async def test_a_request_message_is_accepted_and_left_unchanged(client, sink):
    request = pb.LogEventRequest(event="Signed Up", timestamp=TS)
    await client.log_event(request, properties={"plan": "pro"})
    assert request == pb.LogEventRequest(event="Signed Up", timestamp=TS)
    [received] = sink.received
    assert received.json()["properties"] == {"plan": "pro"}
    assert received.json()["event"] == "Signed Up"


async def test_client_settings_reach_kameleoon(client, sink):
    await client.log_event(event="Signed Up", timestamp=TS)
    [received] = sink.received
    assert received.headers["authorization"] == f"Basic {API_KEY}"
    assert received.headers["x-segment-settings"] == SITECODE


async def test_request_settings_win_over_the_clients(client, sink):
    await client.log_event(event="Signed Up", timestamp=TS, settings={"api_key": API_KEY, "sitecode": "request001"})
    await client.send(
        {"type": "track", "event": "x", "timestamp": TS, "messageId": "s-1"}, settings=pb.Settings(api_key=API_KEY, sitecode="request002")
    )
    assert [r.headers["x-segment-settings"] for r in sink.received] == ["request001", "request002"]


async def test_without_settings_the_servers_defaults_apply(start_service, connect, sink):
    app, _ = await start_service(api_key=API_KEY, sitecode="server0001")
    await connect(app, api_key=None, sitecode=None).log_event(event="Signed Up", timestamp=TS)
    assert sink.received[0].headers["x-segment-settings"] == "server0001"


async def test_default_message_id_is_a_fresh_uuid4_and_is_sent(client, sink):
    first = await client.log_event(event="Signed Up", timestamp=TS)
    second = await client.identify(user_id="u-1", timestamp=TS)
    assert uuid.UUID(first.message_id).version == 4
    assert uuid.UUID(second.message_id).version == 4
    assert first.message_id != second.message_id
    assert [r.json()["messageId"] for r in sink.received] == [first.message_id, second.message_id]


def test_rfc3339():
    paris = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 11, 28, 11, 0, 0, 123456, tzinfo=paris)) == "2026-11-28T10:00:00.123Z"
    assert rfc3339(datetime(2026, 11, 28, 10, 0, tzinfo=UTC)) == "2026-11-28T10:00:00.000Z"
    assert rfc3339("2026-11-28T10:00:00+01:00") == "2026-11-28T10:00:00+01:00"
    with pytest.raises(ValueError, match="naive"):
        rfc3339(datetime(2026, 11, 28, 10, 0))


async def test_datetime_timestamp_is_sent_as_utc_with_milliseconds(client, sink):
    when = datetime(2026, 11, 28, 5, 0, 0, 7000, tzinfo=timezone(timedelta(hours=-5)))
    await client.page(name="Home", timestamp=when)
    assert sink.received[0].json()["timestamp"] == "2026-11-28T10:00:00.007Z"


async def test_send_takes_a_dict_or_json_text(client, sink):
    event = {"type": "track", "event": "Café ouvert", "properties": {"n": 1}, "timestamp": TS, "messageId": "s-1"}
    response = await client.send(event)
    assert response.message_id == "s-1"
    [result] = response.results
    assert (result.action, result.http_status) == ("logEvent", 200)
    assert sink.received[0].json()["event"] == "Café ouvert"
    response = await client.send('{"type":"page","name":"Home","timestamp":"' + TS + '","messageId":"s-2"}')
    assert response.results[0].action == "page"
    assert len(sink.received) == 2


async def test_send_batch_answers_each_event_in_order(client, sink):
    events = [
        {"type": "track", "event": "One", "timestamp": TS, "messageId": "b-1"},
        '{"type":"identify","userId":"u-1","timestamp":"' + TS + '","messageId":"b-2"}',
        {"type": "track", "event": "Bad", "timestamp": "not a date", "messageId": "b-3"},
    ]
    response = await client.send_batch(events)
    assert [r.message_id for r in response.responses] == ["b-1", "b-2", "b-3"]
    codes = [grpc.StatusCode.OK.value[0]] * 2 + [grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert [r.status.code for r in response.responses] == codes
    assert {r.headers["x-segment-settings"] for r in sink.received} == {SITECODE}
    assert len(sink.received) == 2


async def test_send_stream_from_a_list_and_from_an_async_generator(client, sink):
    listed = [{"type": "track", "event": f"E{n}", "timestamp": TS, "messageId": f"l-{n}"} for n in range(3)]
    got = [r async for r in client.send_stream(listed)]
    assert [r.message_id for r in got] == ["l-0", "l-1", "l-2"]
    assert all(r.status.code == 0 and r.results[0].http_status == 200 for r in got)

    async def generated():
        for n in range(2):
            await asyncio.sleep(0)
            yield json.dumps({"type": "page", "name": f"P{n}", "timestamp": TS, "messageId": f"g-{n}"})

    got = [r async for r in client.send_stream(generated())]
    assert [r.message_id for r in got] == ["g-0", "g-1"]
    assert len(sink.received) == 5
    assert {r.headers["x-segment-settings"] for r in sink.received} == {SITECODE}


async def test_test_authentication(client, sink):
    response = await client.test_authentication()
    assert response.ok
    [received] = sink.received
    assert received.path.endswith("/getapikey")
    response = await client.test_authentication(settings={"api_key": API_KEY, "sitecode": "short"})
    assert not response.ok


async def test_default_deadline_applies(start_service, connect, sink):
    # Past 1.5 s the server gives up on its own (UNAVAILABLE, which the client retries): the
    # DEADLINE_EXCEEDED below comes from the client's default deadline being shorter.
    app, _ = await start_service(timeout_s=1.5, max_attempts=1)
    client = connect(app, timeout=0.5)
    sink.script.append(Reply(hold=asyncio.Event()))  # never answered
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.log_event(event="Slow", timestamp=TS)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    [attempt] = sink.received
    await eventually(lambda: attempt.abandoned is not None, what="the server cut its attempt at the client's deadline")
    assert app.metrics.registry.get_sample_value("kameleoon_rpc_total", {"method": "LogEvent", "code": "DEADLINE_EXCEEDED"}) == 1


async def test_per_call_timeout_overrides_the_default(start_service, connect, sink):
    app, _ = await start_service()
    client = connect(app, timeout=0.2)
    sink.script.append(Reply(delay=0.5))
    response = await client.log_event(event="Slow but allowed", timestamp=TS, timeout=5)
    assert response.http_status == 200


async def test_unavailable_is_retried_by_grpc(start_service, connect, sink):
    app, _ = await start_service(max_attempts=1)  # the server gives up after one HTTP attempt
    sink.script.append(Reply(status=503, body="busy"))
    response = await connect(app).log_event(event="Signed Up", timestamp=TS, message_id="r-1")
    assert (response.http_status, response.attempts) == (200, 1)
    first, second = sink.received
    assert first.body == second.body  # same messageId on the retry


async def test_retries_1_turns_grpc_retries_off(start_service, connect, sink):
    app, _ = await start_service(max_attempts=1)
    sink.script.append(Reply(status=503, body="busy"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await connect(app, retries=1).log_event(event="Signed Up", timestamp=TS)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(sink.received) == 1


async def test_other_errors_propagate_unretried(client, sink):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.log_event(event="Signed Up", timestamp="yesterday")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    sink.script.append(Reply(status=400))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.log_event(event="Signed Up", timestamp=TS)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(sink.received) == 1


def test_service_config():
    config = service_config("10.0.0.1:50051", 4)
    [method] = config["methodConfig"]
    assert method["name"] == [{"service": "kameleoon.destination.v1.KameleoonDestination"}]
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "loadBalancingConfig" not in config
    assert service_config("dns:///svc.ns.svc.cluster.local:50051", 3)["loadBalancingConfig"] == [{"round_robin": {}}]
    assert "retryPolicy" not in service_config("x:1", 1)["methodConfig"][0]


async def test_dns_target_with_round_robin_works(start_service, sink):
    app, _ = await start_service()
    async with KameleoonDestinationClient(f"dns:///127.0.0.1:{app.port}", api_key=API_KEY, sitecode=SITECODE) as client:
        response = await client.log_event(event="Signed Up", timestamp=TS)
    assert response.http_status == 200


async def test_bearer_token_is_sent(start_service, connect, sink):
    app, _ = await start_service(auth_tokens=("s3cret",))
    response = await connect(app, token="s3cret").log_event(event="Signed Up", timestamp=TS)
    assert response.http_status == 200
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await connect(app).log_event(event="Signed Up", timestamp=TS)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(sink.received) == 1


async def test_sync_client(start_service, sink):
    app, _ = await start_service(max_attempts=1)
    sink.script.append(Reply(status=503))  # retried by gRPC in the sync client too

    def calls():
        with KameleoonDestinationSyncClient(f"127.0.0.1:{app.port}", api_key=API_KEY, sitecode=SITECODE, timeout=5) as client:
            logged = client.log_event(event="Order Completed", properties={"revenue": 42}, timestamp=TS, message_id="y-1")
            identified = client.identify(user_id="u-1", traits={"plan": "pro"}, timestamp=datetime(2026, 11, 28, 10, tzinfo=UTC))
            paged = client.page(name="Home", timestamp=TS)
            grouped = client.group(group_id="acme", timestamp=TS)
            sent = client.send({"type": "track", "event": "Raw", "timestamp": TS, "messageId": "y-2"})
            batch = client.send_batch([{"type": "page", "name": "P", "timestamp": TS, "messageId": "y-3"}])
            auth = client.test_authentication()
            with pytest.raises(grpc.RpcError) as raised:
                client.log_event(event="x", timestamp="yesterday")
            return logged, identified, paged, grouped, sent, batch, auth, raised.value.code()

    logged, identified, paged, grouped, sent, batch, auth, code = await asyncio.to_thread(calls)
    assert (logged.http_status, logged.message_id) == (200, "y-1")
    assert uuid.UUID(identified.message_id).version == 4
    assert paged.http_status == grouped.http_status == 200
    assert sent.results[0].http_status == 200
    assert batch.responses[0].results[0].action == "page"
    assert auth.ok
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    posts = [r for r in sink.received if r.method == "POST"]
    assert len(posts) == 7  # one 503 retried, then six deliveries
    assert posts[0].body == posts[1].body
    assert posts[2].json()["timestamp"] == TS
    assert {r.headers["x-segment-settings"] for r in posts} == {SITECODE}
