"""What only the SQLite store promises: group commit, its file, and a clear refusal of a bad file."""

from __future__ import annotations

import asyncio
import os

import pytest

from service.errors import OutboxOpenError
from service.outbox import create, default_url
from service.outbox.sqlite import SqliteOutbox, path_of
from tests.outbox.test_store_contract import T0, event, put


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
    import sqlite3

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
        with pytest.raises(ValueError):
            path_of(bad)
    assert isinstance(create("sqlite:///x.db"), SqliteOutbox)
    assert default_url({"XDG_STATE_HOME": "/srv/state"}) == "sqlite:////srv/state/kameleoon-destination/outbox.db"
    assert default_url({"HOME": "/home/u"}).endswith("/.local/state/kameleoon-destination/outbox.db")
