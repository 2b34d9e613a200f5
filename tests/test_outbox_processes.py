"""Queued delivery with real processes on a real outbox file: kill -9, SIGTERM, two workers, a full disk, a read-only file.

The service runs as the console script (as operators run it); Kameleoon is the in-process
HTTP stand-in, whose answers the tests switch. Nothing waits on the clock: every wait polls
for a condition.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from service.outbox.sqlite import SqliteOutbox
from tests.conftest import API_KEY, SITECODE
from tests.test_cli import SCRIPT, free_port, wait_serving, wait_workers_serving
from tests.test_queued import delivered_ids, track, until

pytestmark = pytest.mark.skipif(not os.path.exists(SCRIPT), reason="console script is installed by `make install`")


def service_env(sink, db, **extra) -> dict:
    return {
        **os.environ,
        "KAMELEOON_BASE_URL": sink.url,
        "KAMELEOON_API_KEY": API_KEY,
        "KAMELEOON_SITECODE": SITECODE,
        "KAMELEOON_DELIVERY": "queued",
        "KAMELEOON_OUTBOX": f"sqlite:///{db}",
        "KAMELEOON_BACKOFF_BASE_S": "0.01",
        "KAMELEOON_RETRY_MAX_BACKOFF_S": "0.1",
        "KAMELEOON_LOG_FORMAT": "json",
        **{key: str(value) for key, value in extra.items()},
    }


async def serve(port: int, env: dict, preexec_fn=None) -> asyncio.subprocess.Process:
    """The service in a session of its own, so that ``finish`` can kill it with its workers."""
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        env=env,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    await wait_serving(port)
    return process


async def finish(process: asyncio.subprocess.Process) -> str:
    """Stop ``process`` and its workers if still running (SIGKILL to its process group); its stderr."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, err = await asyncio.wait_for(process.communicate(), 30)
    return err.decode(errors="replace")


async def send_batches(port: int, ids: list[str], size: int = 500, **fields) -> list[pb.SendResponse]:
    responses = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.KameleoonDestinationStub(channel)
        for start in range(0, len(ids), size):
            batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(i, **fields) for i in ids[start : start + size]]), timeout=30)
            responses.extend(batch.responses)
    return responses


async def outbox_stats(db, now: float | None = None):
    store = SqliteOutbox(str(db))
    await store.open()
    try:
        return await store.stats(now=time.time() if now is None else now)
    finally:
        await store.close()


def duplicates(sink) -> int:
    ids = delivered_ids(sink)
    return len(ids) - len(set(ids))


async def test_kill_9_during_an_outage_and_during_the_drain_loses_nothing(sink, tmp_path):
    db = tmp_path / "outbox.db"
    port = free_port()
    env = service_env(sink, db, KAMELEOON_OUTBOX_CONCURRENCY=16, KAMELEOON_OUTBOX_LEASE_S=2)
    ids = [f"crash-{i}" for i in range(3000)]

    # 1. Kameleoon hangs and fails: thousands accepted, some attempts in flight, then kill -9.
    # The first attempts hang long enough to be in flight at the kill, however long accepting 3000 events takes
    # on a loaded machine (with 1 s they could fail and be put back first).
    sink.default = Reply(status=503, delay=5.0)
    process = await serve(port, env)
    try:
        responses = await send_batches(port, ids)
        assert all(r.status.code == 0 and r.results[0].queued for r in responses)
        await until(lambda: len(sink.received) >= 16)
    finally:
        process.kill()
        killed_at = time.time()
        await finish(process)
    stats = await outbox_stats(db, now=killed_at)
    in_flight = [stats.in_flight]
    assert stats.pending + stats.in_flight == len(ids) and in_flight[0] >= 16
    assert sink.accepted() == []

    # 2. Restart on the same file; Kameleoon is back but slow; kill -9 again in the middle of the drain.
    sink.default = Reply(delay=0.02)
    process = await serve(port, env)
    try:
        await until(lambda: len(set(delivered_ids(sink))) >= 500)
    finally:
        process.kill()
        killed_at = time.time()
        await finish(process)
    stats = await outbox_stats(db, now=killed_at)
    in_flight.append(stats.in_flight)

    # 3. Restart once more: every accepted event arrives; duplicates only of what was in flight at a kill.
    sink.default = Reply()
    process = await serve(port, env)
    try:
        await until(lambda: set(delivered_ids(sink)) == set(ids), timeout=60)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        assert process.returncode == 0
    finally:
        await finish(process)
    print(f"in flight at the kills: {in_flight}; duplicates delivered: {duplicates(sink)}; delivered {len(set(ids))}")
    assert duplicates(sink) <= sum(in_flight), (duplicates(sink), in_flight)
    stats = await outbox_stats(db)
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 0, 0)


