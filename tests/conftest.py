"""Shared fixtures: a real sink standing in for Kameleoon, a real gRPC server on a free port."""

from __future__ import annotations

import pathlib

import grpc
import pytest

from service import jsonwire
from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.config import Config
from service.server import create_server
from service.sink import KameleoonSink
from tests.outbox.pg import outbox_url, own_postgres, postgres, postgres_apart, postgres_url  # noqa: F401 -- PostgreSQL for any test

GOLDENS = pathlib.Path(__file__).parent / "goldens"
# base64 of {"id":"demo-id","secret":"demo-secret"}; the goldens were recorded with it.
API_KEY = "eyJpZCI6ImRlbW8taWQiLCJzZWNyZXQiOiJkZW1vLXNlY3JldCJ9"
SITECODE = "0123456789"
SETTINGS = pb.Settings(api_key=API_KEY, sitecode=SITECODE)


def golden(name: str) -> dict:
    """A golden file, read as JavaScript reads JSON (numbers are doubles)."""
    return jsonwire.loads((GOLDENS / name).read_text())


@pytest.fixture
async def sink():
    sink = await KameleoonSink().start()
    yield sink
    await sink.stop()


@pytest.fixture
async def start_service(sink):
    """Start a service on a free port, Kameleoon being the sink; returns (app, stub)."""
    running = []

    async def start(**overrides):
        config = Config(**{"base_url": sink.url, "backoff_base_s": 0.01, "backoff_max_s": 0.05, **overrides})
        app = await create_server(config, "127.0.0.1:0")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        running.append((app, channel))
        return app, pb_grpc.KameleoonDestinationStub(channel)

    yield start
    for app, channel in running:
        await channel.close()
        await app.stop(grace=0)


@pytest.fixture
async def stub(start_service):
    _, stub = await start_service()
    return stub
