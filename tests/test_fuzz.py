"""Property-based fuzzing over typed requests and raw events, through the real server.

Whatever comes in: never INTERNAL or UNKNOWN, the service keeps serving, and
a rejected event sends nothing to Kameleoon.
"""

from __future__ import annotations

import json

import grpc
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kameleoon.destination.v1 import destination_pb2 as pb
from tests.conftest import SETTINGS

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
PRESETS = {"track": "logEvent", "page": "page", "identify": "identify", "group": "group"}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20
)
timestamps = st.one_of(
    st.just("2024-03-15T12:34:56.789Z"),
    st.text(max_size=30),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([zZ]|[+-]\d\d:\d\d)?", fullmatch=True),
)


def struct_of(value: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


async def call(coroutine):
    try:
        return await coroutine, None
    except grpc.aio.AioRpcError as exc:
        return None, exc


@FUZZ
@given(
    strings=st.fixed_dictionaries(
        {name: st.text(max_size=12) for name in ("anonymous_id", "user_id", "event", "type", "kameleoon_visitor_code", "message_id")}
    ),
    timestamp=timestamps,
    properties=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    number=st.floats(),
)
async def test_typed_requests_never_fail_internally(stub, sink, strings, timestamp, properties, number):
    before = len(sink.received)
    request = pb.LogEventRequest(settings=SETTINGS, timestamp=timestamp, **strings)
    if properties is not None:
        request.properties.CopyFrom(struct_of(properties))
        request.properties.fields["n"].number_value = number  # NaN and infinities too
    response, error = await call(stub.LogEvent(request, timeout=10))
    if error is not None:
        assert error.code() not in BAD_CODES, error.details()
        assert len(sink.received) == before, "a refused event sends nothing"
    elif response.duplicate:  # this messageId was delivered by an earlier example: not sent again
        assert (response.http_status, response.attempts, len(sink.received)) == (0, 0, before)
    else:
        assert (response.http_status, response.attempts, len(sink.received)) == (200, 1, before + 1)
        body = json.loads(sink.received[-1].body)
        assert isinstance(body["properties"], dict) and body["timestamp"] == timestamp
        assert body["messageId"] == strings["message_id"] == response.message_id


events = st.one_of(
    st.dictionaries(
        st.sampled_from(["type", "event", "name", "userId", "anonymousId", "messageId", "timestamp", "properties", "traits", "context", "groupId"]),
        json_values,
        max_size=8,
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["track", "page", "identify", "group", "alias", "screen"]),
            "timestamp": timestamps,
            "messageId": st.text(max_size=8),
        },
        optional={
            "properties": json_values,
            "traits": json_values,
            "context": json_values,
            "groupId": json_values,
            "event": json_values,
            "name": json_values,
        },
    ),
)


@FUZZ
@given(event=events)
async def test_raw_events_never_fail_internally(stub, sink, event):
    before = len(sink.received)
    response, error = await call(stub.Send(pb.SendRequest(settings=SETTINGS, event_json=json.dumps(event)), timeout=10))
    if error is not None:
        assert error.code() not in BAD_CODES, error.details()
        assert len(sink.received) == before, "a refused event sends nothing"
    else:
        sent = [r for r in response.results if not r.duplicate]
        assert all((r.http_status, r.attempts) == (200, 1) for r in sent)
        assert all((r.http_status, r.attempts) == (0, 0) for r in response.results if r.duplicate)
        assert len(response.results) <= 1, "one preset at most matches an event"
        assert len(sink.received) - before == len(sent)
        preset = PRESETS.get(event["type"]) if isinstance(event.get("type"), str) else None
        assert [r.action for r in response.results] == ([preset] if preset else [])


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=100).map(lambda b: b.decode("latin-1")))
async def test_arbitrary_event_text_is_refused_cleanly(stub, sink, text):
    response, error = await call(stub.Send(pb.SendRequest(settings=SETTINGS, event_json=text), timeout=10))
    if error is not None:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "event_json" in error.details()
        assert sink.received == []
    else:  # only a JSON object is accepted; random text that is one has no type a preset takes
        assert isinstance(json.loads(text), dict)
        assert list(response.results) == [] and sink.received == []
