"""The PostgreSQL outbox when its storage fails: the database server's disk full, a connection cut mid-claim.

The disk full: its tables in a tablespace on a small
tmpfs (the server's own WAL elsewhere, so the server stays up, as with a separate data volume), filled by
another process. Nothing is answered OK that is not committed, and once space returns everything works
again by itself.

The server's disk is not ours to read (no statvfs across a connection): there is no headroom on
PostgreSQL, and while the disk is full claims fail too (an UPDATE writes a new row version), so the
backlog waits for space like new events do. Operators size and watch the database's volume.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

import asyncpg
import pytest

from service.errors import OutboxUnavailable
from service.outbox.postgres import PostgresOutbox
from tests.outbox.test_store_contract import event
from tests.test_outbox_storage import fill

MiB = 1024 * 1024


@pytest.fixture
def full_tablespace(own_postgres):
    """A database whose tables live on a 16 MiB tmpfs of their own: (its URL, the tmpfs directory)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test mounts a tmpfs: run it as root (CI does)")
        pytest.skip("mounting a tmpfs needs root")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="kd-tablespace-"))  # in /tmp: the postgres user can reach it
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(directory)], check=True)
    user = pwd.getpwnam("postgres")
    os.chown(directory, user.pw_uid, user.pw_gid)
    name = f"small_{os.getpid()}_{time.monotonic_ns()}"
    try:
        own_postgres.psql(f"CREATE TABLESPACE {name} LOCATION '{directory}'")
        own_postgres.psql(f"CREATE DATABASE {name} TABLESPACE {name}")
        yield own_postgres.url(name), directory
        own_postgres.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        own_postgres.psql(f"DROP TABLESPACE IF EXISTS {name}")
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_full_database_disk_refuses_without_an_ok_and_recovers_when_space_returns(full_tablespace):
    url, directory = full_tablespace
    store = PostgresOutbox(url)
    await store.open()
    try:
        now = time.time()
        first = await store.enqueue(
            [event(f"before-{i}", body=b"x" * 3000) for i in range(50)], now=now, window_s=3600, idempotency_window_s=3600, max_pending=0
        )
        assert all(a.id for a in first)
        fill(directory)
        refused = 0
        for call in range(20):  # pages already allocated may take a few more rows; then the disk refuses
            batch = [event(f"full-{call}-{i}", body=os.urandom(3000).hex().encode()) for i in range(50)]
            try:
                await store.enqueue(batch, now=now, window_s=3600, idempotency_window_s=3600, max_pending=0)
            except OutboxUnavailable as exc:
                assert "No space left on device" in str(exc) or "DiskFull" in str(exc), exc
                refused += 1
                break
        assert refused, "the full disk never refused a write"
        stats = await store.stats(now=time.time())
        assert stats.pending == 50 + 50 * call, "every refused batch left nothing behind; the accepted ones are all there"
        try:  # a claim writes row versions too: it may fail while the disk is full, never half-done
            claimed = await store.claim(10, now=time.time(), lease_s=60)
            assert len(claimed) == 10
        except OutboxUnavailable:
            pass
        os.unlink(directory / "filler")  # the space comes back: no restart, no reconnection by hand
        claimed = await store.claim(1000, now=time.time() + 120, lease_s=60)  # past any lease taken above
        assert len(claimed) == stats.pending
        assert await store.mark_delivered(claimed, now=time.time() + 120) == len(claimed)
        after = await store.enqueue([event("after")], now=time.time(), window_s=3600, idempotency_window_s=3600, max_pending=0)
        assert after[0].id
    finally:
        await store.close()
    assert shutil.disk_usage(directory).free > MiB


# -- a connection cut in the middle of a claim ----------------------------------------------------------


async def test_a_claim_cut_mid_transaction_leases_nothing_and_one_cut_after_its_commit_comes_back_after_the_lease(postgres_url):
    """Leases make a lost connection safe. Cut while the claim's UPDATE runs (held here behind a table lock,
    its backend terminated): rolled back, every event claimable at once. Cut after the claim committed
    (its answer never read): the events are held by a lease nobody has, claimable again once it runs out."""
    store, other = PostgresOutbox(postgres_url), PostgresOutbox(postgres_url)
    await store.open()
    await other.open()
    locker = await asyncpg.connect(postgres_url)
    try:
        now = 1_000_000.0
        await store.enqueue([event(i) for i in range(5)], now=now, window_s=3600, idempotency_window_s=3600, max_pending=0)
        async with locker.transaction():
            await locker.execute("LOCK TABLE outbox_events IN EXCLUSIVE MODE")
            claim = asyncio.ensure_future(store.claim(10, now=now, lease_s=60))
            pid = None
            for _ in range(3000):  # the claim's backend, waiting on the lock (the only one in this test's database)
                pid = await locker.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                if pid:
                    break
                await asyncio.sleep(0.01)
            assert pid, "the claim never reached the database"
            await locker.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(OutboxUnavailable):
                await claim
        assert len(await other.claim(10, now=now, lease_s=60)) == 5, "the cut claim leased nothing"

        # The other store's claim committed; say its answer was lost with its connection: nobody holds the lease.
        assert await store.claim(10, now=now + 30, lease_s=60) == [], "leased: not claimable before the lease ends"
        again = await store.claim(10, now=now + 61, lease_s=60)
        assert sorted(c.message_id for c in again) == [f"m-{i}" for i in range(5)]
        assert await store.mark_delivered(again, now=now + 62) == 5
    finally:
        await locker.close()
        await store.close()
        await other.close()
