"""Typed RPCs against Segment's runtime: for every recorded payload, the same request reaches Kameleoon."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import json_format

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.server import create_server
from service.config import Config
from service.demo.sink import KameleoonSink
from service.errors import InvalidArgument
from service.jsonwire import dumps
from service.routing.actions import ACTIONS
from tests.conftest import SETTINGS, golden

GOLDEN = golden("actions.json")
CASES = GOLDEN["cases"]
METHODS = {"logEvent": "LogEvent", "identify": "IdentifyEvent", "page": "PageEvent", "group": "GroupEvent"}


def typed_request(action_slug: str, payload: dict):
    """The typed gRPC request carrying a Segment payload."""
    action = ACTIONS[action_slug]
    request = action.request(settings=SETTINGS)
    for field in action.fields:
        if field.name not in payload:
            continue
        value = payload[field.name]
        if field.type == "object":
            json_format.ParseDict(value, getattr(request, field.proto))
        else:
            setattr(request, field.proto, value)
    return request


def sorted_objects(value):
    """Nested objects with sorted keys: protobuf Structs carry no key order."""
    if isinstance(value, dict):
        return {key: sorted_objects(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_objects(item) for item in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_payload_pipeline_matches_runtime(case):
    """The shared pipeline (validation + perform) on the raw payload gives Segment's exact body or rejection."""
    action = ACTIONS[case["action"]]
    expected = case["result"]
    # The runtime was fed the payload through @path mappings in field order.
    payload = {f.name: case["payload"][f.name] for f in action.fields if f.name in case["payload"]}
    if "error" in expected:
        with pytest.raises(InvalidArgument) as raised:
            action.validate(payload)
        if expected["error"].get("kind") == "TypeError":
            # The runtime crashes on these after validation and sends nothing; we refuse them by name.
            assert raised.value.field.startswith("context")
            return
        assert raised.value.field in expected["error"]["fields"]
        for field in expected["error"]["fields"]:
            assert field in str(raised.value)
    else:
        body = dumps(action.body(action.validate(payload)))
        assert body.decode() == expected["request"]["body"]


@pytest.fixture(scope="module")
async def golden_service():
    """One stand-in and one service for every typed-RPC golden of this module: a server per case was
    most of each case's time. The cases share messageIds, so the duplicate check is off here
    (idempotency_window_s=0; test_reliability and test_send check it): each case is delivered as if
    it came first. Returns (sink, stub)."""
    sink = await KameleoonSink().start()
    config = Config(base_url=sink.url, backoff_base_s=0.01, backoff_max_s=0.05, idempotency_window_s=0)
    app = await create_server(config, "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    yield sink, pb_grpc.KameleoonDestinationStub(channel)
    await channel.close()
    await app.stop(grace=0)
    await sink.stop()


@pytest.fixture
def golden_stub_and_sink(golden_service):
    """The module's service, what its stand-in received in earlier cases forgotten."""
    sink, stub = golden_service
    sink.received.clear()
    return stub, sink


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
async def test_typed_rpc_matches_runtime(case, golden_stub_and_sink):
    stub, sink = golden_stub_and_sink
    action = ACTIONS[case["action"]]
    payload = case["payload"]
    expected = case["result"]
    call = getattr(stub, METHODS[case["action"]])
    if case["name"].endswith("properties-deep-nesting"):
        # Deeper than a protobuf Struct can carry: refused clearly, nothing sent (Send takes such events as JSON).
        expected = {"error": {"fields": ["decoded"]}}
    if not payload.get("type"):
        # The typed API fills an empty type with the action's natural type (Segment would reject the
        # payload): expect what the pipeline, checked against the runtime above, makes of that.
        filled = {
            f.name: payload[f.name] if f.name != "type" else action.natural_type for f in action.fields if f.name in payload or f.name == "type"
        }
        try:
            expected = {"request": {**CASES[0]["result"]["request"], "body": dumps(action.body(action.validate(filled))).decode()}}
        except InvalidArgument as exc:
            expected = {"error": {"fields": [exc.field]}}
    if "error" in expected:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(typed_request(case["action"], payload), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any(field in raised.value.details() for field in expected["error"]["fields"] or ["context"])
        assert sink.received == []
        return
    response = await call(typed_request(case["action"], payload), timeout=10)
    assert (response.http_status, response.attempts) == (200, 1)
    [received] = sink.received
    want = expected["request"]
    assert received.method == want["method"]
    assert received.path == "/segmentio"
    for name, value in want["headers"].items():
        assert received.headers[name] == value
    got, wanted = json.loads(received.body), json.loads(want["body"])
    assert list(got) == list(wanted), "top-level keys and their order"
    assert sorted_objects(got) == sorted_objects(wanted)
    if "properties" not in payload and "context" not in payload:
        assert received.body == want["body"]


def test_payload_of_leaves_out_empty_fields():
    request = pb.PageEventRequest(timestamp="2024-01-01T00:00:00Z", user_id="", name="Home")
    assert ACTIONS["page"].payload_of(request) == {"type": "page", "name": "Home", "timestamp": "2024-01-01T00:00:00Z"}


def test_every_action_has_its_typed_rpc():
    service = pb.DESCRIPTOR.services_by_name["KameleoonDestination"]
    typed = {m.name for m in service.methods if m.output_type.name == "ActionResponse"}
    assert typed == {action.rpc for action in ACTIONS.values()}
    for action in ACTIONS.values():
        assert service.methods_by_name[action.rpc].input_type is action.request.DESCRIPTOR


def test_a_field_no_action_knows_is_dropped_and_the_fields_after_it_still_checked():
    """removeAdditional: an unknown key is left out of the payload, and the ones after it are validated as usual."""
    action = ACTIONS["logEvent"]
    event = {"type": "track", "notAField": 1, "timestamp": "2024-01-01T00:00:00Z", "messageId": "m"}
    assert action.validate(event) == {"type": "track", "timestamp": "2024-01-01T00:00:00Z", "messageId": "m"}
    with pytest.raises(InvalidArgument) as raised:
        action.validate({**event, "timestamp": "yesterday"})
    assert raised.value.field == "timestamp"
