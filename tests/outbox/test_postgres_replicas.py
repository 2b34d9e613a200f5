"""Several replicas on one PostgreSQL outbox, as real processes: kill -9, the shared messageId window, the database restarting.

Each replica is the console script on a port of its own (as two pods would be);
Kameleoon is the in-process HTTP stand-in, whose answers the tests switch.
Every wait polls for a condition.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from service.outbox.postgres import PostgresOutbox
from tests.test_cli import free_port
from tests.test_outbox_processes import duplicates, finish, pytestmark, send_batches, serve, service_env  # noqa: F401
from tests.test_queued import delivered_ids, track, until

OK, UNAVAILABLE = 0, grpc.StatusCode.UNAVAILABLE.value[0]


def replica_env(sink, url: str, **extra) -> dict:
    return service_env(sink, None, KAMELEOON_OUTBOX=url, KAMELEOON_LOG_LEVEL="warning", **extra)


async def outbox_stats(url: str, now: float):
    store = PostgresOutbox(url)
    await store.open()
    try:
        return await store.stats(now=now)
    finally:
        await store.close()


async def send_batch(port: int, ids: list[str], mode: int) -> list[pb.SendResponse]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        batch = await pb_grpc.KameleoonDestinationStub(channel).SendBatch(
            pb.SendBatchRequest(delivery=mode, requests=[track(i) for i in ids]), timeout=30
        )
    return list(batch.responses)


async def test_two_replicas_share_the_queue_and_a_kill_9_loses_nothing(sink, postgres_url):
    env = replica_env(sink, postgres_url, KAMELEOON_OUTBOX_CONCURRENCY=16, KAMELEOON_OUTBOX_LEASE_S=2)
    ids = [f"rep-{i}" for i in range(10_000)]
    sink.default = Reply(status=503, delay=0.5)  # Kameleoon down and slow: attempts are in flight at the kill
    ports = [free_port(), free_port()]
    one, two = [await serve(port, env) for port in ports]
    try:
        halves = await asyncio.gather(send_batches(ports[0], ids[0::2]), send_batches(ports[1], ids[1::2]))
        assert all(r.status.code == OK and r.results[0].queued for half in halves for r in half)
        await until(lambda: len({r.json()["messageId"] for r in sink.received}) >= 8)
        one.kill()
        killed_at = time.time()
        await finish(one)
        stats = await outbox_stats(postgres_url, killed_at)
        assert stats.pending + stats.in_flight == len(ids) and stats.in_flight > 0
        # Kameleoon comes back: the survivor delivers everything, the dead replica's claims once their lease ran out.
        sink.default = Reply()
        await until(lambda: set(delivered_ids(sink)) == set(ids), timeout=120, interval=0.2)
    finally:
        await finish(one)
        await finish(two)
    assert duplicates(sink) <= stats.in_flight, (duplicates(sink), stats.in_flight)
    stats = await outbox_stats(postgres_url, time.time())
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 0, 0)


async def test_a_messageid_sent_to_both_replicas_is_delivered_once(sink, postgres_url):
    """The window lives in PostgreSQL: sync and queued calls on either replica share it."""
    sync, queued = pb.DELIVERY_MODE_SYNC, pb.DELIVERY_MODE_QUEUED
    ports = [free_port(), free_port()]
    replicas = [await serve(port, replica_env(sink, postgres_url, KAMELEOON_DELIVERY="sync")) for port in ports]
    try:
        for tag, first, second in (("ss", sync, sync), ("qs", queued, sync), ("sq", sync, queued)):
            ids = [f"{tag}-{i}" for i in range(100)]
            answers = await send_batch(ports[0], ids, first)
            assert all(r.status.code == OK and not r.results[0].duplicate for r in answers)
            await until(lambda: set(ids) <= set(delivered_ids(sink)))  # queued: delivered before the retry
            again = await send_batch(ports[1], ids, second)
            assert all(r.status.code == OK and r.results[0].duplicate for r in again), tag
            assert all(r.results[0].http_status == 0 and not r.results[0].queued for r in again)
        # At the same moment, sync on both, Kameleoon holding the posts: one posts, the other waits for it.
        ids = [f"at-once-{i}" for i in range(100)]
        release = asyncio.Event()
        sink.default = Reply(hold=release)
        both = asyncio.ensure_future(asyncio.gather(*(send_batch(port, ids, sync) for port in ports)))
        await until(lambda: len(sink.received) >= 300 + 32)  # a batch posts 32 at once (KAMELEOON_BATCH_CONCURRENCY)
        release.set()
        for first, second in zip(*await both):
            assert first.status.code == OK and second.status.code == OK
            assert sorted((first.results[0].duplicate, second.results[0].duplicate)) == [False, True]
    finally:
        for replica in replicas:
            await finish(replica)
    assert len(delivered_ids(sink)) == 400 and duplicates(sink) == 0


async def test_postgres_restarting_under_load_never_gives_a_false_ok(sink, own_postgres):
    url = own_postgres.create_database()
    port = free_port()
    # A claim whose answer the crash cut off (committed, never seen by the deliverer) comes back
    # when its lease runs out: a short lease keeps that wait short.
    process = await serve(port, replica_env(sink, url, KAMELEOON_OUTBOX_LEASE_S="2"))
    ok: list[str] = []
    refused: list[str] = []
    codes: set[int] = set()
    done = asyncio.Event()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.KameleoonDestinationStub(channel)

            async def load(tag: str) -> None:
                n = 0
                while not done.is_set():
                    n += 1
                    ids = [f"{tag}-{n}-{j}" for j in range(20)]
                    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[track(i) for i in ids]), timeout=30)
                    for message_id, response in zip(ids, batch.responses):
                        codes.add(response.status.code)
                        if response.status.code == OK:
                            assert response.results[0].queued
                            ok.append(message_id)
                        else:
                            refused.append(message_id)
                            await asyncio.sleep(0.001)

            loaders = [asyncio.ensure_future(load(tag)) for tag in ("a", "b", "c")]
            await until(lambda: len(ok) >= 300)
            await asyncio.to_thread(own_postgres.stop, "immediate")  # a crash: committed work comes back from the WAL
            await until(lambda: len(refused) >= 100)
            await asyncio.to_thread(own_postgres.start)
            resumed = len(ok)
            await until(lambda: len(ok) >= resumed + 300, timeout=60)
            done.set()
            await asyncio.gather(*loaders)
        assert codes == {OK, UNAVAILABLE}
        # Every OK was committed: each one reaches Kameleoon, delivery having resumed by itself.
        await until(lambda: set(ok) <= set(delivered_ids(sink)), timeout=60, interval=0.2)
    finally:
        done.set()
        await finish(process)
