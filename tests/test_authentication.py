"""TestAuthentication: sitecode length, apiKey decoding, then Kameleoon's getapikey endpoint."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.sink import Reply
from tests.conftest import API_KEY, SITECODE


def key(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


async def test_valid_credentials(stub, sink):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=API_KEY, sitecode=SITECODE)))
    assert response.ok is True
    [received] = sink.received
    assert (received.method, received.path, received.query) == ("GET", "/segmentio/getapikey", "id=demo-id&secret=demo-secret")


async def test_values_are_url_encoded(stub, sink):
    api_key = key({"id": "a b&c=d", "secret": "s/é?#", "n": 5})
    await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key, sitecode=SITECODE)))
    [received] = sink.received
    assert received.query == "id=a%20b%26c%3Dd&secret=s%2F%C3%A9%3F%23&n=5"


async def test_wrong_sitecode_length(stub, sink):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=API_KEY, sitecode="123")))
    assert response.ok is False
    assert "sitecode" in response.message
    assert sink.received == []


@pytest.mark.parametrize("api_key", ["not base64 !!!", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b"{oops").decode()])
async def test_api_key_that_is_not_base64_json(stub, sink, api_key):
    response = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key, sitecode=SITECODE)))
    assert response.ok is False
    assert "api_key" in response.message
    assert api_key not in response.message
    assert sink.received == []


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
