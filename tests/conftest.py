"""Shared fixtures: a real sink standing in for Kameleoon, a real gRPC server on a free port,
the service's own log lines; and ``eventually``, to wait for a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import pathlib

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2, status_pb2

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service import jsonwire
from service.api import servicer
from service.api.server import create_server
from service.config import Config
from service.delivery import client as delivery
from service.delivery import credentials
from service.demo.sink import KameleoonSink
from service.ops import logs
from tests.outbox.pg import outbox_url, own_postgres, postgres, postgres_apart, postgres_url  # noqa: F401 -- PostgreSQL for any test

# Tests that do not read log lines leave structlog at its defaults, whose console renderer draws an
# exception with rich (every frame and its locals) when rich is installed, as mutmut's dependencies
# make it: about a second per traceback. The service renders one as plain text (logs.configure's
# format_exc_info); so do the tests.
_renderer = structlog.get_config()["processors"][-1]
assert isinstance(_renderer, structlog.dev.ConsoleRenderer), _renderer
structlog.configure(
    processors=[*structlog.get_config()["processors"][:-1], structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
)

GOLDENS = pathlib.Path(__file__).parent / "goldens"
# base64 of {"id":"demo-id","secret":"demo-secret"}; the goldens were recorded with it.
API_KEY = "eyJpZCI6ImRlbW8taWQiLCJzZWNyZXQiOiJkZW1vLXNlY3JldCJ9"
SITECODE = "0123456789"
SETTINGS = pb.Settings(api_key=API_KEY, sitecode=SITECODE)


def golden(name: str) -> dict:
    """A golden file, read as JavaScript reads JSON (numbers are doubles)."""
    return jsonwire.loads((GOLDENS / name).read_text())


# Under mutation testing (make mutate) a mutant's tests run quickest first, by the durations mutmut
# measured on the unmutated code (mutmut-stats.json, in the directory the tests run from): pytest
# stops at the first failure, so most mutants are caught after a few cheap tests.
def _durations() -> dict[str, float]:
    try:
        return json.loads(pathlib.Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}


DURATIONS = _durations() if os.environ.get("MUTANT_UNDER_TEST") is not None else {}


def pytest_collection_modifyitems(items):
    if os.environ.get("MUTANT_UNDER_TEST"):
        took = DURATIONS or _durations()
        items.sort(key=lambda item: took.get(item.nodeid, 0.0))


def plain_id(text: str) -> str:
    """A test id for any text: printable ASCII kept, every other character (and the backslash) as "?".
    pytest escapes them with backslashes, and a second collection in the same process, as make
    mutate's children do, does not find such ids again: their tests would never run against a mutant."""
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in text)


def bad_request_field(error: grpc.aio.AioRpcError) -> str:
    """The field named by the one BadRequest detail of ``error`` (its description is the error's text)."""
    [(_, value)] = [item for item in error.trailing_metadata() if item[0] == "grpc-status-details-bin"]
    [detail] = status_pb2.Status.FromString(value).details
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    [violation] = bad_request.field_violations
    assert violation.description == error.details()
    return violation.field


def patience(timeout: float) -> float:
    """How long a poll waits before it fails: ``timeout``, or a third of it for a mutant's tests under
    make mutate (MUTANT_UNDER_TEST names one). A mutant that stops an event arriving is caught only
    when a poll gives up; the unmutated code meets every condition in a small part of the time."""
    return timeout / 3 if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "") else timeout


async def eventually(predicate, timeout: float = 10.0, what: str = "") -> None:
    """Wait until ``predicate()`` holds (awaited when it is a coroutine function, such as an RPC's check),
    checking every few milliseconds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    timeout = patience(timeout)
    give_up = loop.time() + timeout
    while not (await predicate() if inspect.iscoroutinefunction(predicate) else predicate()):
        if loop.time() > give_up:
            pytest.fail(f"still not true after {timeout} s: {what or predicate}")
        await asyncio.sleep(0.005)


@pytest.fixture(autouse=True)
def fresh_caches():
    """The values the service makes once per process (credentials with their headers, answers) are
    made anew in every test: no test leans on what an earlier one made, and `make mutate` sees every
    test that runs the code making them."""
    credentials._credentials.cache_clear()
    delivery._DELIVERED.clear()
    servicer._RESPONSES.clear()
    yield


@pytest.fixture(autouse=True)
def logging_left_as_found():
    """Every test leaves structlog's (process-wide) configuration as it found it."""
    before = structlog.get_config()
    yield
    assert structlog.get_config() == before, "structlog was reconfigured and not restored: use the restore_logging fixture"


@pytest.fixture
def restore_logging():
    """structlog's configuration as it was before the test, put back after it."""
    saved = structlog.get_config()
    yield
    logs.restore(saved)


@pytest.fixture
def log_lines(restore_logging):
    """The service's log lines in this test, as dicts: ``log_lines()`` reads what was written so far."""
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
async def sink():
    sink = await KameleoonSink().start()
    yield sink
    await sink.stop()


@pytest.fixture
async def start_service(sink):
    """Start a service on a free port, Kameleoon being the sink; returns (app, stub).

    Keyword arguments are Config fields; ``interceptors`` are extra server interceptors."""
    running = []

    async def start(interceptors=(), **overrides):
        config = Config(**{"base_url": sink.url, "backoff_base_s": 0.01, "backoff_max_s": 0.05, **overrides})
        app = await create_server(config, "127.0.0.1:0", interceptors=interceptors)
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