async def test_sigterm_lets_attempts_in_flight_finish_and_puts_the_rest_back(sink, tmp_path):
    db = tmp_path / "outbox.db"
    port = free_port()
    env = service_env(sink, db, KAMELEOON_OUTBOX_CONCURRENCY=4, KAMELEOON_GRACE_S=20)
    ids = [f"term-{i}" for i in range(50)]
    sink.default = Reply(delay=0.5)
    process = await serve(port, env)
    try:
        await send_batches(port, ids)
        await until(lambda: len(sink.received) >= 4)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        err = await finish(process)
    finally:
        await finish(process)
    assert process.returncode == 0, err
    delivered = set(delivered_ids(sink))
    assert len(delivered) >= 4  # the attempts in flight finished
    stats = await outbox_stats(db)
    assert stats.in_flight == 0 and stats.pending == len(ids) - len(delivered)  # the rest went back, none lost

    sink.default = Reply()
    process = await serve(port, env)
    try:
        await until(lambda: set(delivered_ids(sink)) == set(ids))
    finally:
        await finish(process)
    assert duplicates(sink) == 0  # the marks of the first process were committed before it left


async def test_two_workers_share_the_file_and_the_idempotency_window(sink, tmp_path):
    db = tmp_path / "outbox.db"
    port = free_port()
    process = await serve(port, service_env(sink, db, KAMELEOON_WORKERS=2, KAMELEOON_OUTBOX_CONCURRENCY=8))
    try:
        early = await wait_workers_serving(process, 2)
        answers = []
        for i in range(20):  # a fresh connection each time, so the kernel picks either worker
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=(("grpc.use_local_subchannel_pool", 1),)) as channel:
                stub = pb_grpc.KameleoonDestinationStub(channel)
                batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(f"two-{i}-{j}") for j in range(5)]), timeout=10)
                assert all(r.results[0].queued for r in batch.responses)
                answers.append(await stub.Send(track("two-same"), timeout=10))
        assert sum(1 for a in answers if a.results[0].queued) == 1
        assert sum(1 for a in answers if a.results[0].duplicate) == 19
        await until(lambda: len(sink.accepted()) == 101)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        err = "".join(early) + await finish(process)
    finally:
        await finish(process)
    assert sorted(set(delivered_ids(sink))) == sorted(delivered_ids(sink))  # each once
    workers = {
        line.get("worker") for line in map(json.loads, filter(lambda text: text.startswith("{"), err.splitlines())) if line.get("event") == "rpc"
    }
    assert workers == {0, 1}


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


async def test_a_full_disk_refuses_with_unavailable_and_sync_calls_go_on(sink, tmp_path):
    db = tmp_path / "outbox.db"
    port = free_port()
    sink.default = Reply(status=503)  # everything stays in the outbox
    process = await serve(port, service_env(sink, db), preexec_fn=_file_size_limit(1024 * 1024))
    try:
        accepted, refused = [], []
        padding = "x" * 8000
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            for call in range(200):
                ids = [f"full-{call}-{j}" for j in range(10)]
                batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(i, properties={"padding": padding}) for i in ids]), timeout=30)
                codes = {r.status.code for r in batch.responses}
                if codes == {0}:
                    accepted.extend((r.results[0].outbox_id, i) for r, i in zip(batch.responses, ids))
                else:
                    assert codes == {grpc.StatusCode.UNAVAILABLE.value[0]}, codes
                    assert "outbox" in batch.responses[0].status.message
                    refused.extend(ids)
                    break
            assert refused, "the file-size limit was never reached"
            try:  # a smaller transaction may still fit: then it must really be in the file
                typed = await stub.LogEvent(pb.LogEventRequest(timestamp="2024-01-01T00:00:00Z", message_id="full-typed"), timeout=10)
                accepted.append((typed.outbox_id, "full-typed"))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                refused.append("full-typed")
            sink.default = Reply()
            synced = await stub.LogEvent(
                pb.LogEventRequest(timestamp="2024-01-01T00:00:00Z", message_id="full-sync", delivery=pb.DELIVERY_MODE_SYNC), timeout=10
            )
            assert synced.http_status == 200
        # No false OK: every accepted event is in the file, none of the refused ones.
        with sqlite3.connect(db) as conn:
            stored = {str(row[0]): row[1] for row in conn.execute("SELECT id, message_id FROM events")}
            stored.update((str(row[0]), row[1]) for row in conn.execute("SELECT id, message_id FROM dead_letters"))
        on_the_wire = set(delivered_ids(sink))
        # (Once the stand-in answers 200, a retry that comes due delivers an event: it leaves the file.)
        assert all(outbox_id in stored or message_id in on_the_wire for outbox_id, message_id in accepted)
        assert not set(refused) & (set(stored.values()) | on_the_wire)
    finally:
        await finish(process)


