"""What only the SQLite store promises: group commit, its file, and a clear refusal of a bad file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading

import pytest

from service.errors import OutboxOpenError, OutboxUnavailable
from service.outbox import create, default_url
from service.outbox.base import DELIVERED, TAKEN, Dead, DeadLetterFilter, Retry
from service.outbox.sqlite import SCHEMA_VERSION, SqliteOutbox, path_of
from tests.outbox.test_store_contract import IDEM, KEY, LEASE, T0, event, put


async def test_concurrent_enqueues_share_transactions(tmp_path):
    store = SqliteOutbox(str(tmp_path / "o.db"))
    await store.open()
    try:
        before = store.commits
        await asyncio.gather(*(put(store, [event(n)]) for n in range(200)))
        assert (await store.stats(now=T0)).pending == 200
        assert store.commits - before < 50  # one fsync serves many callers
    finally:
        await store.close()


async def test_the_file_is_in_wal_mode_with_its_schema(tmp_path):
    path = tmp_path / "deeper" / "o.db"  # missing directories are made (for the default location)
    store = SqliteOutbox(str(path), create_directory=True)
    await store.open()
    await put(store, [event(1)])
    await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    conn.close()


async def test_text_and_keys_are_stored_as_files_written_before_hold_them(tmp_path):
    """The stored form is part of the file format (processes of other releases share the file): text as
    text; only what UTF-8 cannot encode (a lone surrogate) as a BLOB of its bytes, and a key that is
    such text, or begins with U+FFFF, as U+FFFF and the hex of its bytes."""
    path = tmp_path / "o.db"
    store = SqliteOutbox(str(path))
    await store.open()
    plain = [event(1, route="sub-é", sitecode="01234567é9", message_id="m-é\U0001f600", dedupe_key="01234567é9\x1fsub-é\x1fm-é\U0001f600"), event(2)]
    odd = event(3, message_id="m-\ud800", dedupe_key="k-\ud800")
    marked = event(4, dedupe_key="\uffffk")
    await put(store, [*plain, odd, marked])
    await store.close()
    conn = sqlite3.connect(path)
    conn.text_factory = bytes
    try:
        rows = conn.execute("SELECT route, sitecode, message_id, typeof(message_id) FROM events ORDER BY id").fetchall()
        keys = conn.execute("SELECT key, typeof(key) FROM idempotency").fetchall()
    finally:
        conn.close()
    assert rows == [
        ("sub-é".encode(), "01234567é9".encode(), "m-é\U0001f600".encode(), b"text"),
        (b"logEvent", b"0123456789", b"m-2", b"text"),
        (b"logEvent", b"0123456789", b"m-\xed\xa0\x80", b"blob"),
        (b"logEvent", b"0123456789", b"m-4", b"text"),
    ]
    assert sorted(keys) == sorted(
        [
            (plain[0].dedupe_key.encode(), b"text"),
            (plain[1].dedupe_key.encode(), b"text"),
            (("\uffff" + "k-\ud800".encode("utf-8", "surrogatepass").hex()).encode(), b"text"),
            (("\uffff" + "\uffffk".encode().hex()).encode(), b"text"),
        ]
    )


@pytest.mark.parametrize("content", [b"this is not a database at all" * 200, b"SQLite format 3\x00" + b"\xff" * 4000])
async def test_a_corrupt_file_stops_start_up_naming_it(tmp_path, content):
    path = tmp_path / "broken.db"
    path.write_bytes(content)
    with pytest.raises(OutboxOpenError) as raised:
        await SqliteOutbox(str(path)).open()
    assert str(path) in str(raised.value)


def test_urls_follow_sqlalchemy():
    assert path_of("sqlite:///relative/o.db") == "relative/o.db"
    assert path_of("sqlite:////var/lib/o.db") == "/var/lib/o.db"
    for bad in ("sqlite://", "sqlite:///", "postgres://x", "o.db"):
        with pytest.raises(ValueError, match=r"^must be sqlite:///relative/path\.db or sqlite:////absolute/path\.db$"):
            path_of(bad)
    assert isinstance(create("sqlite:///x.db"), SqliteOutbox)
    assert default_url({"XDG_STATE_HOME": "/srv/state"}) == "sqlite:////srv/state/kameleoon-destination/outbox.db"
    assert default_url({"HOME": "/home/u"}).endswith("/.local/state/kameleoon-destination/outbox.db")


# -- schema versions ------------------------------------------------------------------

# The file as release 1 wrote it (word for word, user_version 1), to upgrade from.
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, route TEXT NOT NULL, sitecode TEXT NOT NULL,
    message_id TEXT NOT NULL, body BLOB NOT NULL, credentials TEXT NOT NULL, accepted_at REAL NOT NULL,
    expires_at REAL NOT NULL, due_at REAL NOT NULL, lease TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL, last_attempt_at REAL, last_status INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_due ON events (due_at);
CREATE INDEX IF NOT EXISTS events_expires ON events (expires_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY, action TEXT NOT NULL, route TEXT NOT NULL, sitecode TEXT NOT NULL, message_id TEXT NOT NULL,
    body BLOB NOT NULL, credentials TEXT NOT NULL, accepted_at REAL NOT NULL, attempts INTEGER NOT NULL,
    first_attempt_at REAL, last_attempt_at REAL, last_status INTEGER NOT NULL, last_error TEXT NOT NULL, dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters (dead_at);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_at ON idempotency (at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


async def test_a_file_at_schema_version_1_is_upgraded_when_opened(tmp_path):
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_1)
    # What release 1 left behind: a pending event and a taken messageId.
    conn.execute(
        "INSERT INTO events (action, route, sitecode, message_id, body, credentials, accepted_at, expires_at, due_at) "
        "VALUES ('logEvent', 'logEvent', '0123456789', 'm-1', X'7B7D', 'server', ?, ?, ?)",
        (T0, T0 + 3600, T0),
    )
    conn.execute("INSERT INTO idempotency (key, at) VALUES (?, ?)", (event(2).dedupe_key, T0))
    conn.commit()
    conn.close()

    stores = [SqliteOutbox(str(path)) for _ in range(3)]  # processes opening together: one upgrades, the others wait
    await asyncio.gather(*(store.open() for store in stores))
    try:
        store = stores[0]
        assert (await put(store, [event(1)], now=T0 + 1))[0].duplicate is False  # m-1 had no key: stored again
        assert await store.seen(event(2).dedupe_key, now=T0 + 1, window_s=IDEM)  # release 1's key is a delivery
        assert (await put(store, [event(2)], now=T0 + 1))[0].duplicate
        assert (await store.reserve(event(2).dedupe_key, now=T0 + 1, window_s=IDEM, until=T0 + 60)).state == DELIVERED
        assert (await store.reserve(event(3).dedupe_key, now=T0 + 1, window_s=IDEM, until=T0 + 60)).state == TAKEN
        assert [c.message_id for c in await store.claim(10, now=T0 + 1, lease_s=30)] == ["m-1", "m-1"]
    finally:
        for store in stores:
            await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert [row[1] for row in conn.execute("PRAGMA table_info(idempotency)")] == ["key", "at", "reservation", "reserved_until", "delivered_at"]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"overview", "samples"} <= tables  # migration 3: the delivery overview
    assert "delivered_at" in [row[1] for row in conn.execute("PRAGMA table_info(idempotency)")]  # migration 4
    conn.close()


async def test_a_file_from_a_newer_release_stops_start_up_naming_it(tmp_path):
    path = tmp_path / "o.db"
    store = SqliteOutbox(str(path))
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(OutboxOpenError) as raised:
        await SqliteOutbox(str(path)).open()
    assert str(raised.value) == (
        f"the outbox file {path} cannot be used (KAMELEOON_OUTBOX): written by a newer version (schema {SCHEMA_VERSION + 1}, this one knows {SCHEMA_VERSION})"
    )


# -- what an operator reads, and what the file is told ----------------------------------


async def test_a_file_that_is_no_database_is_refused_with_sqlites_own_words(tmp_path):
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(OutboxOpenError) as raised:
        await SqliteOutbox(str(path)).open()
    assert str(raised.value) == f"the outbox file {path} cannot be used (KAMELEOON_OUTBOX): file is not a database (SQLITE_NOTADB)"


async def test_a_damaged_database_is_refused_with_what_the_check_found(tmp_path):
    path = tmp_path / "damaged.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(50)])
    conn.commit()
    conn.close()
    with open(path, "r+b") as file:  # the header's count of free pages: 5, where there are none
        file.seek(36)
        file.write((5).to_bytes(4, "big"))
    with pytest.raises(OutboxOpenError) as raised:
        await SqliteOutbox(str(path)).open()
    assert str(raised.value).startswith(f"the outbox file {path} cannot be used (KAMELEOON_OUTBOX): the file is damaged (")
    assert "freelist" in str(raised.value)


async def test_its_location_is_the_url_of_its_file_and_its_threads_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = SqliteOutbox("relative/o.db", create_directory=True)
    assert store.path == str(tmp_path / "relative" / "o.db")
    assert store.location == f"sqlite:///{tmp_path}/relative/o.db" and path_of(store.location) == store.path
    await store.open()
    try:
        await store.stats(now=T0)
        names = {thread.name.rsplit("_", 1)[0] for thread in threading.enumerate()}
        assert {"outbox-write", "outbox-read"} <= names  # what py-spy and a debugger show
    finally:
        await store.close()


async def synchronous_of(store: SqliteOutbox) -> int:
    """PRAGMA synchronous of the store's writing connection, read on its thread (the setting is per
    connection: a second connection cannot see it). 2 is FULL, 1 NORMAL."""
    return await asyncio.get_running_loop().run_in_executor(store._writer_thread, lambda: store._write.execute("PRAGMA synchronous").fetchone()[0])


FULL, NORMAL = 2, 1


async def test_accepting_writes_sync_fully_and_marks_and_keys_normally(tmp_path):
    """What the module promises: an OK for events (enqueue, dead letters coming and going) survives power
    loss; marks, claims and idempotency keys need no fsync of their own."""
    store = SqliteOutbox(str(tmp_path / "o.db"))
    await store.open()
    try:
        assert await synchronous_of(store) == FULL  # the start-up transaction (schema, migrations)
        seen = []

        async def step(name, call):
            result = await call
            seen.append((name, await synchronous_of(store)))
            return result

        await step("enqueue", put(store, [event(n) for n in range(6)]))
        claimed = await step("claim", store.claim(6, now=T0, lease_s=LEASE))
        await step("mark_dead", store.mark_dead([Dead(claimed[0].id, claimed[0].lease, 400, "x")], now=T0))
        await step("mark_retry", store.mark_retry([Retry(claimed[1].id, claimed[1].lease, T0 + 5, 503, "x")], now=T0))
        await step("retry_dead_letters", store.retry_dead_letters(DeadLetterFilter(ids=(claimed[0].id,)), now=T0, window_s=60))
        await step("release", store.release([claimed[2]], now=T0))
        await step("purge_dead_letters", store.purge_dead_letters(DeadLetterFilter(ids=("1",))))
        await step("mark_delivered", store.mark_delivered([claimed[3]], now=T0))
        await step("expire", store.expire(now=T0, limit=10))
        await step("housekeep", store.housekeep(now=T0, dead_letter_retention_s=IDEM, idempotency_window_s=IDEM))
        await step("enqueue", put(store, [event(10)]))
        token = (await step("reserve", store.reserve(KEY, now=T0, window_s=IDEM, until=T0 + 40))).token
        await step("enqueue", put(store, [event(11)]))
        await step("unreserve", store.unreserve(KEY, token, now=T0))
        await step("enqueue", put(store, [event(12)]))
        await step("remember", store.remember(KEY, now=T0))
        await step("claim and enqueue in one transaction", asyncio.gather(store.claim(1, now=T0, lease_s=LEASE), put(store, [event(13)])))
        durable = {"enqueue", "mark_dead", "retry_dead_letters", "purge_dead_letters", "expire", "claim and enqueue in one transaction"}
        assert seen == [(name, FULL if name in durable else NORMAL) for name, _ in seen]
    finally:
        await store.close()


async def test_each_write_transaction_is_counted_once_and_a_mark_of_nothing_writes_nothing(tmp_path):
    store = SqliteOutbox(str(tmp_path / "o.db"))
    await store.open()
    try:
        assert store.commits == 0  # opening is not counted
        await put(store, [event(1)])
        assert store.commits == 1
        await store.claim(1, now=T0, lease_s=LEASE)
        assert store.commits == 2
        for nothing in (
            store.mark_delivered([], now=T0),
            store.mark_retry([], now=T0),
            store.mark_dead([], now=T0),
            store.release([], now=T0),
            store.enqueue([], now=T0, window_s=60, idempotency_window_s=IDEM, max_pending=0),
        ):
            assert await nothing in (0, [])
        assert store.commits == 2
    finally:
        await store.close()


async def test_a_failed_write_fails_its_whole_transaction_and_the_next_one_commits(tmp_path):
    """A write SQLite refuses (here the events table is gone: another program renamed it) fails every caller
    of its transaction with the outbox's name and SQLite's words, keeps nothing of it, and stops nothing after it."""
    path = tmp_path / "o.db"
    store = SqliteOutbox(str(path))
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await put(store, [event(1)])
        other.execute("ALTER TABLE events RENAME TO events_away")
        with pytest.raises(OutboxUnavailable) as raised:
            await store.stats(now=T0)
        assert str(raised.value) == f"the outbox {path} cannot be read: no such table: events (SQLITE_ERROR)"
        # The reservation alone would commit: sharing the enqueue's transaction, it fails with it.
        failed = await asyncio.gather(put(store, [event(2)]), store.reserve(KEY, now=T0, window_s=IDEM, until=T0 + 40), return_exceptions=True)
        assert [type(f) for f in failed] == [OutboxUnavailable] * 2
        assert {str(f) for f in failed} == {f"the outbox {path} cannot be written: no such table: events (SQLITE_ERROR)"}
        other.execute("ALTER TABLE events_away RENAME TO events")
        assert (await put(store, [event(2)]))[0].id  # its key was not kept
        assert (await store.reserve(KEY, now=T0, window_s=IDEM, until=T0 + 40)).state == TAKEN
        assert (await store.stats(now=T0)).pending == 2
    finally:
        other.close()
        await store.close()


async def test_close_finishes_the_writes_handed_over_and_leaves_no_wal_behind(tmp_path):
    path = tmp_path / "o.db"
    store = SqliteOutbox(str(path))
    await store.open()
    calls = [asyncio.ensure_future(put(store, [event(n)])) for n in range(20)]
    await asyncio.sleep(0)  # every call has handed its event to the writer
    calls[0].cancel()  # a caller that gave up: the others still hear how their transaction went
    await store.close()
    assert all(call.done() for call in calls)
    assert all(call.result()[0].id for call in calls[1:])
    assert not os.path.exists(f"{path}-wal")  # both connections closed: the last one checkpointed and removed it
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 20  # handed over before it gave up
    conn.close()


async def test_a_store_never_opened_refuses_calls_and_closes_quietly(tmp_path):
    path = tmp_path / "o.db"
    store = SqliteOutbox(str(path))
    with pytest.raises(OutboxUnavailable, match=f"^the outbox {path} is closed$"):
        await store.stats(now=T0)
    with pytest.raises(OutboxUnavailable, match=f"^the outbox {path} is closed$"):
        await put(store, [event(1)])
    await store.close()
    assert not path.exists()
