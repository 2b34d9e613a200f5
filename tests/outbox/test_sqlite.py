"""What only the SQLite store promises: group commit, its file, and a clear refusal of a bad file."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from service.errors import OutboxOpenError, OutboxUnavailable
from service.outbox import create, default_url
from service.outbox.base import DELIVERED, TAKEN
from service.outbox.sqlite import SCHEMA_VERSION, SqliteOutbox, path_of
from tests.outbox.test_store_contract import IDEM, T0, event, put


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
    path = tmp_path / "deeper" / "o.db"  # missing directories are made
    store = SqliteOutbox(str(path))
    await store.open()
    await put(store, [event(1)])
    await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    conn.close()


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
        with pytest.raises(ValueError) as raised:
            path_of(bad)
        assert str(raised.value) == "must be sqlite:///relative/path.db or sqlite:////absolute/path.db"
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
        "VALUES ('logEvent', 'logEvent', '0123456789', 'm-1', X'7B7D', 'server', ?, ?, ?)", (T0, T0 + 3600, T0))
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
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert [row[1] for row in conn.execute("PRAGMA table_info(idempotency)")] == ["key", "at", "reservation", "reserved_until"]
    conn.close()


async def test_a_file_from_a_newer_release_stops_start_up_naming_it(tmp_path):
    path = tmp_path / "o.db"
    store = SqliteOutbox(str(path))
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(OutboxOpenError, match=f"{path}.*newer version"):
        await SqliteOutbox(str(path)).open()


async def test_marks_of_nothing_open_no_transaction(tmp_path):
    store = SqliteOutbox(str(tmp_path / "o.db"))
    await store.open()
    try:
        before = store.commits
        for mark in (store.mark_delivered, store.mark_retry, store.mark_dead, store.release):
            assert await mark([], now=T0) == 0
        assert store.commits == before
    finally:
        await store.close()


async def test_a_refused_write_says_why_in_sqlite_s_words(tmp_path):
    """OutboxUnavailable carries SQLite's message and its error name (here a trigger refusing the write)."""
    store = SqliteOutbox(str(tmp_path / "o.db"))
    await store.open()
    try:
        with sqlite3.connect(tmp_path / "o.db") as conn:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no room'); END")
        with pytest.raises(OutboxUnavailable) as raised:
            await put(store, [event(1)])
        assert str(raised.value) == f"the outbox {store.path} cannot be written: no room (SQLITE_CONSTRAINT_TRIGGER)"
    finally:
        await store.close()
