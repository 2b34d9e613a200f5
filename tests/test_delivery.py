"""Delivery policy against a real HTTP stand-in: retries, status mapping, deadlines, settings."""

from __future__ import annotations

import asyncio
import io
import json
import time

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2, status_pb2

from kameleoon.destination.v1 import destination_pb2 as pb
from service.config import Config
from service.delivery.client import KameleoonClient, retry_after_seconds
from service.delivery.credentials import resolve
from service.demo.sink import KameleoonSink, Reply
from service.errors import DeadlineExceeded
from service.ops import logs
from tests.conftest import API_KEY, SETTINGS, SITECODE, bad_request_field, eventually

TS = "2024-03-15T12:34:56.789Z"


def track(**overrides) -> pb.LogEventRequest:
    fields = {"settings": SETTINGS, "event": "Signed Up", "timestamp": TS, "message_id": "m-1", **overrides}
    return pb.LogEventRequest(**fields)


def details(error: grpc.aio.AioRpcError) -> list:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return list(status_pb2.Status.FromString(value).details)
    return []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 423, 429])
async def test_retryable_status_is_retried_then_delivered_once(stub, sink, status):
    sink.script.append(Reply(status=status, body="busy"))
    response = await stub.LogEvent(track(), timeout=10)
    assert (response.http_status, response.attempts) == (200, 2)
    first, second = sink.received
    assert first.body == second.body


async def test_retry_after_is_honoured(start_service, sink):
    _, stub = await start_service(backoff_max_s=2)
    sink.script.append(Reply(status=429, headers={"Retry-After": "1"}))
    response = await stub.LogEvent(track(), timeout=10)
    assert response.attempts == 2
    first, second = sink.received
    # The stand-in's own clock: the retry came no sooner than Retry-After after the 429 went out
    # (the backoff alone would have waited at most backoff_base_s, 0.01 s here).
    assert second.arrived - first.answered >= 1


