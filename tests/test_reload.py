"""Configuration that changes without a restart: SIGHUP (a real process, and every worker),
a file replaced, a ConfigMap-style symlinked directory swapped, a bad file refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import grpc
import structlog

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from tests.conftest import SETTINGS, patience
from tests.test_cli import free_port, start, wait_serving

TS = "2024-01-01T00:00:00Z"


def drop(event_name: str, title: str | None = None) -> list[dict]:
    return [{"title": title or f"Drop {event_name}", "enabled": True, "if": f'event = "{event_name}"', "actions": [{"type": "DROP"}]}]


def subscription(name: str) -> list[dict]:
    return [
        {
            "name": name,
            "subscribe": 'type = "track"',
            "partnerAction": "logEvent",
            "mapping": {"event": {"@path": "$.event"}, "type": "track", "timestamp": TS, "messageId": {"@path": "$.messageId"}},
        }
    ]


def replace(path, data) -> None:
    """Write next to the file, then rename over it, as editors and config tools do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


async def send(stub, event: str, message_id: str = "") -> pb.SendResponse:
    return await stub.Send(
        pb.SendRequest(
            settings=SETTINGS, event_json=json.dumps({"type": "track", "event": event, "timestamp": TS, "messageId": message_id or event})
        ),
        timeout=10,
    )


async def eventually(condition, timeout: float = 20.0, every: float = 0.05):
    """Poll ``condition`` (a coroutine function) until it returns something true."""
    deadline = asyncio.get_running_loop().time() + patience(timeout)
    while True:
        result = await condition()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


def reloads(app, config: str, result: str) -> float:
    return app.metrics.registry.get_sample_value("kameleoon_config_reloads_total", {"config": config, "result": result}) or 0


def version_in_force(app, config: str) -> str:
    versions = [
        s.labels["version"]
        for m in app.metrics.registry.collect()
        if m.name == "kameleoon_config_version_info"
        for s in m.samples
        if s.labels["config"] == config and s.value == 1
    ]
    assert len(versions) == 1, versions
    return versions[0]


async def test_replacing_the_filters_file_reloads_it(start_service, sink, tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(drop("A")))
    app, stub = await start_service(filters=str(path), config_poll_s=0.05, idempotency_window_s=0)
    first = version_in_force(app, "filters")
    assert (await send(stub, "A")).filtered_by == "Drop A"
    assert (await send(stub, "B")).filtered_by == ""
    replace(path, drop("B"))
    await eventually(lambda: _filtered(stub, "B", "Drop B"))
    assert (await send(stub, "A")).filtered_by == ""
    assert version_in_force(app, "filters") == app.reloader.versions["filters"] != first
    assert reloads(app, "filters", "applied") == 1 and reloads(app, "filters", "refused") == 0


async def _filtered(stub, event: str, title: str) -> bool:
    return (await send(stub, event)).filtered_by == title


async def test_editing_the_subscriptions_file_in_place_reloads_it(start_service, sink, tmp_path):
    path = tmp_path / "subs.json"
    path.write_text(json.dumps(subscription("Old")))
    app, stub = await start_service(mappings=str(path), config_poll_s=0.05, idempotency_window_s=0)
    assert [r.subscription for r in (await send(stub, "e", "m1")).results] == ["Old"]
    path.write_text(json.dumps(subscription("New")))  # in place: same inode

    async def routed_by_new() -> bool:
        return [r.subscription for r in (await send(stub, "e", "m2")).results] == ["New"]

    await eventually(routed_by_new)
    assert reloads(app, "subscriptions", "applied") == 1


async def test_a_configmap_style_directory_swap_reloads_the_filters(start_service, sink, tmp_path):
    """Kubernetes mounts a ConfigMap as name -> ..data/name, ..data -> ..<timestamp>/; an update
    writes a new timestamped directory and renames a new ..data symlink over the old one."""
    mount = tmp_path / "config"
    mount.mkdir()

    def publish(version: str, data) -> None:
        directory = mount / f"..2024_01_01_{version}"
        directory.mkdir()
        (directory / "filters.json").write_text(json.dumps(data))
        os.symlink(directory.name, mount / "..data_tmp")
        os.replace(mount / "..data_tmp", mount / "..data")

    publish("1", drop("A"))
    os.symlink("..data/filters.json", mount / "filters.json")
    app, stub = await start_service(filters=str(mount / "filters.json"), config_poll_s=0.05, idempotency_window_s=0)
    assert (await send(stub, "A")).filtered_by == "Drop A"
    publish("2", drop("B"))
    await eventually(lambda: _filtered(stub, "B", "Drop B"))
    assert (await send(stub, "A")).filtered_by == ""
    assert reloads(app, "filters", "applied") == 1


async def test_a_bad_new_file_is_refused_and_the_old_one_stays(start_service, sink, tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(drop("A")))
    app, stub = await start_service(filters=str(path), config_poll_s=0.05, idempotency_window_s=0)
    before = version_in_force(app, "filters")
    bad = drop("B")
    bad[0]["if"] = 'event = "B" and'
    with structlog.testing.capture_logs() as logs:
        replace(path, bad)

        async def refused() -> bool:
            return reloads(app, "filters", "refused") >= 1

        await eventually(refused)
    assert (await send(stub, "A")).filtered_by == "Drop A"  # the old filters are still in force
    assert (await send(stub, "B")).filtered_by == ""
    assert version_in_force(app, "filters") == before
    (line,) = [entry for entry in logs if entry["event"].startswith("configuration reload refused")]
    assert line["log_level"] == "error" and line["config"] == "filters" and line["version_in_force"] == before
    assert "filter #1 'Drop B'" in line["error"] and "bad FQL in if at line 1, column 16" in line["error"]
    # fixed again: taken
    replace(path, drop("B"))
    await eventually(lambda: _filtered(stub, "B", "Drop B"))


