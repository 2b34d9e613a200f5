"""The SQLite outbox when its storage fails, on real filesystems and real processes: a filesystem that
fills up (the headroom, and another process filling it), the file deleted or replaced under the running
service, its directory missing at start. Each time, every event answered OK reaches the stand-in once
the fault ends, nothing needs a restart that the fault did not demand, and health says so when it does.

The small filesystems are tmpfs mounts the tests make (root; CI runs as root).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from tests.test_cli import SCRIPT, free_port
from tests.test_outbox_processes import finish, serve, service_env
from tests.test_queued import delivered_ids, track, until

MiB = 1024 * 1024
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


@pytest.fixture
def small_fs(tmp_path):
    """A directory on a tmpfs of its own: ``small_fs(bytes)`` mounts it and returns its path."""
    mounted = []

    def mount(size: int):
        if os.geteuid() != 0:
            if os.environ.get("CI"):
                pytest.fail("these tests mount a tmpfs: run them as root (CI does)")
            pytest.skip("mounting a tmpfs needs root")
        path = tmp_path / f"fs{len(mounted)}"
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory, keep: int = 0) -> None:
    """Another process's file taking every byte of ``directory``'s filesystem but ``keep``."""
    with open(directory / "filler", "wb") as file:
        chunk = b"\0" * 65536
        try:
            while shutil.disk_usage(directory).free > keep + len(chunk):
                file.write(chunk)
                file.flush()
            file.write(b"\0" * max(shutil.disk_usage(directory).free - keep, 0))
            file.flush()
        except OSError:
            pass


async def queue_until_refused(stub, prefix: str, padding: int = 2000, size: int = 20, calls: int = 500) -> tuple[list[str], pb.SendResponse]:
    """Queued batches until one is refused: the ids accepted, and the refused batch's first answer."""
    accepted = []
    for call in range(calls):
        ids = [f"{prefix}-{call}-{j}" for j in range(size)]
        batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(i, properties={"padding": "x" * padding}) for i in ids]), timeout=30)
        codes = {r.status.code for r in batch.responses}
        if codes != {0}:
            assert len(codes) == 1, codes  # one transaction: all or none
            return accepted, batch.responses[0]
        accepted.extend(ids)
    raise AssertionError("never refused")


async def test_the_headroom_refuses_new_events_and_the_backlog_drains_without_a_restart(sink, small_fs):
    """Kameleoon down, the filesystem fills: new events are refused with RESOURCE_EXHAUSTED while less than
    the headroom is free (never an OK, never the disk itself full); Kameleoon back, the backlog drains, and
    new events are accepted again, the file's freed pages counting as room."""
    # SQLite's WAL grows to 1,000 pages (4 MiB) before a checkpoint copies it into the file: the headroom
    # keeps room for that, as the default (64 MiB, or 5% of a smaller filesystem) does on a real volume.
    directory = small_fs(32 * MiB)
    port = free_port()
    sink.default = Reply(status=503)
    process = await serve(port, service_env(sink, directory / "outbox.db", KAMELEOON_OUTBOX_MIN_FREE_BYTES=10 * MiB))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            accepted, refused = await queue_until_refused(stub, "head")
            assert refused.status.code == RESOURCE_EXHAUSTED, refused.status.message
            assert "KAMELEOON_OUTBOX_MIN_FREE_BYTES" in refused.status.message and "retry later" in refused.status.message
            assert len(accepted) > 100
            sink.default = Reply()  # Kameleoon is back
            await until(lambda: set(delivered_ids(sink)) >= set(accepted), timeout=120)
            assert len(delivered_ids(sink)) == len(set(delivered_ids(sink)))  # each once
            # The delivered rows' pages are free inside the file: accepting goes on, with no restart.
            again = await stub.SendBatch(pb.SendBatchRequest(requests=[track(f"again-{j}") for j in range(20)]), timeout=30)
            assert {r.status.code for r in again.responses} == {0}
            await until(lambda: {f"again-{j}" for j in range(20)} <= set(delivered_ids(sink)))
    finally:
        await finish(process)


async def test_a_disk_another_process_fills_recovers_by_itself_once_space_returns(sink, small_fs):
    """Past the headroom, another process takes the last byte: writes fail (SQLITE_FULL) and the service keeps
    trying; once the space is back, everything accepted is delivered and new events are accepted, no restart."""
    directory = small_fs(6 * MiB)
    port = free_port()
    sink.default = Reply(status=503)
    process = await serve(port, service_env(sink, directory / "outbox.db", KAMELEOON_OUTBOX_MIN_FREE_BYTES=256 * 1024))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            accepted = []
            for call in range(10):
                ids = [f"fill-{call}-{j}" for j in range(20)]
                batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(i, properties={"padding": "x" * 2000}) for i in ids]), timeout=30)
                assert {r.status.code for r in batch.responses} == {0}
                accepted.extend(ids)
            fill(directory)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Send(track("while-full"), timeout=10)
            assert raised.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE), raised.value.details()
            sink.default = Reply()  # Kameleoon is back while the disk is full
            await asyncio.sleep(1.5)  # the deliverer meets the full disk meanwhile (nothing is asserted on time)
            os.unlink(directory / "filler")  # the space comes back
            await until(lambda: set(delivered_ids(sink)) >= set(accepted), timeout=120)
            fresh = await stub.Send(track("after-full"), timeout=10)
            assert fresh.results[0].queued
            await until(lambda: "after-full" in delivered_ids(sink))
        assert "while-full" not in delivered_ids(sink)
    finally:
        await finish(process)


async def health_of(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return answer.status


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
async def test_a_file_deleted_or_replaced_under_the_service_is_never_written_and_health_says_so(sink, tmp_path, fault):
    db = tmp_path / "outbox.db"
    port = free_port()
    process = await serve(port, service_env(sink, db))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            assert (await stub.Send(track("before"), timeout=10)).results[0].queued
            await until(lambda: delivered_ids(sink) == ["before"])
            assert await health_of(port) == health_pb2.HealthCheckResponse.SERVING
            if fault == "deleted":
                for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
                    (tmp_path / name).unlink(missing_ok=True)
            else:
                other = tmp_path / "other.db"
                other.write_bytes(b"")
                os.replace(other, db)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Send(track("after"), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and fault in raised.value.details() and str(db) in raised.value.details()
            await until(lambda: _not_serving(port))
            synced = await stub.Send(pb.SendRequest(event_json=track("sync").event_json, delivery=pb.DELIVERY_MODE_SYNC), timeout=10)
            assert synced.results[0].http_status == 200  # sync delivery goes on
    finally:
        err = await finish(process)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    [unusable] = [line for line in lines if line["event"] == "outbox unusable: not serving until restarted"]
    assert unusable["level"] == "error" and fault in unusable["error"]
    assert "after" not in delivered_ids(sink)
    if fault == "replaced":
        assert (tmp_path / "outbox.db").read_bytes() == b"", "the other file was never written"


async def _not_serving(port: int) -> bool:
    return await health_of(port) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_an_explicit_outbox_whose_directory_is_missing_stops_start_up_naming_it(tmp_path):
    missing = tmp_path / "volume-not-mounted"
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        "serve",
        "--listen",
        f"127.0.0.1:{free_port()}",
        env={**os.environ, "KAMELEOON_DELIVERY": "queued", "KAMELEOON_OUTBOX": f"sqlite:///{missing}/outbox.db"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "KAMELEOON_OUTBOX" in err.decode() and str(missing) in err.decode() and "does not exist" in err.decode()
    assert not missing.exists(), "nothing was made where the volume should be"
