"""Send, SendBatch and SendStream against the real server and a real Kameleoon stand-in."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
import yaml

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from service.errors import SubscriptionError
from service.routing.subscriptions import load
from tests.conftest import SETTINGS, bad_request_field, eventually

TS = "2024-03-15T12:34:56.789Z"


def event(**fields) -> str:
    base = {"type": "track", "event": "Signed Up", "timestamp": TS, "messageId": "m-1", "properties": {"plan": "pro"}}
    return json.dumps({**base, **fields})


async def test_track_goes_through_the_log_event_preset(stub, sink):
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event()), timeout=10)
    assert response.message_id == "m-1"
    [result] = response.results
    assert (result.subscription, result.action, result.http_status, result.attempts) == ("Track Calls", "logEvent", 200, 1)
    [received] = sink.received
    assert received.body == '{"event":"Signed Up","type":"track","properties":{"plan":"pro"},"timestamp":"' + TS + '","messageId":"m-1"}'


@pytest.mark.parametrize("kind", ["alias", "screen"])
async def test_alias_and_screen_match_no_preset(stub, sink, kind):
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(type=kind)), timeout=10)
    assert list(response.results) == []
    assert sink.received == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "event_json is empty: send one Segment event as a JSON object"),
        (" \n", "event_json is empty: send one Segment event as a JSON object"),
        ("{not json", "event_json is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("[1,2]", "event_json must be a JSON object, got list"),
        ('"track"', "event_json must be a JSON object, got str"),
        ("[" * 5000 + "]" * 5000, "event_json nests deeper than 64 levels"),
    ],
)
async def test_malformed_event_json(stub, sink, text, message):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == message
    assert bad_request_field(raised.value) == "event_json"
    assert sink.received == []


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"properties": "x"}, "properties must be a object, got string"),
        ({"properties": 5}, "properties must be a object, got number"),
        ({"properties": 1.5}, "properties must be a object, got number"),
        ({"properties": True}, "properties must be a object, got boolean"),
        ({"properties": [1, 2]}, "properties must be a object, got array"),
        ({"event": {"a": 1}}, "event must be a string, got object"),
        ({"event": ["a", "b"]}, "event must be a string, got array"),
    ],
)
async def test_wrong_types_are_named(stub, sink, fields, message):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(**fields)), timeout=10)
    assert raised.value.details() == f"subscription 'Track Calls' (logEvent): invalid event: {message}"
    assert bad_request_field(raised.value) == next(iter(fields))
    assert sink.received == []


@pytest.mark.parametrize("message_id, shown", [(42, "42"), (1.5, "1.5"), (True, "true")])
async def test_a_message_id_that_is_not_text_is_answered_as_javascript_spells_it(stub, sink, message_id, shown):
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(type="page", messageId=message_id)), timeout=10)
    assert response.message_id == shown
    assert response.HasField("status") and response.status.code == 0
    assert [r.json().get("messageId") for r in sink.received] == [shown]


async def test_a_null_message_id_is_stamped_as_segments_tracking_api_does(stub, sink):
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(type="page", messageId=None)), timeout=10)
    assert response.message_id.startswith("api-") and [r.json()["messageId"] for r in sink.received] == [response.message_id]


async def test_a_messageid_with_a_lone_surrogate_is_delivered_as_sent_and_answered_well_formed(stub, sink, log_lines):
    # JSON's "\ud800" is legal and Segment sends it on; a protobuf string cannot hold it: the answer has U+FFFD.
    odd = event(messageId="m-\ud800")
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=odd), timeout=10)
    assert (response.message_id, response.results[0].http_status) == ("m-\ufffd", 200)
    batch = await stub.SendBatch(
        pb.SendBatchRequest(
            settings=SETTINGS,
            requests=[
                pb.SendRequest(event_json=odd),
                pb.SendRequest(event_json=event(messageId="m-2\udfff")),
                pb.SendRequest(event_json=event(messageId="m-3\ud800", properties="x")),
            ],
        ),
        timeout=10,
    )
    assert [r.message_id for r in batch.responses] == ["m-\ufffd", "m-2\ufffd", "m-3\ufffd"]
    assert [r.status.code for r in batch.responses] == [0, 0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert batch.responses[0].results[0].duplicate
    assert [r.json()["messageId"] for r in sink.received] == ["m-\ud800", "m-2\udfff"]
    assert '"messageId":"m-\\ud800"' in sink.received[0].body  # as Segment's runtime writes it
    await eventually(lambda: sum(line["event"] == "rpc" for line in log_lines()) == 2, what="both log lines")
    rpc = [line for line in log_lines() if line["event"] == "rpc"]
    assert rpc[0]["message_id"] == "m-\ud800"  # the log keeps what was sent (JSON escapes it)


async def test_send_without_settings_uses_the_servers(start_service, sink):
    _, stub = await start_service(api_key="c2VydmVyLWtleQ==", sitecode="server0001")
    await stub.Send(pb.SendRequest(event_json=event()), timeout=10)
    await stub.SendBatch(pb.SendBatchRequest(requests=[pb.SendRequest(event_json=event(messageId="m-2"))]), timeout=10)
    assert [(r.headers["authorization"], r.headers["x-segment-settings"]) for r in sink.received] == [("Basic c2VydmVyLWtleQ==", "server0001")] * 2


THROWING = [
    {"name": "Throws on check", "subscribe": 'type = "track" and ()', "partnerAction": "logEvent", "mapping": {}},
    {
        "name": "Throws on mapping",
        "subscribe": 'type = "track"',
        "partnerAction": "logEvent",
        "mapping": {
            "type": {"@path": "$.type"},
            "timestamp": {"@path": "$.timestamp"},
            "messageId": {"@path": "$.messageId"},
            "event": {"@path": {"@path": "$.properties"}},
        },
    },
]


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            THROWING[0],
            "subscription 'Throws on check': its trigger cannot be evaluated on this event: Cannot read properties of undefined (reading 'type')",
        ),
        (THROWING[1], "subscription 'Throws on mapping': mapping failed: @path: expected string, got object"),
    ],
)
async def test_a_subscription_that_throws_on_an_event_refuses_it(start_service, sink, tmp_path, spec, message):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(yaml.safe_dump([spec], sort_keys=False))
    _, stub = await start_service(mappings=str(path))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event()), timeout=10)
    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert sink.received == []


async def test_one_subscriptions_failure_does_not_cut_the_others_short(start_service, sink, tmp_path):
    """Both deliveries run to their end before the call answers, and the first subscription's failure is
    the call's: here A's, cut by the deadline, though B's 400 came back long before."""
    specs = [{**CUSTOM[0], "name": name, "subscribe": 'type = "track"', "mapping": {**CUSTOM[0]["mapping"], "event": name}} for name in ("A", "B")]
    path = tmp_path / "subscriptions.yaml"
    path.write_text(yaml.safe_dump(specs, sort_keys=False))
    _, stub = await start_service(mappings=str(path))
    sink.choose = lambda received: Reply(hold=asyncio.Event()) if received.json()["event"] == "A" else Reply(status=400)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event()), timeout=1)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    [held] = [r for r in sink.received if r.json()["event"] == "A"]
    await eventually(lambda: held.abandoned is not None, what="A's delivery ended by the service")