async def test_a_bad_subscriptions_file_is_refused_and_the_old_one_stays(start_service, sink, tmp_path):
    path = tmp_path / "subs.json"
    path.write_text(json.dumps(subscription("Old")))
    app, stub = await start_service(mappings=str(path), config_poll_s=0, idempotency_window_s=0)
    bad = subscription("Broken")
    bad[0]["partnerAction"] = "nope"
    replace(path, bad)
    assert app.reloader.reload() == {"subscriptions": "refused", "filters": "unchanged"}
    assert [r.subscription for r in (await send(stub, "e")).results] == ["Old"]
    path.unlink()
    assert app.reloader.reload(("subscriptions",)) == {"subscriptions": "refused"}  # a missing file too


async def test_events_in_flight_finish_under_the_configuration_they_started_with(start_service, sink, tmp_path):
    subs, filters = tmp_path / "subs.json", tmp_path / "filters.json"
    subs.write_text(json.dumps(subscription("Old")))
    filters.write_text(json.dumps(drop("never")))
    app, stub = await start_service(mappings=str(subs), filters=str(filters), config_poll_s=0, idempotency_window_s=0)
    sink.default = Reply(delay=0.5)
    in_flight = asyncio.ensure_future(send(stub, "slow", "m1"))
    await sink.wait_for(1)  # mapped, filtered and on its way to Kameleoon
    subs.write_text(json.dumps(subscription("New")))
    filters.write_text(json.dumps(drop("slow")))
    assert app.reloader.reload() == {"subscriptions": "applied", "filters": "applied"}
    response = await in_flight
    assert response.filtered_by == "" and [r.subscription for r in response.results] == ["Old"]
    sink.default = Reply()
    assert (await send(stub, "slow", "m2")).filtered_by == "Drop slow"
    assert [r.subscription for r in (await send(stub, "fast", "m3")).results] == ["New"]


async def test_an_unchanged_file_is_not_reloaded(start_service, sink, tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(drop("A")))
    app, _ = await start_service(filters=str(path), config_poll_s=0.05)
    version = app.reloader.versions["filters"]
    path.write_text(json.dumps(drop("A")))  # touched, same bytes

    async def seen() -> bool:
        return reloads(app, "filters", "unchanged") >= 1

    await eventually(seen)
    assert app.reloader.versions["filters"] == version and reloads(app, "filters", "applied") == 0


# -- real processes --------------------------------------------------------------------------


class Stderr:
    """Collects a process's JSON log lines as they come."""

    def __init__(self, process):
        self.lines: list[dict] = []
        self._task = asyncio.ensure_future(self._read(process.stderr))

    async def _read(self, stream) -> None:
        while line := await stream.readline():
            if line.startswith(b"{"):
                self.lines.append(json.loads(line))

    def named(self, event: str) -> list[dict]:
        return [line for line in self.lines if line["event"] == event]

    async def close(self) -> None:
        await self._task


async def _stop(process, stderr: Stderr) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
    await stderr.close()


async def test_sighup_reloads_every_worker_of_a_running_service(sink, tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(drop("A")))
    port = free_port()
    env = {
        "KAMELEOON_BASE_URL": sink.url,
        "KAMELEOON_FILTERS": str(path),
        "KAMELEOON_CONFIG_POLL_S": "0",
        "KAMELEOON_LOG_FORMAT": "json",
        "KAMELEOON_WORKERS": "2",
        "KAMELEOON_IDEMPOTENCY_WINDOW_S": "0",
    }
    process = await start("serve", "--listen", f"127.0.0.1:{port}", env=env)
    stderr = Stderr(process)
    try:
        await wait_serving(port)
        await eventually(lambda: _true(len(stderr.named("serving")) == 2))
        first = {line["filters_version"] for line in stderr.named("serving")}
        assert len(first) == 1 and {line["subscriptions_version"] for line in stderr.named("serving")} == {"presets"}
        path.write_text(json.dumps(drop("B")))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:  # polling is off: nothing before the signal
            assert (await send(pb_grpc.KameleoonDestinationStub(channel), "B", "early")).filtered_by == ""
        process.send_signal(signal.SIGHUP)  # to the parent, which passes it to each worker
        await eventually(lambda: _true(len(stderr.named("configuration reloaded")) == 2))
        reloaded = stderr.named("configuration reloaded")
        assert {line["worker"] for line in reloaded} == {0, 1}
        assert {(line["config"], line["reason"], line["previous"]) for line in reloaded} == {("filters", "SIGHUP", first.pop())}
        for i in range(20):  # fresh connections, so both workers answer
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=(("grpc.use_local_subchannel_pool", 1),)) as channel:
                stub = pb_grpc.KameleoonDestinationStub(channel)
                assert (await send(stub, "B", f"b{i}")).filtered_by == "Drop B"
                assert (await send(stub, "A", f"a{i}")).filtered_by == ""
        served = {line["worker"] for line in stderr.lines if line["event"] == "rpc"}
    finally:
        await _stop(process, stderr)
    assert process.returncode == 0
    assert served == {0, 1}


async def _true(value: bool) -> bool:
    return value