def _chattr(flag: str, *paths) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    return subprocess.run([chattr, flag, *map(str, paths)], capture_output=True).returncode == 0


async def test_a_file_made_read_only_refuses_queued_calls_sync_calls_go_on_and_writable_again_it_resumes(sink, tmp_path):
    db = tmp_path / "outbox.db"
    port = free_port()
    process = await serve(port, service_env(sink, db))
    files = [db, tmp_path / "outbox.db-wal"]  # not -shm: SQLite maps it, and a write to an immutable mapping is SIGBUS
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            assert (await stub.Send(track("ro-1"), timeout=10)).results[0].queued
            await until(lambda: delivered_ids(sink) == ["ro-1"])
            if not _chattr("+i", *files):
                pytest.skip("chattr +i is not available here (needs root and an ext* file system)")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Send(track("ro-2"), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and str(db) in raised.value.details()
            synced = await stub.Send(pb.SendRequest(event_json=track("ro-3").event_json, delivery=pb.DELIVERY_MODE_SYNC), timeout=10)
            assert synced.results[0].http_status == 200
            assert delivered_ids(sink) == ["ro-1", "ro-3"]
            _chattr("-i", *files)  # writable again: accepting resumes by itself, no restart
            assert (await stub.Send(track("ro-4"), timeout=10)).results[0].queued
            await until(lambda: delivered_ids(sink) == ["ro-1", "ro-3", "ro-4"])
    finally:
        _chattr("-i", *files)
        await finish(process)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_an_unusable_file_stops_start_up_naming_it(tmp_path, workers):
    db = tmp_path / "outbox.db"
    db.write_bytes(b"not a database, not at all" * 100)
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        "serve",
        "--listen",
        f"127.0.0.1:{free_port()}",
        env={**os.environ, "KAMELEOON_DELIVERY": "queued", "KAMELEOON_OUTBOX": f"sqlite:///{db}", "KAMELEOON_WORKERS": workers},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert str(db) in err.decode()


async def test_queued_by_default_needs_no_other_setting(sink, tmp_path):
    """Only KAMELEOON_DELIVERY=queued: the outbox goes to the user's state directory."""
    port = free_port()
    env = {
        **os.environ,
        "KAMELEOON_BASE_URL": sink.url,
        "KAMELEOON_API_KEY": API_KEY,
        "KAMELEOON_SITECODE": SITECODE,
        "KAMELEOON_DELIVERY": "queued",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    env.pop("KAMELEOON_OUTBOX", None)
    process = await serve(port, env)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = await pb_grpc.KameleoonDestinationStub(channel).Send(track("default-1"), timeout=10)
        assert response.results[0].queued
        await until(lambda: delivered_ids(sink) == ["default-1"])
    finally:
        await finish(process)
    assert (tmp_path / "state" / "kameleoon-destination" / "outbox.db").exists()


async def test_an_engage_audience_seed_arrives_whole_through_an_outage(sink, tmp_path):
    """Engage's first sync of an audience: one identify per user with traits.<audience_key> true or false."""
    port = free_port()
    audience, users = "high_value_churn_risk", 10_000
    process = await serve(port, service_env(sink, tmp_path / "outbox.db", KAMELEOON_OUTBOX_CONCURRENCY=32, KAMELEOON_LOG_LEVEL="warning"))

    def identify(i: int) -> pb.SendRequest:
        return pb.SendRequest(
            event_json=json.dumps(
                {
                    "type": "identify",
                    "userId": f"user-{i}",
                    "messageId": f"engage-{i}",
                    "timestamp": "2024-01-01T00:00:00Z",
                    "traits": {audience: i % 3 == 0, "kameleoonVisitorCode": f"vc-{i}"},
                    "context": {
                        "personas": {"computation_class": "audience", "computation_key": audience, "computation_id": "aud_1", "space_id": "spa_1"}
                    },
                }
            )
        )

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)
            for batch in range(10):
                if batch == 3:
                    sink.default = Reply(status=503)  # Kameleoon fails for a while in the middle of the seed
                requests = [identify(i) for i in range(batch * 1000, batch * 1000 + 1000)]
                response = await stub.SendBatch(pb.SendBatchRequest(requests=requests), timeout=30)
                assert all(r.status.code == 0 and r.results[0].queued for r in response.responses)
                if batch == 6:
                    await until(lambda: any(r.status == 503 for r in sink.received))
                    sink.default = Reply()
        await until(lambda: len(sink.accepted()) >= users, timeout=120, interval=0.2)
    finally:
        await finish(process)
    assert len(set(delivered_ids(sink))) == users
    for received in sink.accepted():
        body = received.json()
        i = int(body["userId"].split("-")[1])
        assert body["type"] == "identify" and body["messageId"] == f"engage-{i}"
        assert body["properties"] == {audience: i % 3 == 0, "kameleoonVisitorCode": f"vc-{i}"}
