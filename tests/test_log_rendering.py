"""The per-RPC log line is cheap to render (service.ops.logs) and follows logs.configure() wherever it
points; tests/test_logs.py checks its fields for every RPC."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

from kameleoon.destination.v1 import destination_pb2 as pb
from service.ops import logs
from tests.conftest import SETTINGS

TS = "2024-03-15T12:34:56.789Z"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def send(message_id: str) -> pb.SendRequest:
    return pb.SendRequest(settings=SETTINGS, event_json=json.dumps({"type": "track", "event": "e", "timestamp": TS, "messageId": message_id}))


async def test_one_json_line_per_rpc_with_its_fields_where_configure_points(stub, sink, restore_logging):
    first, second = io.StringIO(), io.StringIO()
    logs.configure("info", "json", stream=first)
    before = datetime.now(UTC)
    await stub.Send(send("log-1"), timeout=10)
    after = datetime.now(UTC)
    logs.configure("info", "json", stream=second)  # loggers made for the first stream are made anew
    await stub.Send(send("log-2"), timeout=10)
    [line] = [json.loads(text) for text in first.getvalue().splitlines()]
    assert {key: line[key] for key in ("event", "level", "method", "code", "message_id", "matched", "http_status", "attempts")} == {
        "event": "rpc",
        "level": "info",
        "method": "Send",
        "code": "OK",
        "message_id": "log-1",
        "matched": ["logEvent"],
        "http_status": [200],
        "attempts": 1,
    }
    assert line["duration_ms"] > 0
    assert ISO_UTC.fullmatch(line["timestamp"]), line["timestamp"]
    assert before.replace(microsecond=0) <= datetime.fromisoformat(line["timestamp"]) <= after
    assert [json.loads(text)["message_id"] for text in second.getvalue().splitlines()] == ["log-2"]
    assert SETTINGS.api_key not in first.getvalue() + second.getvalue()


def test_the_timestamp_is_isoformat_utc_with_z():
    stamp = logs._UtcIsoStamper()
    for _ in range(3):  # the second text is reused; each call says the time of its own call
        before = datetime.now(UTC)
        text = stamp(None, "info", {})["timestamp"]
        after = datetime.now(UTC)
        assert ISO_UTC.fullmatch(text), text
        assert before.replace(microsecond=0) <= datetime.fromisoformat(text) <= after
