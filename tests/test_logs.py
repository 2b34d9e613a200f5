"""The one log line per RPC, field by field, for every RPC, when it works and when it fails."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import API_KEY, SETTINGS, SITECODE, eventually

TS = "2024-03-15T12:34:56.789Z"
TRACK = json.dumps({"type": "track", "event": "Signed Up", "timestamp": TS, "messageId": "raw-1"})


class _ConnectionError(str):
    def __eq__(self, other):
        return other.startswith("Kameleoon is unavailable: connection error (") and other.endswith(") after 1 attempt(s)")

    __hash__ = str.__hash__


ANY_CONNECTION_ERROR = _ConnectionError("Kameleoon is unavailable: connection error (<aiohttp's error>) after 1 attempt(s)")


async def rpc_lines_of(log_lines, calls: int) -> list[dict]:
    """rpc_lines once ``calls`` lines are written: an RPC that fails sends its status (grpc.aio's abort)
    before the handler returns and writes the line, so the caller may see the error first."""
    await eventually(lambda: sum(line["event"] == "rpc" for line in log_lines()) >= calls, what=f"{calls} rpc lines")
    return rpc_lines(log_lines)


def rpc_lines(log_lines) -> list[dict]:
    """The RPC lines so far, without what changes from run to run (time and duration), checked once here."""
    lines = []
    for line in log_lines():
        if line["event"] == "rpc":
            assert line.pop("level") == "info" and line.pop("timestamp").endswith("Z")
            assert isinstance(line.pop("duration_ms"), float)
            lines.append(line)
    return lines


async def test_typed_rpc_lines(start_service, sink, log_lines):
    _, stub = await start_service(max_attempts=2)
    request = pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id="m-1")
    await stub.LogEvent(request, timeout=5)
    await stub.LogEvent(request, timeout=5)
    sink.script.extend([Reply(status=503, body="busy"), Reply(status=400, body="no")])
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.IdentifyEvent(pb.IdentifyEventRequest(settings=SETTINGS, user_id="u", timestamp=TS, message_id="m-2"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.PageEvent(pb.PageEventRequest(settings=SETTINGS, timestamp="yesterday"), timeout=5)
    common = {"event": "rpc", "method": "LogEvent", "action": "logEvent", "message_id": "m-1", "code": "OK"}
    assert await rpc_lines_of(log_lines, 4) == [
        {**common, "http_status": 200, "attempts": 1, "duplicate": False},
        {**common, "http_status": 0, "attempts": 0, "duplicate": True},
        {
            "event": "rpc",
            "method": "IdentifyEvent",
            "action": "identify",
            "message_id": "m-2",
            "code": "INVALID_ARGUMENT",
            "error": "Kameleoon rejected the event (HTTP 400): the request was not accepted and will not be retried. Kameleoon answered: no",
            "http_status": 400,
            "attempts": 2,
        },
        {
            "event": "rpc",
            "method": "PageEvent",
            "action": "page",
            "message_id": None,
            "code": "INVALID_ARGUMENT",
            "error": "invalid event: timestamp must be an RFC 3339 date-time, got 'yesterday'",
        },
    ]
    [retry] = [line for line in log_lines() if line["event"] == "attempt failed"]
    assert (retry["level"], retry["method"], retry["attempt"], retry["http_status"]) == ("debug", "POST", 1, 503)
    assert retry["reason"] == "HTTP 503 (Kameleoon answered: busy)"


async def test_send_lines(stub, sink, log_lines):
    await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=TRACK), timeout=5)
    await stub.Send(pb.SendRequest(settings=SETTINGS, event_json='{"type":"alias","messageId":"a-1"}'), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json="{"), timeout=5)
    sink.script.append(Reply(status=403))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=TRACK.replace("raw-1", "raw-2")), timeout=5)
    assert await rpc_lines_of(log_lines, 4) == [
        {"event": "rpc", "method": "Send", "code": "OK", "message_id": "raw-1", "matched": ["logEvent"], "http_status": [200], "attempts": 1},
        {
            "event": "rpc",
            "method": "Send",
            "code": "OK",
            "message_id": "a-1",
            "matched": [],
            "http_status": [],
            "attempts": 0,
            "discard_reason": "NO_MATCHING_MAPPING",
        },
        {
            "event": "rpc",
            "method": "Send",
            "code": "INVALID_ARGUMENT",
            "error": "event_json is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        },
        {
            "event": "rpc",
            "method": "Send",
            "code": "PERMISSION_DENIED",
            "http_status": 403,
            "attempts": 1,
            "error": 'Kameleoon denied access (HTTP 403): check that the apiKey may write to this sitecode. Kameleoon answered: {"status":"ok"}',
        },
    ]


@pytest.mark.parametrize("method", ["SendBatch", "SendStream"])
async def test_batch_and_stream_lines(stub, sink, log_lines, method):
    events = [TRACK, TRACK, TRACK.replace("raw-1", "raw-2"), '{"type":"track","messageId":"bad-1","timestamp":"yesterday"}', "{"]
    requests = [pb.SendRequest(settings=SETTINGS, event_json=text) for text in events]
    if method == "SendBatch":
        await stub.SendBatch(pb.SendBatchRequest(requests=requests), timeout=5)
    else:

        async def stream():
            for request in requests:
                yield request

        [_ async for _ in stub.SendStream(stream(), timeout=5)]
    await eventually(lambda: rpc_lines(log_lines), what="the call's line")
    # One of the two raw-1 is a duplicate: 2 delivered, 2 failed of 5.
    assert rpc_lines(log_lines) == [{"event": "rpc", "method": method, "code": "OK", "events": 5, "delivered": 2, "queued": 0, "failed": 2}]
    failures = [line for line in log_lines() if line["event"] == "event failed"]
    assert [(line["level"], line["method"], line["message_id"], line["code"]) for line in failures] == [
        ("info", method, "bad-1", "INVALID_ARGUMENT"),
        ("info", method, None, "INVALID_ARGUMENT"),
    ]
    assert "timestamp must be an RFC 3339 date-time" in failures[0]["error"] and "event_json" in failures[1]["error"]


async def test_test_authentication_lines(start_service, sink, log_lines):
    app, stub = await start_service(max_attempts=1)
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=5)
    sink.script.append(Reply(status=401, body="unknown key"))
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=5)
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key="bad", sitecode="0123456789")), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.TestAuthentication(pb.TestAuthenticationRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await sink.stop()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    common = {"event": "rpc", "method": "TestAuthentication"}
    assert await rpc_lines_of(log_lines, 5) == [
        {**common, "code": "OK", "ok": True, "http_status": 200, "attempts": 1},
        {**common, "code": "OK", "ok": False, "http_status": 401},
        {**common, "code": "OK", "ok": False, "http_status": 0},
        {
            **common,
            "code": "FAILED_PRECONDITION",
            "error": "settings.api_key is missing: send settings in the request or set KAMELEOON_API_KEY on the server",
        },
        {**common, "code": "UNAVAILABLE", "http_status": 0, "attempts": 1, "error": ANY_CONNECTION_ERROR},
    ]


async def test_a_call_the_caller_cancels_is_logged_cancelled(start_service, sink, log_lines):
    app, stub = await start_service()
    sink.default = Reply(hold=asyncio.Event())
    call = stub.LogEvent(pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id="c-1"), timeout=10)
    await sink.wait_for(1)
    call.cancel()
    await eventually(lambda: rpc_lines(log_lines), what="the call's line")
    assert rpc_lines(log_lines) == [{"event": "rpc", "method": "LogEvent", "action": "logEvent", "message_id": "c-1", "code": "CANCELLED"}]
    sample = app.metrics.registry.get_sample_value
    assert sample("kameleoon_deliveries_total", {"action": "logEvent", "http_status": "none"}) == 1
    assert sample("kameleoon_rpc_total", {"method": "LogEvent", "code": "CANCELLED"}) == 1, "not UNKNOWN"


async def test_a_filter_that_cannot_be_evaluated_is_logged_once_per_reason(start_service, sink, log_lines, tmp_path):
    spec = [{"title": "Broken", "enabled": True, "if": '"x" in properties.tags', "actions": [{"type": "DROP"}]}]
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(spec))
    _, stub = await start_service(filters=str(path))
    for i in range(3):
        event = {"type": "track", "event": "E", "timestamp": TS, "messageId": f"f-{i}", "properties": {"tags": 5}}
        response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=json.dumps(event)), timeout=5)
        assert response.filtered_by == "Broken"
    warnings = [line for line in log_lines() if line["level"] == "warning"]
    assert [(line["event"], line["filter"]) for line in warnings] == [("filter condition cannot be evaluated: events dropped", "Broken")]
    assert warnings[0]["error"]


async def test_queued_and_filtered_lines_and_results(start_service, sink, log_lines, tmp_path):
    """Queued calls log queued and their outbox ids, filtered ones the filter; a batch counts both; a
    queued result names its subscription and action like a delivered one."""
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps([{"title": "No tests", "enabled": True, "if": 'event = "Test"', "actions": [{"type": "DROP"}]}]))
    _, stub = await start_service(
        delivery="queued", outbox=f"sqlite:///{tmp_path / 'outbox.db'}", filters=str(filters), api_key=API_KEY, sitecode=SITECODE
    )

    def track(message_id: str, name: str = "Signed Up") -> pb.SendRequest:
        return pb.SendRequest(event_json=json.dumps({"type": "track", "event": name, "timestamp": TS, "messageId": message_id}))

    typed = await stub.LogEvent(pb.LogEventRequest(event="e", timestamp=TS, message_id="q-1"), timeout=5)
    await stub.LogEvent(pb.LogEventRequest(event="Test", timestamp=TS, message_id="q-2"), timeout=5)
    sent = await stub.Send(pb.SendRequest(event_json=track("q-3").event_json), timeout=5)
    await stub.Send(pb.SendRequest(event_json=track("q-4", "Test").event_json), timeout=5)
    invalid = pb.SendRequest(event_json=json.dumps({"type": "track", "event": "e", "messageId": "q-8", "timestamp": "yesterday"}))
    batch = await stub.SendBatch(
        pb.SendBatchRequest(requests=[track("q-5"), track("q-6", "Test"), track("q-7"), invalid, track("q-9", "Test")]), timeout=5
    )
    assert (typed.queued, typed.outbox_id) == (True, "1")
    queued_result = ("Track Calls", "logEvent", True)
    assert [(r.subscription, r.action, r.queued, r.outbox_id) for r in sent.results] == [(*queued_result, "2")]
    assert [[(r.subscription, r.action, r.queued, r.outbox_id) for r in response.results] for response in batch.responses] == [
        [(*queued_result, "3")],
        [],
        [(*queued_result, "4")],
        [],
        [],
    ]
    assert [response.filtered_by for response in batch.responses] == ["", "No tests", "", "", "No tests"]
    typed_line = {"event": "rpc", "method": "LogEvent", "action": "logEvent", "http_status": 0, "attempts": 0, "duplicate": False, "code": "OK"}
    send_line = {"event": "rpc", "method": "Send", "attempts": 0, "code": "OK"}
    assert await rpc_lines_of(log_lines, 5) == [
        {**typed_line, "message_id": "q-1", "queued": True, "outbox_id": "1"},
        {**typed_line, "message_id": "q-2", "filtered_by": "No tests", "discard_reason": "FILTERED_BY_RULES"},
        {**send_line, "message_id": "q-3", "matched": ["logEvent"], "http_status": [0], "outbox_id": ["2"]},
        {**send_line, "message_id": "q-4", "matched": [], "http_status": [], "filtered_by": "No tests", "discard_reason": "FILTERED_BY_RULES"},
        {"event": "rpc", "method": "SendBatch", "code": "OK", "events": 5, "delivered": 0, "queued": 2, "failed": 1, "filtered": 2, "discarded": 2},
    ]
    [failed] = [line for line in log_lines() if line["event"] == "event failed"]
    assert (failed["method"], failed["message_id"], failed["code"]) == ("SendBatch", "q-8", "INVALID_ARGUMENT")


def test_a_handler_failing_unexpectedly_writes_its_error_and_an_internal_rpc_line(log_lines):
    """A bug in a handler (an exception that is no CallError) still ends the RPC with its one line,
    code INTERNAL, after an error line carrying the traceback. No RPC can be made to fail this way
    on purpose, so the handlers' own context manager is driven directly."""
    from service.api.servicer import _rpc_log

    with pytest.raises(ZeroDivisionError):
        with _rpc_log("Send", {"events": 1}):
            raise ZeroDivisionError("division by zero")
    failed, line = log_lines()
    assert (failed["event"], failed["level"], failed["method"]) == ("rpc failed", "error", "Send")
    assert "ZeroDivisionError" in failed["exception"]
    assert (line["event"], line["method"], line["code"], line["events"]) == ("rpc", "Send", "INTERNAL", 1)
