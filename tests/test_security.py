"""Bearer tokens, TLS and mutual TLS on the gRPC port; the Kameleoon URL is configuration only."""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from tests.conftest import SETTINGS, SITECODE

TS = "2024-03-15T12:34:56.789Z"
TRACK = pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id="sec-1")


async def test_calls_need_a_valid_bearer_token(start_service, sink):
    app, stub = await start_service(auth_tokens=("tok-a", "tok-b"))
    for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "tok-a"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.LogEvent(TRACK, metadata=metadata, timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "tok-a" not in raised.value.details()
    assert sink.received == []
    response = await stub.LogEvent(TRACK, metadata=(("authorization", "Bearer tok-b"),), timeout=5)
    assert response.http_status == 200


async def test_streams_need_a_token_too(start_service, sink):
    _, stub = await start_service(auth_tokens=("tok",))

    async def requests():
        yield pb.SendRequest(settings=SETTINGS, event_json='{"type":"track","timestamp":"' + TS + '","messageId":"x"}')

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stub.SendStream(requests(), timeout=5):
            pass
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert sink.received == []


async def test_health_stays_open(start_service):
    app, _ = await start_service(auth_tokens=("tok",))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> pathlib.Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    root = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca")
    (root / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        )
    return root


async def test_tls(start_service, sink, pki):
    app, _ = await start_service(tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"))
    credentials = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{app.port}", credentials) as channel:
        response = await pb_grpc.KameleoonDestinationStub(channel).LogEvent(TRACK, timeout=5)
    assert response.http_status == 200
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.KameleoonDestinationStub(channel).LogEvent(TRACK, timeout=3)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(sink.received) == 1


async def test_mutual_tls_requires_a_client_certificate(start_service, sink, pki):
    app, _ = await start_service(tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), tls_client_ca=str(pki / "ca.pem"))
    ca = (pki / "ca.pem").read_bytes()
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(f"127.0.0.1:{app.port}", anonymous) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await pb_grpc.KameleoonDestinationStub(channel).LogEvent(TRACK, timeout=3)
    assert sink.received == []
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=(pki / "client.key").read_bytes(), certificate_chain=(pki / "client.pem").read_bytes()
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{app.port}", with_cert) as channel:
        response = await pb_grpc.KameleoonDestinationStub(channel).LogEvent(TRACK, timeout=5)
    assert response.http_status == 200


def request_field_names() -> set[str]:
    """Every field any RPC's request can carry, nested messages included."""
    names: set[str] = set()
    seen: set[str] = set()
    pending = [method.input_type for service in pb.DESCRIPTOR.services_by_name.values() for method in service.methods]
    while pending:
        message = pending.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        for field in message.fields:
            names.add(field.name)
            if field.message_type is not None:
                pending.append(field.message_type)
    return names


def test_no_request_field_can_choose_where_events_go():
    """Nothing a caller sends names a URL or host: the endpoint is server configuration only.
    (Answers may show it: Preview reports the URL a request would go to.)"""
    names = request_field_names()
    assert {"api_key", "sitecode", "event"} <= names
    assert not {name for name in names if any(word in name for word in ("url", "host", "endpoint", "base"))}


SECRET = "s3cr3t-value-42"
SECRET_KEY = base64.b64encode(json.dumps({"id": "sec-id", "secret": SECRET}).encode()).decode()


async def test_settings_are_never_echoed(stub, sink):
    """The texts a caller gets back (error details, a batch event's status, TestAuthentication's
    message) never hold the apiKey nor its decoded secret, whatever went wrong."""
    texts = []

    async def failing(call):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        texts.append(raised.value.details())

    def track(settings, **fields):
        return pb.LogEventRequest(settings=settings, **{"event": "e", "timestamp": TS, "message_id": "sec-2", **fields})

    await failing(stub.LogEvent(track(pb.Settings(api_key=SECRET_KEY, sitecode="short")), timeout=5))
    await failing(stub.LogEvent(track(pb.Settings(api_key=SECRET_KEY, sitecode=SITECODE), timestamp="yesterday"), timeout=5))
    sink.script.append(Reply(status=401, body='{"error":"unknown api key"}'))
    await failing(stub.LogEvent(track(pb.Settings(api_key=SECRET_KEY, sitecode=SITECODE)), timeout=5))
    batch = await stub.SendBatch(
        pb.SendBatchRequest(
            requests=[
                pb.SendRequest(settings=pb.Settings(api_key=SECRET_KEY, sitecode="short"), event_json='{"type":"track"}'),
                pb.SendRequest(settings=pb.Settings(api_key=SECRET_KEY, sitecode=SITECODE), event_json='{"type":"track","timestamp":"yesterday"}'),
            ]
        ),
        timeout=5,
    )
    texts += [r.status.message for r in batch.responses]
    for api_key in (SECRET_KEY, "not-base64-" + SECRET, base64.b64encode(SECRET.encode()).decode()):
        auth = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=pb.Settings(api_key=api_key, sitecode=SITECODE)), timeout=5)
        texts.append(auth.message)
    assert all(texts) and len(texts) == 8, texts
    for text in texts:
        assert SECRET_KEY not in text and SECRET not in text, text
