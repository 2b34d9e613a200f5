"""Segment's HTTP Tracking API, driven by Segment's own libraries (segment-analytics-python, @segment/analytics-node)
and by hand where a library never goes (analytics.js' short paths, limits, broken bodies), asserting on what reached
the stand-in, the answers, the metrics and the log line."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import pathlib
import shutil
import subprocess

import aiohttp
import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.api import http as http_api
from service.demo.sink import Reply
from tests.conftest import API_KEY, SITECODE, eventually
from tests.test_metrics import scrape

WRITE_KEY = "wk_test_1"
NODE_CLIENT = pathlib.Path(__file__).parent / "clients" / "node"
TS = "2026-11-28T10:00:00.000Z"


@pytest.fixture
async def http_service(start_service, tmp_path):
    """The service with the HTTP Tracking API on a free port (queued delivery, an outbox in tmp_path)."""

    async def start(**overrides):
        app, stub = await start_service(
            api_key=API_KEY,
            sitecode=SITECODE,
            http_listen=("127.0.0.1", 0),
            write_keys=(WRITE_KEY, "wk_other"),
            outbox=f"sqlite:///{tmp_path}/outbox.db",
            metrics_listen=("127.0.0.1", 0),
            **overrides,
        )
        return app, stub, f"http://127.0.0.1:{app.http_port}"

    return start


def basic(key: str, colon: bool = True) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}{':' if colon else ''}".encode()).decode()}


async def post(url: str, body: bytes | str | dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body) if isinstance(body, dict) else body
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}) as answer:
            return answer.status, await answer.json(content_type=None), dict(answer.headers)


def by_id(sink) -> dict[str, dict]:
    return {r.json()["messageId"]: r.json() for r in sink.accepted()}


# -- Segment's Python library --------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["json", "gzip"])
async def test_segments_python_library_sends_every_call_type(http_service, sink, gzipped):
    app, _, url = await http_service()

    def send() -> None:
        from segment.analytics import Client

        client = Client(WRITE_KEY, host=url, sync_mode=True, gzip=gzipped, max_retries=2)
        client.track(user_id="u-1", event="Order Completed", properties={"revenue": 42, "kameleoonVisitorCode": "vc-1"}, message_id="py-track")
        client.identify(user_id="u-1", traits={"plan": "pro"}, message_id="py-identify")
        client.page(user_id="u-1", name="Home", properties={"path": "/"}, message_id="py-page")
        client.group(user_id="u-1", group_id="acme", traits={"size": 5}, message_id="py-group")
        client.screen(user_id="u-1", name="Main", message_id="py-screen")  # no preset takes screens
        client.alias(previous_id="anon-1", user_id="u-1", message_id="py-alias")
        client.flush()

    await asyncio.to_thread(send)
    await eventually(lambda: len(sink.accepted()) == 4)
    received = by_id(sink)
    assert sorted(received) == ["py-group", "py-identify", "py-page", "py-track"]
    assert received["py-track"]["properties"] == {"revenue": 42, "kameleoonVisitorCode": "vc-1"}
    assert received["py-track"]["context"]["library"]["name"] == "analytics-python"
    assert received["py-identify"]["properties"] == {"plan": "pro"} and received["py-group"]["groupId"] == "acme"
    samples = await scrape(app.metrics_port)
    assert samples['kameleoon_http_requests_total{route="batch",status="200"}'] == 6
    assert samples['kameleoon_discarded_events_total{reason="NO_MATCHING_MAPPING"}'] == 2


async def test_the_libraries_retries_after_a_503_arrive_exactly_once(http_service, sink, tmp_path):
    """The outbox refuses (its file made immutable): 503; the library retries; writable again, each event is
    committed and delivered once."""
    app, _, url = await http_service()
    files = [tmp_path / "outbox.db", tmp_path / "outbox.db-wal"]
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and an ext* file system)")
    try:

        def send() -> None:
            from segment.analytics import Client

            client = Client(WRITE_KEY, host=url, max_retries=10)  # its consumer thread retries; flush() waits for it
            client.track(user_id="u-2", event="Retried", message_id="retry-1")
            client.flush()

        sending = asyncio.ensure_future(asyncio.to_thread(send))
        await eventually(lambda: _count_503(app) >= 1, what="a 503 answered while the outbox refused")
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=False)
    await sending
    await eventually(lambda: "retry-1" in by_id(sink))
    await asyncio.sleep(0.3)  # a second delivery would have had time to arrive (nothing is asserted on time)
    assert [r.json()["messageId"] for r in sink.accepted()] == ["retry-1"]


def _count_503(app) -> int:
    return app.metrics.http_requests.values.get(("batch", "503"), 0)


# -- Segment's Node library -----------------------------------------------------------------------


async def test_segments_node_library_sends_a_batch(http_service, sink, tmp_path):
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "node_modules" / "@segment" / "analytics-node").exists():
        if os.environ.get("CI"):
            pytest.fail("Node.js and tests/clients/node's packages are needed: .ci/run installs them (npm ci)")
        pytest.skip("run npm ci in tests/clients/node")
    _, _, url = await http_service()
    events = [{"call": "track", "userId": f"n-{i}", "event": "Node Event", "properties": {"i": i}, "messageId": f"node-{i}"} for i in range(30)]
    events += [{"call": "identify", "userId": "n-0", "traits": {"plan": "free"}, "messageId": "node-identify"}]
    events += [{"call": "page", "anonymousId": "a-1", "name": "Pricing", "messageId": "node-page"}]
    (tmp_path / "events.json").write_text(json.dumps(events))
    process = await asyncio.create_subprocess_exec(
        node,
        "send.mjs",
        url,
        WRITE_KEY,
        str(tmp_path / "events.json"),
        cwd=NODE_CLIENT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert json.loads(out.decode().strip().splitlines()[-1]) == {"ok": 32, "errors": []}
    await eventually(lambda: len(sink.accepted()) == 32)
    received = by_id(sink)
    assert received["node-7"]["properties"] == {"i": 7} and received["node-7"]["context"]["library"]["name"] == "@segment/analytics-node"
    assert received["node-page"]["name"] == "Pricing" and received["node-identify"]["properties"] == {"plan": "free"}


# -- by hand: analytics.js' paths, auth, merging, the same pipeline as gRPC -----------------------------


async def test_short_paths_text_plain_and_the_write_key_in_the_body_as_analytics_js_sends(http_service, sink):
    _, _, url = await http_service()
    body = {"userId": "u-3", "event": "Clicked", "timestamp": TS, "messageId": "js-1", "writeKey": WRITE_KEY}
    status, answer, _ = await post(f"{url}/v1/t", json.dumps(body), {"Content-Type": "text/plain"})
    assert (status, answer) == (200, {"success": True})
    (received,) = await sink.wait_for(1)
    assert received.json()["type"] == "track" and "writeKey" not in received.json()


@pytest.mark.parametrize(
    "headers, body",
    [
        ({}, {}),
        (basic("wk_unknown"), {}),
        ({}, {"writeKey": "wk_unknown"}),
        ({"Authorization": "Basic !!!"}, {}),
        ({"Authorization": f"Bearer {WRITE_KEY}"}, {}),
    ],
    ids=["none", "unknown-basic", "unknown-body", "bad-base64", "bearer"],
)
async def test_a_missing_or_unknown_write_key_is_401_and_nothing_is_sent(http_service, sink, headers, body):
    _, _, url = await http_service()
    status, answer, _ = await post(f"{url}/v1/track", {"userId": "u", "event": "E", "messageId": "x", **body}, headers)
    assert status == 401 and answer["success"] is False and answer["code"] == "unauthorized"
    assert WRITE_KEY not in json.dumps(answer)
    await asyncio.sleep(0.1)
    assert not sink.received


async def test_a_write_key_without_the_colon_is_accepted(http_service, sink):
    _, _, url = await http_service()
    status, _, _ = await post(
        f"{url}/v1/identify", {"userId": "u", "traits": {"a": 1}, "timestamp": TS, "messageId": "nc-1"}, basic("wk_other", False)
    )
    assert status == 200
    await sink.wait_for(1)


async def test_a_batch_merges_its_context_integrations_and_sent_at_into_each_item(http_service, sink):
    _, _, url = await http_service()
    batch = {
        "batch": [
            {"type": "track", "userId": "u", "event": "A", "messageId": "m-a", "context": {"ip": "1.1.1.1"}},
            {"type": "track", "userId": "u", "event": "B", "messageId": "m-b", "sentAt": "2026-11-28T09:00:00.000Z"},
            {"type": "track", "userId": "u", "event": "C", "messageId": "m-c", "integrations": {"Actions Kameleoon": True}},
        ],
        "context": {"library": {"name": "analytics-go"}, "ip": "9.9.9.9"},
        "integrations": {"All": False},
        "sentAt": "2026-11-28T10:00:00.000Z",
    }
    status, _, _ = await post(f"{url}/v1/batch", batch, basic(WRITE_KEY))
    assert status == 200
    await sink.wait_for(1)
    await asyncio.sleep(0.2)
    received = by_id(sink)
    assert list(received) == ["m-c"], "All: false from the batch applies to every item but the one that names Kameleoon"
    assert received["m-c"]["context"] == {"library": {"name": "analytics-go"}, "ip": "9.9.9.9"}


async def test_the_batch_context_is_merged_under_the_items_own(http_service, sink):
    _, _, url = await http_service()
    batch = {
        "batch": [{"type": "track", "userId": "u", "event": "A", "messageId": "m-1", "context": {"ip": "1.1.1.1"}}],
        "context": {"ip": "9.9.9.9", "locale": "fr"},
    }
    assert (await post(f"{url}/v1/import", batch, basic(WRITE_KEY)))[0] == 200
    (received,) = await sink.wait_for(1)
    assert received.json()["context"] == {"ip": "1.1.1.1", "locale": "fr"}


async def test_the_http_api_sends_what_grpc_send_sends(http_service, sink):
    _, stub, url = await http_service()
    event = {"type": "track", "userId": "u", "event": "Same", "properties": {"x": [1, 2]}, "timestamp": TS, "receivedAt": TS}
    assert (await post(f"{url}/v1/track", {**event, "messageId": "same-http"}, basic(WRITE_KEY)))[0] == 200
    await stub.Send(pb.SendRequest(event_json=json.dumps({**event, "messageId": "same-grpc"}), delivery=pb.DELIVERY_MODE_QUEUED), timeout=5)
    await eventually(lambda: len(sink.accepted()) == 2)
    bodies = {r.json()["messageId"]: r.body for r in sink.accepted()}
    assert bodies["same-http"].replace("same-http", "X") == bodies["same-grpc"].replace("same-grpc", "X")


async def test_segments_ingest_checks_drop_and_count_but_the_request_is_200(http_service, sink, log_lines):
    app, _, url = await http_service()
    batch = {
        "batch": [
            {"type": "track", "event": "No user", "messageId": "d-1"},
            {"type": "track", "userId": "u", "messageId": "d-2"},
            {"type": "track", "userId": "u", "event": "Kept", "messageId": "d-3"},
            {"type": "track", "userId": "u", "event": "Bad date", "timestamp": "yesterday", "messageId": "d-4"},
        ]
    }
    status, answer, _ = await post(f"{url}/v1/batch", batch, basic(WRITE_KEY))
    assert (status, answer) == (200, {"success": True})
    (received,) = await sink.wait_for(1)
    assert received.json()["messageId"] == "d-3"
    samples = await scrape(app.metrics_port)
    for reason in ("no_user_anon_id", "event_not_defined", "invalid_event"):
        assert samples[f'kameleoon_discarded_events_total{{reason="{reason}"}}'] == 1, reason
    [line] = [line for line in log_lines() if line["event"] == "http"]
    assert (line["api"], line["route"], line["status"], line["events"], line["dropped"], line["queued"]) == ("http", "batch", 200, 4, 3, 1)
    [dropped] = [line for line in log_lines() if line["event"] == "event dropped"]
    assert dropped["message_id"] == "d-4" and dropped["field"] == "timestamp"


# -- limits and broken bodies --------------------------------------------------------------------------


async def test_segments_limits_are_400_naming_them_and_nothing_is_stored(http_service, sink):
    _, _, url = await http_service()
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"text": "x" * 33000}, "messageId": "big"}
    status, answer, _ = await post(f"{url}/v1/batch", {"batch": [big]}, basic(WRITE_KEY))
    assert status == 400 and answer["code"] == "event_too_large" and "32768" in answer["message"] and "batch[0]" in answer["message"]
    many = {"batch": [{"type": "track", "userId": "u", "event": "E"} for _ in range(2501)]}
    status, answer, _ = await post(f"{url}/v1/batch", many, basic(WRITE_KEY))
    assert status == 400 and answer["code"] == "too_many_events" and "2500" in answer["message"]
    huge = {"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"t": "y" * 30000}} for _ in range(20)]}
    status, answer, _ = await post(f"{url}/v1/batch", huge, basic(WRITE_KEY))
    assert status == 400 and answer["code"] == "too_large" and "512000" in answer["message"]
    bomb = gzip.compress(json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"z": "0" * 600_000}}]}).encode())
    status, answer, _ = await post(f"{url}/v1/batch", bomb, {**basic(WRITE_KEY), "Content-Encoding": "gzip"})
    assert status == 400 and answer["code"] == "too_large", "a small gzip body inflating past the limit"
    await asyncio.sleep(0.1)
    assert not sink.received


@pytest.mark.parametrize(
    "body, headers, code",
    [
        (b"{not json", {}, "invalid_json"),
        (b"[1, 2]", {}, "invalid_json"),
        (b'{"userId": "\xff"}', {}, "bad_encoding"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, "bad_encoding"),
        (b'{"batch": {"type": "track"}}', {}, "invalid_batch"),
        (b'{"batch": [{"userId": "u"}]}', {}, "invalid_batch"),
    ],
    ids=["not-json", "not-an-object", "not-utf8", "bad-gzip", "batch-not-a-list", "item-without-type"],
)
async def test_broken_bodies_are_400_and_the_server_goes_on(http_service, sink, body, headers, code):
    _, _, url = await http_service()
    status, answer, _ = await post(f"{url}/v1/batch", body, {**basic(WRITE_KEY), **headers})
    assert (status, answer["success"], answer["code"]) == (400, False, code)
    status, _, _ = await post(f"{url}/v1/track", {"userId": "u", "event": "After", "messageId": "after"}, basic(WRITE_KEY))
    assert status == 200
    (received,) = await sink.wait_for(1)
    assert received.json()["messageId"] == "after"


async def test_a_body_sent_too_slowly_is_refused_and_the_server_goes_on(http_service, sink, monkeypatch):
    monkeypatch.setattr(http_api, "READ_TIMEOUT_S", 0.3)
    _, _, url = await http_service()
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n{_header(basic(WRITE_KEY))}\r\n"
    writer.write(head.encode() + b'{"userId": "u", ')  # and nothing more: a slow loris
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    assert answer.startswith(b"HTTP/1.1 400") and b'"timeout"' in answer
    writer.close()
    status, _, _ = await post(f"{url}/v1/track", {"userId": "u", "event": "E", "messageId": "alive"}, basic(WRITE_KEY))
    assert status == 200


def _header(headers: dict) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())


async def test_a_full_outbox_is_429_with_retry_after(http_service, sink):
    _, _, url = await http_service(outbox_max_pending=1)
    sink.default = Reply(status=503)  # nothing leaves the outbox
    assert (await post(f"{url}/v1/track", {"userId": "u", "event": "E", "messageId": "f-1"}, basic(WRITE_KEY)))[0] == 200
    status, answer, headers = await post(f"{url}/v1/track", {"userId": "u", "event": "E", "messageId": "f-2"}, basic(WRITE_KEY))
    assert status == 429 and answer["code"] == "outbox_full" and headers["Retry-After"].isdigit()


async def test_start_up_refuses_the_http_api_without_write_keys(start_service):
    from service.config import from_env
    from service.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        from_env({"KAMELEOON_HTTP_LISTEN": "127.0.0.1:0", "KAMELEOON_API_KEY": API_KEY, "KAMELEOON_SITECODE": SITECODE})
    assert "KAMELEOON_WRITE_KEYS" in str(raised.value)


async def test_grpc_is_unchanged_beside_it(http_service):
    _, stub, _ = await http_service()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(pb.SendRequest(event_json="{"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_huge_content_length_is_refused_before_any_body_is_read(http_service, sink):
    _, _, url = await http_service()
    reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    head = f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n{_header(basic(WRITE_KEY))}\r\n"
    writer.write(head.encode())  # a gigabyte announced, nothing sent
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    assert answer.startswith(b"HTTP/1.1 400") and b'"too_large"' in answer and b"1000000000" in answer
    writer.close()
