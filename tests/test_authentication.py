"""TestAuthentication: sitecode length, apiKey decoding, then Kameleoon's getapikey endpoint."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import API_KEY, SITECODE


def key(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


async def test_valid_credentials(stub, sink):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=API_KEY, sitecode=SITECODE)))
    assert response.ok is True
    [received] = sink.received
    assert (received.method, received.path, received.query) == ("GET", "/segmentio/getapikey", "id=demo-id&secret=demo-secret")


async def test_values_are_url_encoded(start_service, sink):
    app, stub = await start_service()
    api_key = key({"id": "a b&c=d", "secret": "s/é?#X", "n": 5, "k/X": "v"})
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key, sitecode=SITECODE)))
    [received] = sink.received
    assert received.query == "id=a%20b%26c%3Dd&secret=s%2F%C3%A9%3F%23X&n=5&k%2FX=v"
    assert received.headers["user-agent"] == "Segment (Actions)"
    sample = app.metrics.registry.get_sample_value
    assert sample("kameleoon_delivery_attempts_total", {"action": "getapikey", "outcome": "ok"}) == 1


async def test_wrong_sitecode_length(stub, sink):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=API_KEY, sitecode="123")))
    assert response.ok is False
    assert response.message == "Invalid project sitecode: it must be 10 characters. Please check your sitecode"
    assert sink.received == []


@pytest.mark.parametrize("api_key", ["not base64 !!!", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b"{oops").decode()])
async def test_api_key_that_is_not_base64_json(stub, sink, api_key):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key, sitecode=SITECODE)))
    assert response.ok is False
    assert response.message == "settings.api_key is not base64 of a JSON object"
    assert sink.received == []


@pytest.mark.parametrize(
    "api_key",
    [
        "eyJpZCI6ImkiLCJzZWNyZXQiOiI+YWI/In0=",  # standard base64 of {"id":"i","secret":">ab?"}
        "eyJpZCI6ImkiLCJzZWNyZXQiOiI-YWI_In0",  # the same, URL-safe letters and no padding
        "  eyJpZCI6ImkiLCJzZWNyZXQiOiI-YWI_In0=\n",  # around it, blanks
    ],
)
async def test_api_key_is_read_leniently_like_node(stub, sink, api_key):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key, sitecode=SITECODE)))
    assert response.ok is True
    [received] = sink.received
    assert received.query == "id=i&secret=%3Eab%3F"


async def test_api_key_missing_two_padding_characters(stub, sink):
    api_key = key({"id": "abc"})
    assert api_key.endswith("==")
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key.rstrip("="), sitecode=SITECODE)))
    assert [r.query for r in sink.received] == ["id=abc"]
    assert response.ok is False, "no secret: the stand-in answers 401"


async def test_rejected_by_kameleoon(stub, sink):
    sink.script.append(Reply(status=401, body='{"error":"unknown key"}'))
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=API_KEY, sitecode=SITECODE)))
    assert response.ok is False
    assert "401" in response.message
    assert "demo-secret" not in response.message


async def test_kameleoon_unreachable_is_unavailable(start_service, sink):
    await sink.stop()
    _, stub = await start_service(max_attempts=1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=API_KEY, sitecode=SITECODE)))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