async def test_rejected_event_names_field_and_subscription(stub, sink):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(type="group", messageId=None)), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "groupId" in raised.value.details() and "Group Calls" in raised.value.details()
    assert sink.received == []


async def test_delivery_failure_fails_the_call(stub, sink):
    sink.default = Reply(status=403)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event()), timeout=10)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_batch_answers_in_order_with_own_statuses(stub, sink):
    requests = [
        pb.SendRequest(event_json=event(messageId="b-0")),
        pb.SendRequest(event_json="{oops"),
        pb.SendRequest(event_json=event(type="alias", messageId="b-2")),
        pb.SendRequest(event_json=event(type="page", name="Home", messageId="b-3")),
        pb.SendRequest(event_json=event(messageId="b-4", timestamp="yesterday")),
    ]
    response = await stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=requests), timeout=10)
    codes = [r.status.code for r in response.responses]
    assert codes == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], 0, 0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert [r.message_id for r in response.responses] == ["b-0", "", "b-2", "b-3", "b-4"]
    assert "timestamp" in response.responses[4].status.message
    assert [len(r.results) for r in response.responses] == [1, 0, 0, 1, 0]
    assert sorted(r.json()["messageId"] for r in sink.received) == ["b-0", "b-3"]


async def test_each_response_says_what_its_own_delivery_did(stub, sink):
    """Responses alike but for what happened (attempts, status, duplicate, subscription) each say their own:
    a first delivery, one after a retry, a duplicate, another subscription's, in one batch and unary."""

    def said(response: pb.SendResponse) -> list:
        return [(r.subscription, r.action, r.http_status, r.attempts, r.duplicate) for r in response.results]

    first = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(messageId="r-1")), timeout=10)
    sink.script.append(Reply(status=503))
    retried = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(messageId="r-2")), timeout=10)
    again = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(messageId="r-1")), timeout=10)
    page = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(type="page", name="Home", messageId="r-3")), timeout=10)
    track = ("Track Calls", "logEvent")
    assert [said(r) for r in (first, retried, again)] == [[(*track, 200, 1, False)], [(*track, 200, 2, False)], [(*track, 0, 0, True)]]
    assert [r.message_id for r in (first, retried, again, page)] == ["r-1", "r-2", "r-1", "r-3"]
    assert said(page)[0][1:] == ("page", 200, 1, False) and said(page)[0][0] != track[0]
    sink.script.append(Reply(status=503))
    requests = [pb.SendRequest(event_json=event(messageId=m)) for m in ("r-4", "r-1", "r-5")]
    batch = await stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=requests), timeout=10)
    assert [r.message_id for r in batch.responses] == ["r-4", "r-1", "r-5"]
    assert sorted(said(r)[0][2:] for r in batch.responses) == [(0, 0, True), (200, 1, False), (200, 2, False)]