async def test_retry_after_as_an_http_date_is_read_against_the_clock(stub, sink):
    """An HTTP-date already past asks for no wait: the retry goes as the backoff says; one decades
    ahead is beyond any backoff: the call gives up at once, handing the caller the date's distance."""
    sink.script.append(Reply(status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    response = await stub.LogEvent(track(), timeout=10)
    assert (response.http_status, response.attempts) == (200, 2)
    sink.script.append(Reply(status=503, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(message_id="m-2"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_details_pb2.RetryInfo()
    assert details(raised.value)[0].Unpack(info)
    assert info.retry_delay.seconds > 50 * 365 * 86400  # 2100, decades ahead of any clock this runs on
    assert len(sink.received) == 3


async def test_retry_after_beyond_backoff_cap_gives_up_with_hint(stub, sink):
    sink.script.append(Reply(status=503, headers={"Retry-After": "120"}))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    [detail] = details(raised.value)
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    assert info.retry_delay.seconds == 120
    assert len(sink.received) == 1


async def test_persistent_failure_ends_unavailable_after_max_attempts(start_service, sink):
    _, stub = await start_service(max_attempts=4)
    sink.default = Reply(status=503, body="down for maintenance")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "4 attempt" in raised.value.details()
    assert "down for maintenance" in raised.value.details()
    assert len(sink.received) == 4


async def test_an_answer_that_is_not_utf8_is_read_with_replacement_characters(start_service, sink):
    """Kameleoon's answer (or a proxy's before it) need not be UTF-8: its words reach the caller with
    U+FFFD where a byte was not, whether it asks for a retry, refuses, or accepts."""
    _, stub = await start_service(max_attempts=1)
    sink.script.append(Reply(status=503, body=b"\xffbusy \xe9t\xe9"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "HTTP 503 (Kameleoon answered: \ufffdbusy \ufffdt\ufffd)" in raised.value.details()
    sink.script.append(Reply(status=400, body=b"\xffrefused"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(message_id="m-2"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().endswith("(HTTP 400): the request was not accepted and will not be retried. Kameleoon answered: \ufffdrefused")
    sink.script.append(Reply(status=200, body=b"\xff"))
    response = await stub.LogEvent(track(message_id="m-3"), timeout=10)
    assert (response.http_status, response.attempts) == (200, 1)
    assert len(sink.received) == 3


@pytest.mark.parametrize(
    "status, code",
    [
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (404, grpc.StatusCode.INVALID_ARGUMENT),
        (413, grpc.StatusCode.INVALID_ARGUMENT),
        (422, grpc.StatusCode.INVALID_ARGUMENT),
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (403, grpc.StatusCode.PERMISSION_DENIED),
        (501, grpc.StatusCode.UNIMPLEMENTED),
    ],
)
async def test_final_status_is_not_retried(stub, sink, status, code):
    sink.default = Reply(status=status, body='{"error":"' + "x" * 1000 + '"}')
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(), timeout=10)
    assert raised.value.code() == code
    assert f"HTTP {status}" in raised.value.details()
    assert len(raised.value.details()) < 600, "Kameleoon's answer is truncated"
    assert len(sink.received) == 1


async def test_dropped_connection_is_retried(stub, sink):
    sink.script.append(Reply(drop=True))
    response = await stub.LogEvent(track(), timeout=10)
    assert response.attempts == 2
    assert len(sink.received) == 2


async def test_refused_connection_ends_unavailable(start_service, sink):
    await sink.stop()
    _, stub = await start_service(max_attempts=2)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "connection" in raised.value.details()


async def test_slow_attempt_times_out_and_is_retried(start_service, sink):
    _, stub = await start_service(timeout_s=0.3)
    sink.script.append(Reply(hold=asyncio.Event()))  # never answered
    response = await stub.LogEvent(track(), timeout=10)
    assert response.attempts == 2
    first, second = sink.received
    await eventually(lambda: first.abandoned is not None, what="the service gave up on the slow attempt")
    assert first.answered is None and second.answered is not None


async def test_deadline_ends_the_attempt_in_flight_with_our_own_answer(start_service, sink, log_lines):
    """The attempt's timeout is cut to the caller's deadline: the service ends the attempt itself and
    answers DEADLINE_EXCEEDED (its log line and metrics say so), rather than being cancelled by gRPC."""
    app, stub = await start_service()  # an attempt may take timeout_s = 10 s, far more than the deadline
    sink.default = Reply(hold=asyncio.Event())  # Kameleoon never answers
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(message_id="dl-1"), timeout=1)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    [attempt] = sink.received
    await eventually(lambda: attempt.abandoned is not None, what="the HTTP request was cancelled")
    await eventually(lambda: any(line["event"] == "rpc" for line in log_lines()), what="the RPC's log line")
    [line] = [line for line in log_lines() if line["event"] == "rpc"]
    assert (line["code"], line["attempts"], line["message_id"]) == ("DEADLINE_EXCEEDED", 1, "dl-1")
    assert "while Kameleoon was answering" in line["error"]
    sample = app.metrics.registry.get_sample_value
    assert sample("kameleoon_rpc_total", {"method": "LogEvent", "code": "DEADLINE_EXCEEDED"}) == 1
    assert sample("kameleoon_deliveries_total", {"action": "logEvent", "http_status": "none"}) == 1
    assert sample("kameleoon_events_in_flight") == 0, "nothing left waiting on Kameleoon"
    assert len(sink.received) == 1, "no retry started after the deadline"


async def ended_by_the_service_at_its_deadline(app, raised: grpc.aio.AioRpcError, log_lines, method: str) -> dict:
    """The call ended with the service's own DEADLINE_EXCEEDED (its words in its log line, its metric), not
    gRPC's cancellation at the deadline (a line saying CANCELLED): the attempt's timeout was cut to the
    caller's deadline. Read on the service's side: the client may see its own deadline pass first, on a
    loaded machine, as the service answers only DEADLINE_RESERVE_S (50 ms) before it."""
    assert raised.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await eventually(lambda: any(line["event"] == "rpc" for line in log_lines()), what="the RPC's log line")
    [line] = [line for line in log_lines() if line["event"] == "rpc"]
    assert (line["method"], line["code"], line.get("attempts")) == (method, "DEADLINE_EXCEEDED", 1)
    assert line.get("error") == "the call's deadline passed while Kameleoon was answering (attempt 1)"
    assert app.metrics.registry.get_sample_value("kameleoon_rpc_total", {"method": method, "code": "DEADLINE_EXCEEDED"}) == 1
    return line


async def test_a_redirect_that_hangs_ends_at_the_callers_deadline(start_service, sink, log_lines):
    """The request a redirect asks for keeps the attempt's timeout, cut to the caller's deadline (timeout_s
    is 30 s here): the redirected POST is abandoned at the deadline, with the service's own answer."""
    app, stub = await start_service(timeout_s=30.0)
    sink.script.extend([Reply(status=307, headers={"Location": sink.url}), Reply(hold=asyncio.Event())])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(message_id="m-307-hang"), timeout=1)
    await ended_by_the_service_at_its_deadline(app, raised.value, log_lines, "LogEvent")
    first, moved = sink.received
    assert (first.status, moved.method) == (307, "POST")
    await eventually(lambda: moved.abandoned is not None, what="the redirected request was cancelled")
    assert len(sink.received) == 2, "no retry started after the deadline"


async def test_a_credential_check_that_hangs_ends_at_the_callers_deadline(start_service, sink, log_lines):
    """TestAuthentication's GET under a deadline nearer than timeout_s (30 s): ended by the service at the deadline."""
    app, stub = await start_service(timeout_s=30.0)
    sink.script.append(Reply(hold=asyncio.Event()))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=1)
    await ended_by_the_service_at_its_deadline(app, raised.value, log_lines, "TestAuthentication")
    [check] = sink.received
    assert check.method == "GET"
    await eventually(lambda: check.abandoned is not None, what="the GET was cancelled")


async def test_a_credential_check_that_hangs_without_a_nearer_deadline_ends_at_the_attempts_timeout(start_service, sink):
    """TestAuthentication's GET with a deadline far off: its attempt still ends at timeout_s (0.3 s), UNAVAILABLE."""
    _, stub = await start_service(timeout_s=0.3, max_attempts=1)
    sink.script.append(Reply(hold=asyncio.Event()))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "Kameleoon is unavailable: no answer within 0.3 s after 1 attempt(s)"
    [check] = sink.received
    await eventually(lambda: check.abandoned is not None, what="the GET was cancelled")


async def test_only_a_redirect_status_with_a_location_is_followed(start_service, sink):
    """A Location header on a 200, a 400 or a 500 is not a redirect: one request each, the answer taken as it is."""
    _, stub = await start_service(max_attempts=1)
    moved = {"Location": sink.url}  # followed, it would be a second POST to the stand-in (answered 200)
    sink.script.append(Reply(status=200, headers=moved))
    assert (await stub.LogEvent(track(message_id="loc-200"), timeout=10)).http_status == 200
    for status, code in ((400, grpc.StatusCode.INVALID_ARGUMENT), (500, grpc.StatusCode.UNAVAILABLE)):
        sink.script.append(Reply(status=status, headers=moved))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.LogEvent(track(message_id=f"loc-{status}"), timeout=10)
        assert raised.value.code() == code and f"HTTP {status}" in raised.value.details()
    assert [(r.json()["messageId"], r.status) for r in sink.received] == [("loc-200", 200), ("loc-400", 400), ("loc-500", 500)]


def code_name(number: int) -> str:
    return next(code.name for code in grpc.StatusCode if code.value[0] == number)


async def _log_event(stub, settings):
    response = await stub.LogEvent(track(settings=settings, message_id="rpc-1"), timeout=5)
    return "OK", response.attempts


async def _send(stub, settings):
    response = await stub.Send(pb.SendRequest(settings=settings, event_json=RAW), timeout=5)
    return "OK", sum(r.attempts for r in response.results)


async def _send_batch(stub, settings):
    response = await stub.SendBatch(pb.SendBatchRequest(settings=settings, requests=[pb.SendRequest(event_json=RAW)]), timeout=5)
    [one] = response.responses
    return code_name(one.status.code), one.status.message


async def _send_stream(stub, settings):
    async def requests():
        yield pb.SendRequest(settings=settings, event_json=RAW)

    [one] = [r async for r in stub.SendStream(requests(), timeout=5)]
    return code_name(one.status.code), one.status.message


async def _test_authentication(stub, settings):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=settings), timeout=5)
    return ("OK" if response.ok else "NOT OK"), response.message


RAW = json.dumps({"type": "track", "event": "Signed Up", "timestamp": TS, "messageId": "raw-1"})
CALLS = {"LogEvent": _log_event, "Send": _send, "SendBatch": _send_batch, "SendStream": _send_stream, "TestAuthentication": _test_authentication}


@pytest.mark.parametrize("method", CALLS)
async def test_no_retry_starts_that_could_not_finish_before_the_deadline(start_service, sink, method):
    """Kameleoon asks to come back in 20 s; the caller gives 5 s. Every RPC gives up at once with
    the service's own answer, and the stand-in sees one attempt. (A service that ignored the
    deadline would sleep 20 s and be cut off by gRPC with DEADLINE_EXCEEDED.)"""
    _, stub = await start_service(backoff_max_s=60)
    sink.script.append(Reply(status=503, body="busy", headers={"Retry-After": "20"}))
    try:
        outcome, detail = await CALLS[method](stub, SETTINGS)
    except grpc.aio.AioRpcError as exc:
        outcome, detail = exc.code().name, exc.details()
    expected = "NOT OK" if method == "TestAuthentication" else "UNAVAILABLE"
    assert (outcome, len(sink.received)) == (expected, 1), detail
    assert "after 1 attempt" in detail and "busy" in detail


@pytest.mark.parametrize(
    "defaults, message",
    [
        ({}, "settings.api_key is missing: send settings in the request or set KAMELEOON_API_KEY on the server"),
        ({"api_key": API_KEY}, "settings.sitecode is missing: send settings in the request or set KAMELEOON_SITECODE on the server"),
    ],
)
async def test_missing_settings_fail_precondition_naming_the_setting(start_service, sink, defaults, message):
    _, stub = await start_service(**defaults)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(settings=None), timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == message
    assert sink.received == []


async def test_server_defaults_fill_missing_settings(start_service, sink):
    _, stub = await start_service(api_key=API_KEY, sitecode=SITECODE)
    await stub.LogEvent(track(settings=None), timeout=5)
    [received] = sink.received
    assert received.headers["authorization"] == f"Basic {API_KEY}"
    assert received.headers["x-segment-settings"] == SITECODE


async def test_request_settings_win_over_defaults(start_service, sink):
    _, stub = await start_service(api_key="c2VydmVyLWtleQ==", sitecode="server0001")
    await stub.LogEvent(track(settings=pb.Settings(sitecode="request001")), timeout=5)
    [received] = sink.received
    assert received.headers["authorization"] == "Basic c2VydmVyLWtleQ=="
    assert received.headers["x-segment-settings"] == "request001"


@pytest.mark.parametrize(
    "settings, field, message",
    [
        (pb.Settings(api_key=API_KEY, sitecode="short"), "settings.sitecode", "settings.sitecode must be exactly 10 characters, got 5"),
        (
            pb.Settings(api_key="", sitecode=SITECODE),
            "settings.api_key",
            "settings.api_key is empty and the server has no default (KAMELEOON_API_KEY)",
        ),
        (pb.Settings(api_key="   ", sitecode=SITECODE), "settings.api_key", "settings.api_key is blank"),
        (pb.Settings(api_key=API_KEY), "settings.sitecode", "settings.sitecode is empty and the server has no default (KAMELEOON_SITECODE)"),
    ],
)
async def test_bad_settings_are_invalid_argument(stub, sink, settings, field, message):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(settings=settings), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == message
    assert bad_request_field(raised.value) == field
    assert sink.received == []


@pytest.mark.parametrize(
    "overrides, field",
    [({"timestamp": ""}, "timestamp"), ({"message_id": ""}, "messageId"), ({"timestamp": "2023-02-29T00:00:00Z"}, "timestamp")],
)
async def test_invalid_event_names_the_field_and_sends_nothing(stub, sink, overrides, field):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(**overrides), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.details()
    assert bad_request_field(raised.value) == field
    assert sink.received == []


async def test_group_requires_group_id(stub, sink):
    request = pb.GroupEventRequest(settings=SETTINGS, timestamp=TS, message_id="g-1")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GroupEvent(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "groupId" in raised.value.details()


async def test_page_message_id_is_optional(stub, sink):
    response = await stub.PageEvent(pb.PageEventRequest(settings=SETTINGS, timestamp=TS), timeout=5)
    assert response.http_status == 200
    assert "messageId" not in sink.received[0].json()


async def test_concurrent_calls_share_the_pool(stub, sink):
    calls = [stub.LogEvent(track(message_id=f"m-{i}"), timeout=10) for i in range(50)]
    responses = await asyncio.gather(*calls)
    assert all(r.http_status == 200 for r in responses)
    assert sorted(r.json()["messageId"] for r in sink.received) == sorted(f"m-{i}" for i in range(50))


@pytest.mark.parametrize("attempts, ceiling", [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)])
async def test_backoff_is_full_jitter_under_a_doubling_ceiling(attempts, ceiling):
    """Between 0 and min(backoff_max_s, backoff_base_s * 2 ** (attempt - 1)), spread over all of it.
    (Checked on the policy itself: through the stand-in only a wall-clock bound could see it.)"""
    client = KameleoonClient(Config(backoff_base_s=0.1, backoff_max_s=0.5))
    delays = [client._backoff(attempts, None) for _ in range(2000)]
    assert 0 <= min(delays) < ceiling * 0.05 and ceiling * 0.95 < max(delays) <= ceiling
    assert client._backoff(attempts, 0.5) == 0.5 and client._backoff(attempts, 0.6) is None, "Retry-After up to the cap"


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


async def test_a_300_is_not_a_delivery(start_service, sink):
    """Only 2xx counts as delivered: Kameleoon answering 300 (the first status past 299) is an
    unexpected answer, UNAVAILABLE, counted as a final attempt."""
    app, stub = await start_service(max_attempts=1)
    sink.script.append(Reply(status=300))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(message_id="m-300"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "unexpected answer (HTTP 300)" in raised.value.details()
    sample = app.metrics.registry.get_sample_value
    assert sample("kameleoon_http_attempts_total", {"action": "logEvent", "http_status": "3xx_other"}) == 1
    assert sample("kameleoon_delivery_attempts_total", {"action": "logEvent", "outcome": "final"}) == 1


async def test_a_redirect_on_the_same_origin_is_followed_with_the_same_request(stub, sink):
    """Kameleoon answering 307 to its own URL: the POST goes again, same body and headers (fetch and
    aiohttp both keep the method, the body and the Authorization header on a same-origin 307)."""
    sink.script.append(Reply(status=307, headers={"Location": sink.url}))
    response = await stub.LogEvent(track(message_id="m-307"), timeout=10)
    assert (response.http_status, response.attempts) == (200, 1)
    first, second = sink.received
    assert (first.method, first.status, second.method, second.status) == ("POST", 307, "POST", 200)
    assert second.body == first.body and second.headers == first.headers


async def test_no_cookie_is_kept_from_one_answer_to_the_next_request(start_service, sink):
    """Like Segment's fetch, the client keeps no cookies: a cookie Kameleoon sets on a redirect is not
    sent with the request the redirect asks for, nor with any later one (a host name, not an IP
    address: aiohttp's cookie jar would ignore an IP's cookies anyway)."""
    url = f"http://localhost:{sink.port}{sink.path}"
    _, stub = await start_service(base_url=url)
    sink.script.append(Reply(status=307, headers={"Location": url, "Set-Cookie": "session=s1; Path=/"}))
    await stub.LogEvent(track(message_id="m-c1"), timeout=10)
    sink.script.append(Reply(headers={"Set-Cookie": "other=s2; Path=/"}))
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=10)
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=10)
    assert [r.method for r in sink.received] == ["POST", "POST", "GET", "GET"]
    assert [r.headers.get("cookie") for r in sink.received] == [None] * 4


async def test_a_redirect_to_another_origin_drops_the_authorization(stub, sink):
    """308 to another host: the POST follows with its body but without the apiKey's Authorization header."""
    other = await KameleoonSink().start()
    try:
        sink.script.append(Reply(status=308, headers={"Location": other.url}))
        response = await stub.LogEvent(track(message_id="m-308"), timeout=10)
        assert response.http_status == 200
        [first] = sink.received
        [moved] = other.received
        assert moved.method == "POST" and moved.body == first.body
        assert "authorization" in first.headers and "authorization" not in moved.headers
        assert {name: value for name, value in first.headers.items() if name not in ("authorization", "host")}.items() <= moved.headers.items()
    finally:
        await other.stop()


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_302_answer_to_a_post_is_followed_with_a_get(stub, sink, status):
    """302 (and 301, 303) to a POST: the next request is a GET without the body, as fetch and aiohttp do;
    here the stand-in's getapikey route answers it (401: no apiKey in the query). The Location is relative,
    resolved against the endpoint's URL."""
    sink.script.append(Reply(status=status, headers={"Location": "/segmentio/getapikey"}))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LogEvent(track(message_id=f"m-{status}"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED and "(HTTP 401)" in raised.value.details()
    first, moved = sink.received
    assert (first.method, moved.method, moved.path, moved.body) == ("POST", "GET", "/segmentio/getapikey", "")
    assert moved.headers.get("authorization") == first.headers["authorization"]


async def test_a_timed_out_attempt_leaves_its_task_as_it_found_it(sink):
    """The attempt's own timeout ends it as timed out and retries; the task is left with no cancellation
    counted (as asyncio.timeout leaves it), so a caller's own timeout or task group still reads it right;
    a cancellation from elsewhere stays a cancellation."""
    config = Config(base_url=sink.url, timeout_s=1.0, max_attempts=2, backoff_base_s=0.01)
    creds = resolve(SETTINGS, config)
    sink.script.append(Reply(delay=5))
    async with KameleoonClient(config) as client:
        delivered = await client.post(b"{}", creds, action="logEvent")
        assert (delivered.http_status, delivered.attempts) == (200, 2)
        assert asyncio.current_task().cancelling() == 0
        # Two attempts of 0.6 s, longer than timeout_s in all: a timer the attempts before left running would cancel it.
        sink.script.extend([Reply(status=503, delay=0.6), Reply(delay=0.6)])
        delivered = await client.post(b"{}", creds, action="logEvent")
        assert (delivered.http_status, delivered.attempts) == (200, 2)
        sink.script.append(Reply(delay=5))
        posting = asyncio.ensure_future(client.post(b"{}", creds, action="logEvent"))
        await sink.wait_for(5)
        posting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await posting
    assert len(sink.received) == 5, "a cancelled post is not retried"


async def test_a_client_closes_its_connections_once_and_refuses_posts_before_start(sink):
    """close() before start() and a second close() do nothing; close() ends the kept-alive connections
    (the stand-in sees them go); a post before start() is a programming error, said as such."""
    config = Config(base_url=sink.url, max_attempts=1)
    creds = resolve(SETTINGS, config)
    client = KameleoonClient(config)
    await client.close()
    with pytest.raises(AssertionError, match=r"^KameleoonClient\.start\(\) was not awaited$"):
        await client.post(b"{}", creds, action="logEvent")
    await client.start()
    assert (await client.post(b"{}", creds, action="logEvent")).http_status == 200
    assert sink.open_connections == 1, "kept alive after the answer"
    await client.close()
    await eventually(lambda: sink.open_connections == 0, what="the stand-in seeing the connection closed")
    await client.close()
    assert len(sink.received) == 1


async def test_a_backoff_overslept_past_the_deadline_ends_the_call_before_another_attempt(sink, restore_logging):
    """The event loop can wake from a backoff later than asked (here a log write blocks it, as a full
    pipe would): past the caller's deadline, no attempt starts; the call ends with the count so far."""

    def blocking_write(logger, method, event_dict):
        if event_dict["event"] == "attempt failed":
            time.sleep(0.8)  # the line is written after the decision to retry, before the backoff
        return event_dict

    logs.configure("debug", "json", stream=io.StringIO())
    structlog.configure(processors=[blocking_write, *structlog.get_config()["processors"]])
    config = Config(base_url=sink.url, max_attempts=5, backoff_base_s=0.01)
    sink.script.append(Reply(status=503))
    async with KameleoonClient(config) as client:
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceeded) as raised:
            await client.post(b"{}", resolve(SETTINGS, config), deadline=loop.time() + 0.5, action="logEvent")
    assert str(raised.value) == "the call's deadline passed after 1 attempt(s)"
    assert raised.value.attempts == 1
    assert len(sink.received) == 1
