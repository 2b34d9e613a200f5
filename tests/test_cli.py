"""The console script as an operator runs it: serve, sink, bad config, SIGTERM with calls in flight."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import signal
import socket
import sys
import tomllib

import aiohttp
import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from tests.conftest import API_KEY, SETTINGS

SCRIPT = str(pathlib.Path(sys.executable).parent / "kameleoon-destination")
SECRET = "demo-secret"  # what API_KEY decodes to, with the id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start(*args: str, env: dict | None = None) -> asyncio.subprocess.Process:
    assert os.path.exists(SCRIPT), f"{SCRIPT} is missing: `make install` installs the console script (pyproject's [project.scripts])"
    return await asyncio.create_subprocess_exec(
        SCRIPT,
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


# While the process starts, each refused connection makes gRPC wait before trying again: 1 s, then
# 1.6 times longer each time (its defaults), so a service ready after 2.7 s was seen at 4.7 s. The
# wait for it retries every 50-100 ms instead.
QUICK_RECONNECT = (("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 100))


async def wait_serving(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=QUICK_RECONNECT) as channel:
        await asyncio.wait_for(channel.channel_ready(), 20)


async def wait_workers_serving(process: asyncio.subprocess.Process, workers: int) -> list[str]:
    """Read ``process``'s stderr until each of its ``workers`` logged "serving" (JSON logs); the lines read.

    ``wait_serving`` returns once one worker listens: a test that needs every worker to answer
    waits for this too, so that the kernel has them all to choose from."""
    lines: list[str] = []
    serving: set = set()

    async def read() -> None:
        while len(serving) < workers:
            line = await process.stderr.readline()
            assert line, "the process ended before its workers were serving:\n" + "".join(lines)
            lines.append(line.decode(errors="replace"))
            entry = json.loads(line) if line.startswith(b"{") else {}
            if entry.get("event") == "serving":
                serving.add(entry.get("worker"))

    await asyncio.wait_for(read(), 30)
    return lines


@pytest.mark.parametrize(
    "variable, value",
    [
        ("KAMELEOON_MAX_ATTEMPTS", "zero"),
        ("KAMELEOON_SITECODE", "short"),
        ("KAMELEOON_BASE_URL", "ftp://x"),
        ("KAMELEOON_LOG_FORMAT", "xml"),
        ("KAMELEOON_SITECODE", "012345678\udc80"),
    ],  # the byte 0x80 in the environment: not UTF-8
)
async def test_bad_config_fails_at_start_naming_the_key(variable, value):
    process = await start("serve", "--listen", f"127.0.0.1:{free_port()}", env={variable: value})
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert variable in err.decode()
    if value.endswith("\udc80"):
        assert "must be UTF-8 text" in err.decode()


async def test_version_is_pyprojects_and_the_changelog_has_it():
    """--version prints the installed distribution's version, pyproject.toml's; CHANGELOG.md has a section for it."""
    root = pathlib.Path(__file__).parent.parent
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    process = await start("--version")
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert out.decode().strip() == f"kameleoon-destination {version}"
    assert f"## [{version}] - " in (root / "CHANGELOG.md").read_text()


async def test_secret_config_is_never_echoed():
    process = await start("serve", env={"KAMELEOON_API_KEY": API_KEY, "KAMELEOON_SITECODE": "bad"})
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert API_KEY not in err.decode()


async def test_sigterm_drains_calls_in_flight(sink):
    sink.default = Reply(delay=1.5)
    port = free_port()
    env = {"KAMELEOON_BASE_URL": sink.url, "KAMELEOON_GRACE_S": "10", "KAMELEOON_LOG_FORMAT": "json"}
    process = await start("serve", "--listen", f"127.0.0.1:{port}", env=env)
    try:
        await wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            calls = [
                asyncio.ensure_future(
                    stub.LogEvent(pb.LogEventRequest(settings=SETTINGS, event="e", timestamp="2024-01-01T00:00:00Z", message_id=f"m-{i}"), timeout=20)
                )
                for i in range(10)
            ]
            await sink.wait_for(10)
            process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*calls)
        assert [r.http_status for r in responses] == [200] * 10
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0
        lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
        rpc_lines = [line for line in lines if line["event"] == "rpc"]
        assert len(rpc_lines) == 10
        assert {"method", "action", "message_id", "code", "http_status", "attempts", "duration_ms"} <= set(rpc_lines[0])
        assert any(line["event"] == "stopped" for line in lines)
        assert API_KEY not in err.decode() and SECRET not in err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_logs_never_hold_secrets(sink):
    sink.default = Reply(status=401, body='{"error":"bad key"}')
    port = free_port()
    process = await start("serve", "--listen", f"127.0.0.1:{port}", env={"KAMELEOON_BASE_URL": sink.url, "KAMELEOON_LOG_LEVEL": "debug"})
    try:
        await wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.LogEvent(pb.LogEventRequest(settings=SETTINGS, timestamp="2024-01-01T00:00:00Z", message_id="m"), timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert API_KEY not in raised.value.details()
            sink.script.append(Reply(status=401, body='{"error":"bad key"}'))
            auth = await stub.TestAuthentication(pb.TestAuthenticationRequest(settings=SETTINGS), timeout=5)
            assert auth.ok is False and SECRET not in auth.message
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        text = err.decode()
        assert "UNAUTHENTICATED" in text
        assert API_KEY not in text and SECRET not in text and "demo-id" not in text
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sink_prints_each_request_as_a_json_line():
    port = free_port()
    process = await start("sink", "--listen", f"127.0.0.1:{port}")
    try:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            for _ in range(50):
                try:
                    async with session.post(
                        f"http://127.0.0.1:{port}/segmentio",
                        data=b'{"type":"track"}',
                        headers={"authorization": f"Basic {API_KEY}", "x-segment-settings": "0123456789"},
                    ) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        line = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
        assert line["body"] == {"type": "track"}
        assert line["headers"]["x-segment-settings"] == "0123456789"
        assert API_KEY not in json.dumps(line)
    finally:
        process.terminate()
        await process.wait()


async def test_demo_shows_four_deliveries():
    process = await start("demo")
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "4 of 4 events delivered" in text
    assert "4 of 4 queued events delivered after the outage" in text
    assert "2 of 2 destination instances of one source received its event" in text
    assert "the operator's page answered with the delivery overview" in text and "default/default" in text
    assert "x-segment-settings=web0000001 messageId=demo-workspace-1" in text and "x-segment-settings=app0000001" in text
    for method in ("LogEvent", "IdentifyEvent", "PageEvent", "GroupEvent"):
        assert f"{method} -> http_status=200" in text


async def test_workers_share_the_port_and_drain_on_sigterm(sink):
    port, page = free_port(), free_port()
    env = {"KAMELEOON_BASE_URL": sink.url, "KAMELEOON_WORKERS": "2", "KAMELEOON_LOG_FORMAT": "json", "KAMELEOON_ADMIN_LISTEN": f"127.0.0.1:{page}"}
    process = await start("serve", "--listen", f"127.0.0.1:{port}", env=env)
    try:
        await wait_serving(port)
        early = await wait_workers_serving(process, 2)
        workers_seen = set()
        for i in range(40):
            # a fresh connection each time, so the kernel can pick either worker
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=(("grpc.use_local_subchannel_pool", 1),)) as channel:
                stub = pb_grpc.KameleoonDestinationStub(channel)
                response = await stub.LogEvent(
                    pb.LogEventRequest(settings=SETTINGS, event="e", timestamp="2024-01-01T00:00:00Z", message_id=f"w-{i}"), timeout=10
                )
                assert response.http_status == 200
        # Each worker's operator's page on its own port (page, page + 1), each counting that worker's events.
        received = []
        async with aiohttp.ClientSession() as session:
            for each in (page, page + 1):
                async with session.get(f"http://127.0.0.1:{each}/?window=10m") as answer:
                    assert answer.status == 200
                    received += [int(n) for n in re.findall(r'<td class="received">(\d+)', await answer.text())]
        assert sum(received) == 40
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0
        for line in ("".join(early) + err.decode()).splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "rpc":
                workers_seen.add(json.loads(line)["worker"])
        assert workers_seen == {0, 1}
        assert len(sink.received) == 40
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_bad_subscriptions_file_stops_start_up_naming_the_subscription(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text('- name: Alias as Log Event\n  subscribe: type = "alias"\n  partnerAction: logEvent\n  mapping: {nope: x}\n')
    process = await start("serve", "--listen", f"127.0.0.1:{free_port()}", env={"KAMELEOON_MAPPINGS": str(path)})
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "Alias as Log Event" in err.decode() and "nope" in err.decode()