async def test_batch_event_settings_override_batch_settings(stub, sink):
    own = pb.Settings(api_key="b3du", sitecode="own0000001")
    requests = [pb.SendRequest(event_json=event(messageId="x")), pb.SendRequest(settings=own, event_json=event(messageId="y"))]
    await stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=requests), timeout=10)
    by_id = {r.json()["messageId"]: r.headers["x-segment-settings"] for r in sink.received}
    assert by_id == {"x": SETTINGS.sitecode, "y": "own0000001"}


async def test_batch_over_the_limit_is_refused(start_service, sink):
    _, stub = await start_service(max_batch=3)
    requests = [pb.SendRequest(event_json=event())] * 4
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=requests), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "requests holds 4 events, more than the limit of 3 (KAMELEOON_MAX_BATCH): split the batch"
    assert bad_request_field(raised.value) == "requests"
    assert sink.received == []
    at_the_limit = [pb.SendRequest(event_json=event(messageId=f"l-{i}")) for i in range(3)]
    response = await stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=at_the_limit), timeout=10)
    assert [r.status.code for r in response.responses] == [0, 0, 0]


async def test_batch_fans_out_concurrently_under_a_bound(start_service, sink):
    _, stub = await start_service(batch_concurrency=4)
    answer = asyncio.Event()
    sink.default = Reply(hold=answer)  # Kameleoon holds every delivery until the test lets it answer
    requests = [pb.SendRequest(event_json=event(messageId=f"c-{i}")) for i in range(8)]
    call = asyncio.ensure_future(stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=requests), timeout=20))
    await sink.wait_until(lambda: sink.in_flight >= 4)  # four at once: the batch fans out
    answer.set()
    response = await call
    assert all(r.status.code == 0 for r in response.responses)
    assert sorted(r.json()["messageId"] for r in sink.received) == sorted(f"c-{i}" for i in range(8))
    assert sink.most_in_flight == 4, "never more than batch_concurrency at once"


async def test_stream_answers_each_request_in_order(stub, sink):
    sink.script.extend([Reply(delay=0.3), Reply(status=400)])

    async def requests():
        yield pb.SendRequest(settings=SETTINGS, event_json=event(messageId="s-0"))
        yield pb.SendRequest(settings=SETTINGS, event_json=event(messageId="s-1"))
        yield pb.SendRequest(settings=SETTINGS, event_json="nope")
        yield pb.SendRequest(settings=SETTINGS, event_json=event(messageId="s-3"))

    responses = [r async for r in stub.SendStream(requests(), timeout=10)]
    assert [r.message_id for r in responses] == ["s-0", "s-1", "", "s-3"]
    assert [r.status.code for r in responses] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert "HTTP 400" in responses[1].status.message


