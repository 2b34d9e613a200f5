"""KAMELEOON_HEALTH_LISTEN: a plaintext port with grpc.health.v1 only, so probes work when the main port speaks TLS."""

from __future__ import annotations

import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.server import SERVICE_NAME, create_server
from service.config import Config, from_env
from tests.conftest import SETTINGS
from tests.test_security import pki  # noqa: F401  (the module's CA and certificates, made with openssl)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TS = "2024-03-15T12:34:56.789Z"


async def check(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return response.status


async def test_health_port_answers_in_plaintext_while_the_main_port_speaks_tls(start_service, sink, pki):  # noqa: F811
    app, _ = await start_service(tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), health_listen=("127.0.0.1", 0))
    assert app.health_port not in (None, 0, app.port)
    assert await check(app.health_port) == SERVING
    assert await check(app.health_port, SERVICE_NAME) == SERVING
    # The main port refuses plaintext, health included: what a native gRPC probe would meet there.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await check(app.port, SERVICE_NAME)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    # The health port serves nothing else: no events through it, whatever the TLS on the main port.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.health_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.KameleoonDestinationStub(channel).LogEvent(
                pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id="h-1"), timeout=5
            )
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert sink.received == []

    # It reports what the server reports: NOT_SERVING once the drain starts (SIGTERM's first step).
    await app.health.enter_graceful_shutdown()
    assert await check(app.health_port, SERVICE_NAME) == NOT_SERVING


async def test_health_port_stops_with_the_server(sink):
    app = await create_server(Config(base_url=sink.url, health_listen=("127.0.0.1", 0)), "127.0.0.1:0")
    port = app.health_port
    assert await check(port) == SERVING
    await app.stop(0)
    with pytest.raises(grpc.aio.AioRpcError):
        await check(port)


async def test_a_taken_health_port_stops_start_up_naming_the_setting(sink):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="KAMELEOON_HEALTH_LISTEN"):
            await create_server(Config(base_url=sink.url, health_listen=taken.getsockname()), "127.0.0.1:0")


def test_health_listen_is_parsed_and_off_by_default():
    assert Config().health_listen is None
    assert from_env({"KAMELEOON_HEALTH_LISTEN": "0.0.0.0:50052"}).health_listen == ("0.0.0.0", 50052)
    with pytest.raises(Exception, match="KAMELEOON_HEALTH_LISTEN"):
        from_env({"KAMELEOON_HEALTH_LISTEN": "50052"})