class StreamReads(grpc.aio.ServerInterceptor):
    """Counts, next to the servicer, the requests it reads from a stream and the responses it yields.

    ``most_ahead`` is the most requests read and not yet answered at the moment one was read.
    """

    def __init__(self):
        self.read = self.answered = self.most_ahead = 0

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.stream_stream is None:
            return handler
        behaviour = handler.stream_stream

        async def counted(request_iterator):
            async for request in request_iterator:
                self.read += 1
                self.most_ahead = max(self.most_ahead, self.read - self.answered)
                yield request

        async def stream(request_iterator, context):
            async for response in behaviour(counted(request_iterator), context):
                self.answered += 1
                yield response

        return grpc.stream_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


async def test_stream_applies_backpressure(start_service, sink):
    """With the window full the service stops reading the stream: it reads one request more (which
    waits for a slot) and starts no delivery beyond the window, however many the caller has sent."""
    reads = StreamReads()
    _, stub = await start_service(stream_window=2, interceptors=(reads,))
    answer = asyncio.Event()
    sink.default = Reply(hold=answer)

    async def requests():
        for i in range(6):
            yield pb.SendRequest(settings=SETTINGS, event_json=event(messageId=f"w-{i}"))

    call = stub.SendStream(requests(), timeout=20)
    await eventually(lambda: sink.in_flight >= 2 and reads.read >= 3, what="the window full, one more request read")
    answer.set()
    responses = [r async for r in call]
    assert [r.message_id for r in responses] == [f"w-{i}" for i in range(6)]
    assert all(r.status.code == 0 for r in responses)
    assert reads.most_ahead == 3, "at most the window and the one request waiting for a slot read ahead"
    assert sink.most_in_flight == 2, "never more than the window delivered at once"


CUSTOM = [
    {
        "name": "Alias as Log Event",
        "subscribe": 'type = "alias"',
        "partnerAction": "logEvent",
        "mapping": {
            "userId": {"@path": "$.userId"},
            "anonymousId": {"@path": "$.previousId"},
            "event": "Alias",
            "type": {"@path": "$.type"},
            "timestamp": {"@path": "$.timestamp"},
            "messageId": {"@path": "$.messageId"},
        },
    },
]


async def test_custom_subscription_routes_alias(start_service, sink, tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(yaml.safe_dump(CUSTOM, sort_keys=False))
    _, stub = await start_service(mappings=str(path))
    alias = json.dumps({"type": "alias", "userId": "u-9", "previousId": "anon-9", "timestamp": TS, "messageId": "a-1"})
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=alias), timeout=10)
    assert [(r.subscription, r.action) for r in response.results] == [("Alias as Log Event", "logEvent")]
    [received] = sink.received
    assert (
        received.body
        == '{"userId":"u-9","anonymousId":"anon-9","event":"Alias","type":"alias","timestamp":"' + TS + '","messageId":"a-1","properties":{}}'
    )
    # With a custom file the presets are off: a track matches nothing.
    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event()), timeout=10)
    assert list(response.results) == []


@pytest.mark.parametrize(
    "specs, words",
    [
        ([{**CUSTOM[0], "partnerAction": "trackEvent"}], "unknown partnerAction 'trackEvent'"),
        ([{**CUSTOM[0], "mapping": {"nope": "x"}}], "unknown field(s) 'nope'"),
        ([{**CUSTOM[0], "subscribe": 'type = "alias'}], "bad trigger"),
        ([{**CUSTOM[0], "mapping": {"event": {"@nope": 1}}}], "bad mapping"),
        ([{**CUSTOM[0], "name": f"s{i}"} for i in range(51)], "at most 50"),
        ([{k: v for k, v in CUSTOM[0].items() if k != "mapping"}], "missing mapping"),
        ({"name": "x"}, "expected a list"),
        ([{**CUSTOM[0], "name": "Alias as Log Event\ud800"}], "the name has a lone surrogate"),
    ],
)
def test_bad_subscription_file_is_refused_naming_the_problem(tmp_path, specs, words):
    path = tmp_path / "subscriptions.json"
    path.write_text(json.dumps(specs))
    with pytest.raises(SubscriptionError) as raised:
        load(str(path))
    assert words in str(raised.value)
    if isinstance(specs, list) and len(specs) == 1:
        assert "Alias as Log Event" in str(raised.value)


def test_unreadable_subscription_file(tmp_path):
    with pytest.raises(SubscriptionError) as raised:
        load(str(tmp_path / "missing.yaml"))
    assert "KAMELEOON_MAPPINGS" in str(raised.value)


async def test_batch_logs_one_line_and_each_failure(stub, sink, log_lines):
    requests = [pb.SendRequest(event_json=event(messageId=f"l-{i}")) for i in range(3)] + [pb.SendRequest(event_json="{bad")]
    await stub.SendBatch(pb.SendBatchRequest(settings=SETTINGS, requests=requests), timeout=10)
    records = log_lines()
    [summary] = [r for r in records if r["event"] == "rpc"]
    assert (summary["method"], summary["events"], summary["delivered"], summary["failed"], summary["code"]) == ("SendBatch", 4, 3, 1, "OK")
    [failure] = [r for r in records if r["event"] == "event failed"]
    assert failure["code"] == "INVALID_ARGUMENT" and "event_json" in failure["error"]


async def test_undecodable_stream_message_gets_its_own_status(start_service, sink, log_lines):
    app, _ = await start_service()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        call = channel.stream_stream(
            "/kameleoon.destination.v1.KameleoonDestination/SendStream",
            request_serializer=None,
            response_deserializer=pb.SendResponse.FromString,
        )

        async def requests():
            yield b"\x0a\xff\xff\xff\xff\x0f"  # a length prefix running past the end: not a SendRequest
            yield pb.SendRequest(settings=SETTINGS, event_json=event(messageId="after-bad")).SerializeToString()

        responses = [r async for r in call(requests(), timeout=10)]
    assert [r.status.code for r in responses] == [grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert [r.message_id for r in responses] == ["", "after-bad"]  # nothing to read a messageId from
    assert "cannot be decoded" in responses[0].status.message
    assert [r.json()["messageId"] for r in sink.received] == ["after-bad"]
    [failed] = [line for line in log_lines() if line["event"] == "event failed"]
    assert (failed["method"], failed["code"], failed["message_id"]) == ("SendStream", "INVALID_ARGUMENT", None)


async def test_a_stream_the_caller_cancels_cancels_its_deliveries(start_service, sink):
    _, stub = await start_service(stream_window=2)
    sink.default = Reply(hold=asyncio.Event())  # Kameleoon never answers

    async def requests():
        for i in range(2):
            yield pb.SendRequest(settings=SETTINGS, event_json=event(messageId=f"x-{i}"))
        await asyncio.Event().wait()  # the caller keeps the stream open

    call = stub.SendStream(requests(), timeout=20)
    await sink.wait_until(lambda: sink.in_flight == 2)
    call.cancel()
    await eventually(lambda: all(r.abandoned is not None for r in sink.received), what="both deliveries cancelled")


async def test_queued_events_a_filter_drops_are_not_enqueued(start_service, sink, tmp_path):
    filters = tmp_path / "filters.yaml"
    filters.write_text(yaml.safe_dump([{"title": "Test events", "enabled": True, "if": 'contains(event, "Test")', "actions": [{"type": "DROP"}]}]))
    _, stub = await start_service(
        delivery="queued",
        outbox=f"sqlite:///{tmp_path / 'outbox.db'}",
        filters=str(filters),
        retry_max_backoff_s=0.05,
        api_key=SETTINGS.api_key,
        sitecode=SETTINGS.sitecode,
    )
    typed = await stub.LogEvent(pb.LogEventRequest(event="A Test", timestamp=TS, message_id="q-1"), timeout=10)
    assert (typed.filtered_by, typed.http_status, typed.attempts, typed.queued, typed.message_id) == ("Test events", 0, 0, False, "q-1")
    raw = await stub.Send(pb.SendRequest(event_json=event(event="Test", messageId="q-2")), timeout=10)
    assert (raw.filtered_by, list(raw.results), raw.message_id) == ("Test events", [], "q-2")
    kept = await stub.Send(pb.SendRequest(event_json=event(messageId="q-3")), timeout=10)
    assert [(r.queued, r.http_status) for r in kept.results] == [(True, 0)]
    await sink.wait_for(1)
    assert [r.json()["messageId"] for r in sink.received] == ["q-3"], "only the kept event was enqueued and delivered"


@pytest.mark.parametrize("context, field", [(None, "context"), ({"personas": None}, "context.personas")])
async def test_a_null_context_or_personas_is_refused_naming_it_as_segments_runtime_fails(stub, sink, context, field):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=event(messageId="ctx-1", context=context)), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(raised.value) == field
    assert raised.value.details() == f"subscription 'Track Calls' (logEvent): {field} must be an object or absent, not null"
    assert sink.received == []
