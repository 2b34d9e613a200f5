"""What only the PostgreSQL store promises: its schema and migrations, connection loss, the URL's password.

The store contract (tests/outbox/test_store_contract.py) runs on PostgreSQL too;
these are the rest. Tests that stop the server use one apart from the session's (own_postgres).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time

import asyncpg
import grpc
import pytest
from structlog.testing import capture_logs

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.config import from_env
from service.errors import ConfigError, OutboxOpenError, OutboxUnavailable
from service.outbox import create, redact_url
from service.outbox.base import TAKEN, Dead, DeadLetterFilter, Retry
from service.outbox.postgres import SCHEMA_VERSION, PostgresOutbox, digest
from tests.conftest import API_KEY, SITECODE
from tests.outbox.test_store_contract import IDEM, LEASE, T0, WINDOW, event, put
from tests.test_cli import SCRIPT
from tests.test_outbox_cli import outbox as outbox_command
from tests.test_queued import until
from tools import postgres_server as pg


async def opened(url: str, **options) -> PostgresOutbox:
    store = PostgresOutbox(url, **options)
    await store.open()
    return store


async def eventually(attempt, timeout: float = 60.0):
    """``await attempt()`` until it stops raising OutboxUnavailable (the database is back)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await attempt()
        except OutboxUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# -- schema -------------------------------------------------------------------


async def test_replicas_starting_together_create_the_schema_once(postgres_url):
    stores = await asyncio.gather(*(opened(postgres_url) for _ in range(6)))
    try:
        conn = await asyncpg.connect(postgres_url)
        versions = [row[0] for row in await conn.fetch("SELECT version FROM outbox_schema_version ORDER BY version")]
        await conn.close()
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        await put(stores[0], [event(1)])
        assert (await stores[5].stats(now=T0)).pending == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_schema_from_a_newer_release_stops_start_up(postgres_url):
    await (await opened(postgres_url)).close()
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("INSERT INTO outbox_schema_version (version) VALUES ($1)", SCHEMA_VERSION + 1)
    await conn.close()
    store = PostgresOutbox(postgres_url)
    with pytest.raises(OutboxOpenError) as raised:
        await store.open()
    assert "KAMELEOON_OUTBOX=" in str(raised.value) and "newer" in str(raised.value)
    # What a failed open leaves behind is a closed store: calls refused, close quiet.
    with pytest.raises(OutboxUnavailable, match=r"^the outbox postgresql://\S+ is closed$"):
        await store.claim(1, now=T0, lease_s=LEASE)
    await store.close()


async def test_a_fresh_database_is_migrated_version_by_version_and_says_so(postgres_url):
    with capture_logs() as logs:
        store = await opened(postgres_url)
    await store.close()
    migrated = [entry for entry in logs if entry["event"] == "outbox schema migrated"]
    assert [(entry["log_level"], entry["version"]) for entry in migrated] == [("info", v) for v in range(1, SCHEMA_VERSION + 1)]


async def test_an_idempotency_key_is_stored_as_its_128_bit_blake2b(postgres_url):
    """The stored form of a key is part of the schema (replicas of other releases must find it): the
    BLAKE2b-128 of its UTF-8, a lone surrogate (which a messageId in JSON can carry) kept as it is."""
    store = await opened(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        key = f"{SITECODE}\x1flogEvent\x1fodd-\ud800-id"
        await store.remember(key, now=T0)
        assert [row["key"] for row in await conn.fetch("SELECT key FROM outbox_keys")] == [
            hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        ]
        assert await store.seen(key, now=T0, window_s=IDEM)
    finally:
        await conn.close()
        await store.close()


async def test_text_from_callers_keeps_every_character(store_factory):
    store = await store_factory()
    odd = "m-\x00-é-\U0001f600"
    await put(store, [event(1, message_id=odd, sitecode="01234\x0056789", route="sub\x00name")])
    [claimed] = await store.claim(1, now=T0, lease_s=LEASE)
    assert (claimed.message_id, claimed.sitecode, claimed.route) == (odd, "01234\x0056789", "sub\x00name")
    await store.mark_dead([Dead(claimed.id, claimed.lease, 400, "Kameleoon said \x00")], now=T0)
    [letter], _ = await store.list_dead_letters(DeadLetterFilter(), limit=1)
    # An error is free text: PostgreSQL's text holds no NUL, so it is stored as U+FFFD there.
    nul = "\ufffd" if isinstance(store, PostgresOutbox) else "\x00"
    assert (letter.message_id, letter.last_error) == (odd, f"Kameleoon said {nul}")


async def test_a_statement_the_database_refuses_is_unavailable_in_its_own_words(postgres_url):
    store = await opened(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("ALTER TABLE outbox_events RENAME TO outbox_events_away")
        with pytest.raises(OutboxUnavailable) as raised:
            await store.claim(1, now=T0, lease_s=LEASE)
        assert str(raised.value) == (f'the outbox {store.location} cannot be used: UndefinedTableError: relation "outbox_events" does not exist')
        await conn.execute("ALTER TABLE outbox_events_away RENAME TO outbox_events")
        assert (await eventually(lambda: put(store, [event(1)])))[0].id  # nothing to reopen
    finally:
        await conn.close()
        await store.close()


# -- cleanup ----------------------------------------------------------------------


async def test_cleanup_goes_in_small_batches_and_never_waits_for_a_held_key(postgres_url):
    store = await opened(postgres_url, cleanup_batch=100)
    other = await asyncpg.connect(postgres_url)
    try:
        await put(store, [event(n) for n in range(250)], now=T0)
        await other.execute(NOTE_COMMIT_MODES)  # one row per statement that writes: the batches
        held = digest(event(7).dedupe_key)
        transaction = other.transaction()
        await transaction.start()
        await other.fetch("SELECT key FROM outbox_keys WHERE key = $1 FOR UPDATE", held)
        # Someone holds one key (a replica refreshing it): cleanup takes the others and goes on.
        letters, keys = await asyncio.wait_for(store.housekeep(now=T0 + IDEM + 1, dead_letter_retention_s=IDEM, idempotency_window_s=IDEM), 60)
        assert (letters, keys) == (0, 249)
        assert await other.fetchval("SELECT count(*) FROM commit_modes WHERE tbl = 'outbox_keys'") == 3  # 100, 100, 49
        await transaction.rollback()
        assert await store.housekeep(now=T0 + IDEM + 1, dead_letter_retention_s=IDEM, idempotency_window_s=IDEM) == (0, 1)
    finally:
        await other.close()
        await store.close()


# -- durability: the commit mode of each write ---------------------------------------

# Every write to the outbox's tables notes the synchronous_commit its transaction commits under
# (a statement-level trigger, added on this test's own database after the store made its schema).
NOTE_COMMIT_MODES = """
CREATE TABLE commit_modes (n bigserial, tbl text, op text, mode text);
CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_modes (tbl, op, mode) VALUES (TG_TABLE_NAME, TG_OP, current_setting('synchronous_commit'));
    RETURN NULL;
END
$$;
""" + "".join(
    f"CREATE TRIGGER note_commit_mode AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode();\n"
    for table in ("outbox_events", "outbox_dead_letters", "outbox_keys", "outbox_counters")
)


async def test_accepted_events_and_dead_letters_commit_durably_and_the_rest_with_synchronous_commit_off(postgres_url):
    """The promise of the module and README: enqueues, dead letters and operator changes commit with
    the server's synchronous_commit; claims, the other marks, sync-mode keys and cleanup with it off."""
    conn = await asyncpg.connect(postgres_url)
    store = None
    try:
        # The server's own setting here is `local` (durable, and neither PostgreSQL's default nor the
        # store's `off`): a durable write must commit under exactly what the server has.
        await conn.execute(f"ALTER DATABASE {await conn.fetchval('SELECT quote_ident(current_database())')} SET synchronous_commit = local")
        store = await opened(postgres_url)
        await conn.execute(NOTE_COMMIT_MODES)

        async def modes(write) -> tuple[object, list]:
            await conn.execute("DELETE FROM commit_modes")
            result = await write
            rows = await conn.fetch("SELECT tbl, op, mode FROM commit_modes ORDER BY n")
            return result, [tuple(row) for row in rows]

        def under(noted: list, mode: str) -> bool:
            return bool(noted) and all(m == mode for _, _, m in noted)

        durable, relaxed = "local", "off"
        accepted, noted = await modes(put(store, [event(1), event(2), event(3, key=False)]))
        assert all(a.id for a in accepted) and under(noted, durable), noted
        accepted, noted = await modes(put(store, [event(4)], max_pending=100))
        assert accepted[0].id and under(noted, durable), noted
        accepted, noted = await modes(put(store, [event(5), event(6)], window=100))
        assert under(noted, durable), noted

        claimed, noted = await modes(store.claim(4, now=T0, lease_s=LEASE))
        assert len(claimed) == 4 and under(noted, relaxed), noted
        delivered, retried, dead, released = ([c] for c in claimed)
        done, noted = await modes(store.mark_delivered(delivered, now=T0 + 1))
        assert done == 1 and under(noted, relaxed), noted
        done, noted = await modes(store.mark_retry([Retry(c.id, c.lease, T0 + 10, 503, "HTTP 503") for c in retried], now=T0 + 1))
        assert done == 1 and under(noted, relaxed), noted
        done, noted = await modes(store.release(released, now=T0 + 1))
        assert done == 1 and under(noted, relaxed), noted
        done, noted = await modes(store.mark_dead([Dead(c.id, c.lease, 400, "HTTP 400") for c in dead], now=T0 + 1))
        assert done == 1 and under(noted, durable), noted
        letters, noted = await modes(store.expire(now=T0 + 100, limit=10))
        assert [d.message_id for d in letters] == ["m-5", "m-6"] and under(noted, durable), noted

        done, noted = await modes(store.retry_dead_letters(DeadLetterFilter(ids=(dead[0].id,)), now=T0 + 100, window_s=WINDOW))
        assert done == 1 and under(noted, durable), noted
        done, noted = await modes(store.purge_dead_letters(DeadLetterFilter(ids=(letters[0].id,))))
        assert done == 1 and under(noted, durable), noted
        forgotten, noted = await modes(store.housekeep(now=T0 + IDEM + 1, dead_letter_retention_s=10, idempotency_window_s=IDEM))
        assert forgotten == (1, 5) and under(noted, relaxed), noted
        assert {(table, op) for table, op, _ in noted} == {("outbox_dead_letters", "DELETE"), ("outbox_keys", "DELETE")}

        later = T0 + IDEM + 2
        reservation, noted = await modes(store.reserve(event(7).dedupe_key, now=later, window_s=IDEM, until=later + 40))
        assert reservation.state == TAKEN and under(noted, relaxed), noted
        freed, noted = await modes(store.unreserve(event(7).dedupe_key, reservation.token, now=later))
        assert freed and under(noted, relaxed), noted
        _, noted = await modes(store.remember(event(8).dedupe_key, now=later))
        assert under(noted, relaxed), noted
        assert await store.seen(event(8).dedupe_key, now=later, window_s=IDEM)
    finally:
        await conn.close()
        if store is not None:
            await store.close()


# -- connection loss --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_database_down_means_unavailable_and_it_comes_back_by_itself(own_postgres, mode):
    store = await opened(own_postgres.create_database(), health_interval_s=0.1)
    oks: list[str] = []
    refused = 0
    stopped = asyncio.Event()

    async def load():
        nonlocal refused
        n = after_stop = 0
        while not stopped.is_set() or (refused == 0 and after_stop < 100):
            n += 1
            after_stop += stopped.is_set()
            try:
                accepted = await put(store, [event(n)], now=T0)
            except OutboxUnavailable:
                refused += 1
                await asyncio.sleep(0.01)
            else:
                oks.append(accepted[0].id)

    try:
        with capture_logs() as logs:
            loader = asyncio.ensure_future(load())
            await until(lambda: len(oks) >= 20)
            await asyncio.to_thread(own_postgres.stop, mode)
            stopped.set()
            await loader
            with pytest.raises(OutboxUnavailable):
                await store.claim(10, now=T0, lease_s=LEASE)
            await asyncio.to_thread(own_postgres.start)
            # No reopening: the pools reconnect by themselves.
            await eventually(lambda: put(store, [event(0, key=False)], now=T0))
            claimed = await eventually(lambda: store.claim(100_000, now=T0, lease_s=LEASE))
            await until(lambda: any(entry["event"] == "outbox database reachable again" for entry in logs))
            # A second outage is told again, once, and so is its end.
            await asyncio.to_thread(own_postgres.stop, mode)
            await until(lambda: sum(entry["event"] == "outbox database unreachable" for entry in logs) == 2)
            await asyncio.to_thread(own_postgres.start)
            await until(lambda: sum(entry["event"] == "outbox database reachable again" for entry in logs) == 2)
        assert refused > 0
        # Every OK was committed (an UNAVAILABLE may have been committed too: at least once).
        assert set(oks) <= {c.id for c in claimed}
        told = [(entry["event"], entry["outbox"]) for entry in logs if entry["event"].startswith("outbox database")]
        assert told == [("outbox database unreachable", store.location), ("outbox database reachable again", store.location)] * 2
        # Each outage in the driver's words, whichever way it was met (a refused connection, the server's shutdown notice).
        lost = [entry["error"] for entry in logs if entry["event"] == "outbox database unreachable"]
        assert all(re.fullmatch(r"[A-Z]\w*(Error|Exception)(: .+)?", error) and "NoneType" not in error for error in lost), lost
    finally:
        await store.close()


# -- the URL and its password -----------------------------------------------------------


def test_the_url_is_checked_and_shown_without_its_password():
    assert redact_url("postgresql://kd:pa%40ss@db:5432/kd?sslmode=require") == "postgresql://kd:***@db:5432/kd?sslmode=require"
    assert redact_url("postgres://db/kd?user=kd&password=hunter2") == "postgres://db/kd?user=kd&password=***"
    assert redact_url("postgresql://kd@db/kd") == "postgresql://kd@db/kd"
    assert redact_url("postgresql:///kd?host=/run/postgresql&password=x") == "postgresql:///kd?host=/run/postgresql&password=***"
    assert redact_url("postgresql:kd:hunter2@db") == "postgresql:..."
    assert isinstance(create("postgresql://kd@db/kd"), PostgresOutbox)
    assert create("postgres://kd:hunter2@db/kd").location == "postgres://kd:***@db/kd"
    config = from_env({"KAMELEOON_OUTBOX": "postgresql://kd:hunter2@db:5432/kd"})
    assert "hunter2" not in repr(config) and "postgresql://kd:***@db:5432/kd" in repr(config)
    for bad in ("postgresql://", "mysql://kd:hunter2@db/kd", "postgresql:kd:hunter2"):
        with pytest.raises(ConfigError) as raised:
            from_env({"KAMELEOON_OUTBOX": bad})
        assert "KAMELEOON_OUTBOX" in str(raised.value) and "hunter2" not in str(raised.value)


async def test_a_database_that_cannot_be_reached_stops_start_up_naming_the_variable(postgres):
    unreachable = f"postgresql://kd:{pg.PASSWORD}@127.0.0.1:{pg.free_port()}/kd"
    missing = postgres.url("no_such_database")
    postgres.create_password_user()
    wrong_password = postgres.url("postgres", pg.PASSWORD_USER, "wrong-" + pg.PASSWORD)
    for url, reason in ((unreachable, "Connect"), (missing, "does not exist"), (wrong_password, "password authentication failed")):
        with pytest.raises(OutboxOpenError) as raised:
            await PostgresOutbox(url).open()
        text = str(raised.value)
        assert text.startswith("KAMELEOON_OUTBOX=postgresql://") and reason in text, text
        assert pg.PASSWORD not in text and raised.value.__cause__ is None


async def test_the_password_is_in_no_log_or_error_while_the_database_is_down(own_postgres):
    own_postgres.create_password_user()
    url = own_postgres.url("postgres", pg.PASSWORD_USER, pg.PASSWORD)
    store = await opened(url, health_interval_s=0.05)
    try:
        assert pg.PASSWORD not in store.location
        with capture_logs() as logs:
            await asyncio.to_thread(own_postgres.stop, "fast")
            with pytest.raises(OutboxUnavailable) as raised:
                await put(store, [event(1)])
            await until(lambda: any(entry["event"] == "outbox database unreachable" for entry in logs))
        assert "cannot" in str(raised.value) and pg.PASSWORD not in str(raised.value)
        assert pg.PASSWORD not in repr(logs)
        # The reason is the driver's own error, named by its class: "cannot be ...: SomeError[: its words]".
        assert re.fullmatch(r"the outbox \S+ cannot be (used|reached): [A-Z]\w*(Error|Exception)(: .+)?", str(raised.value)), raised.value
        assert "NoneType" not in str(raised.value)
        [lost] = [entry for entry in logs if entry["event"] == "outbox database unreachable"]
        assert lost["outbox"] == store.location and re.fullmatch(r"[A-Z]\w*(Error|Exception)(: .+)?", lost["error"]), lost
        assert "NoneType" not in lost["error"]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url, message, scrubbed",
    [
        # A password holding ':' and a raw '@' (the last '@' ends the user info), quoted and not.
        ("postgresql://kd:pa:ss@wo%40rd@db.example:5432/outbox", "auth pa:ss@wo@rd / pa:ss@wo%40rd.", "auth *** / ***."),
        # In the query, by any case of its name, its value holding '='; other parameters left alone.
        ("postgresql://kd@db.example/outbox?sslmode=disable&PASSWORD=s=cret", "bad s=cret, sslmode=disable", "bad ***, sslmode=disable"),
        # Two passwords, one inside the other: the longer is scrubbed first, leaving no part of it.
        ("postgresql://kd:pw@db.example/outbox?password=apw", "apw or pw", "*** or ***"),
    ],
)
def test_every_spelling_of_the_password_is_scrubbed_from_driver_messages(url, message, scrubbed):
    """What the driver says goes into errors and logs through the store's own scrubbing: whatever
    spelling of the password it quotes (as written in the URL, or unquoted) never gets through."""
    store = PostgresOutbox(url)
    assert store._reason(OSError(message)) == f"OSError: {scrubbed}"


async def test_sync_calls_go_on_while_the_database_is_down(own_postgres, start_service, sink):
    """The messageId window cannot be asked: the event is still posted (at least once), a warning is logged."""
    url = own_postgres.create_database()
    _, stub = await start_service(delivery="sync", outbox=url, api_key=API_KEY, sitecode=SITECODE)
    await asyncio.to_thread(own_postgres.stop, "fast")
    try:
        answer = await stub.LogEvent(pb.LogEventRequest(timestamp="2024-01-01T00:00:00Z", message_id="down-1"), timeout=10)
        assert answer.http_status == 200
        assert [r.json()["messageId"] for r in sink.received] == ["down-1"]
    finally:
        await asyncio.to_thread(own_postgres.start)


# -- migrations ---------------------------------------------------------------------

# The schema as release 1 wrote it (migration 1, word for word), to upgrade from.
SCHEMA_1 = """
CREATE TABLE outbox_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE outbox_events (
    id bigserial PRIMARY KEY, action text NOT NULL, route bytea NOT NULL, sitecode bytea NOT NULL, message_id bytea NOT NULL,
    body bytea NOT NULL, credentials text NOT NULL, accepted_at double precision NOT NULL, expires_at double precision NOT NULL,
    due_at double precision NOT NULL, lease bigint, attempts integer NOT NULL DEFAULT 0, first_attempt_at double precision,
    last_attempt_at double precision, last_status integer NOT NULL DEFAULT 0, last_error text NOT NULL DEFAULT ''
);
CREATE INDEX outbox_events_due ON outbox_events (due_at);
CREATE INDEX outbox_events_expires ON outbox_events (expires_at);
CREATE TABLE outbox_dead_letters (
    id bigint PRIMARY KEY, action text NOT NULL, route bytea NOT NULL, sitecode bytea NOT NULL, message_id bytea NOT NULL,
    body bytea NOT NULL, credentials text NOT NULL, accepted_at double precision NOT NULL, attempts integer NOT NULL,
    first_attempt_at double precision, last_attempt_at double precision, last_status integer NOT NULL, last_error text NOT NULL,
    dead_at double precision NOT NULL
);
CREATE INDEX outbox_dead_letters_dead_at ON outbox_dead_letters (dead_at);
CREATE TABLE outbox_keys (key bytea PRIMARY KEY, at double precision NOT NULL);
CREATE INDEX outbox_keys_at ON outbox_keys (at);
CREATE TABLE outbox_counters (slot smallint PRIMARY KEY, live bigint NOT NULL);
INSERT INTO outbox_counters (slot, live) SELECT slot, 0 FROM generate_series(0, 31) AS slot;
CREATE FUNCTION outbox_refuse(live bigint, adding bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the outbox is full' USING ERRCODE = 'KD001', DETAIL = live || ' ' || adding;
END
$$;
INSERT INTO outbox_schema_version (version) VALUES (1);
"""
# What migration 2 changed (word for word): the schema as release 2 left it is SCHEMA_1 + this.
SCHEMA_2 = """
CREATE INDEX outbox_events_due_id ON outbox_events (due_at, id);
DROP INDEX outbox_events_due;
INSERT INTO outbox_schema_version (version) VALUES (2);
"""
# Migration 3, word for word.
SCHEMA_3 = """
ALTER TABLE outbox_keys ADD COLUMN reservation bigint, ADD COLUMN reserved_until double precision;
INSERT INTO outbox_schema_version (version) VALUES (3);
"""
# Migration 4, word for word (the delivery overview's tables).
SCHEMA_4 = """
CREATE TABLE outbox_overview (
    minute bigint NOT NULL,
    source text NOT NULL,
    destination text NOT NULL,
    stage text NOT NULL,
    reason text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (minute, source, destination, stage, reason)
);
CREATE TABLE outbox_samples (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    destination text NOT NULL,
    reason text NOT NULL,
    at double precision NOT NULL,
    message_id text NOT NULL,
    event text NOT NULL,
    request text NOT NULL,
    http_status integer NOT NULL,
    response text NOT NULL,
    attempts integer NOT NULL
);
CREATE INDEX outbox_samples_kind ON outbox_samples (reason, source, destination, at);
CREATE INDEX outbox_samples_at ON outbox_samples (at);
INSERT INTO outbox_schema_version (version) VALUES (4);
"""
EARLIER = {1: SCHEMA_1, 2: SCHEMA_1 + SCHEMA_2, 3: SCHEMA_1 + SCHEMA_2 + SCHEMA_3, 4: SCHEMA_1 + SCHEMA_2 + SCHEMA_3 + SCHEMA_4}


@pytest.mark.parametrize("version", sorted(EARLIER))
async def test_a_database_at_an_earlier_schema_version_is_upgraded_at_start_up(postgres_url, start_service, sink, version):
    assert SCHEMA_VERSION == 5  # a new migration: add the schema before it to EARLIER
    now = time.time()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(EARLIER[version])
        # What the earlier release left behind: a pending event, a taken messageId, a dead letter.
        body = b'{"type":"track","event":"Old","messageId":"old-1","timestamp":"2024-01-01T00:00:00Z","properties":{}}'
        await conn.execute(
            "INSERT INTO outbox_events (action, route, sitecode, message_id, body, credentials, accepted_at, expires_at, due_at) "
            "VALUES ('logEvent', 'logEvent', '0123456789', 'old-1', $1, 'server', $2::float8, $2::float8 + 3600, $2::float8)",
            body,
            now,
        )
        await conn.execute("UPDATE outbox_counters SET live = 1 WHERE slot = 0")
        await conn.execute("INSERT INTO outbox_keys (key, at) VALUES ($1, $2)", digest(f"{SITECODE}\x1flogEvent\x1fold-2"), now)
        await conn.execute(
            "INSERT INTO outbox_dead_letters VALUES (777, 'identify', 'identify', '0123456789', 'old-3', '{}', 'server', $1, 1, $1, $1, 400, 'no', $1)",
            now,
        )
    finally:
        await conn.close()

    app, stub = await start_service(delivery="queued", outbox=postgres_url, api_key=API_KEY, sitecode=SITECODE)
    await until(lambda: [r.json()["messageId"] for r in sink.accepted()] == ["old-1"])
    again = await stub.LogEvent(pb.LogEventRequest(timestamp="2024-01-01T00:00:00Z", message_id="old-2"), timeout=10)
    assert again.duplicate
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        listed = await pb_grpc.OutboxAdminStub(channel).ListDeadLetters(pb.ListDeadLettersRequest(), timeout=5)
    assert [(d.id, d.message_id) for d in listed.dead_letters] == [("777", "old-3")]
    conn = await asyncpg.connect(postgres_url)
    try:
        assert [r[0] for r in await conn.fetch("SELECT version FROM outbox_schema_version ORDER BY version")] == [1, 2, 3, 4, 5]
        indexes = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'outbox_events'")}
        assert "outbox_events_due_id" in indexes and "outbox_events_due" not in indexes
        # Migration 3: the key the old release took is a plain taken key (no reservation), and a sync call reserves.
        rows = await conn.fetch("SELECT reservation, reserved_until FROM outbox_keys WHERE key = $1", digest(f"{SITECODE}\x1flogEvent\x1fold-2"))
        assert [tuple(r) for r in rows] == [(None, None)]
    finally:
        await conn.close()
    store = await opened(postgres_url)
    try:
        reservation = await store.reserve("some key", now=now, window_s=IDEM, until=now + 30)
        assert reservation.state == "taken" and not await store.seen("some key", now=now, window_s=IDEM)
        # Migration 4: the delivery overview's tables.
        minute = int(now // 60)
        await store.add_overview(minute, [("s", "d", "received", "", 2)], [], first_minute=minute - 1, samples_since=now, samples_kept=10)
        assert ("s", "d", "received", "", 2) in await store.overview(minute * 60, now + 60)
        # Migration 5: a delivery's time kept with its key.
        await store.remember("delivered key", now=now)
        assert await store.delivered_at(["delivered key"]) == {"delivered key": now}
    finally:
        await store.close()


async def test_serve_and_the_outbox_command_stop_naming_the_variable_when_the_database_is_unreachable():
    url = f"postgresql://kd:{pg.PASSWORD}@127.0.0.1:{pg.free_port()}/kd"
    code, _, err = await outbox_command(url, "stats")
    assert code == 2 and "KAMELEOON_OUTBOX=postgresql://kd:***@127.0.0.1" in err and pg.PASSWORD not in err
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        "serve",
        "--listen",
        f"127.0.0.1:{pg.free_port()}",
        env={**os.environ, "KAMELEOON_DELIVERY": "queued", "KAMELEOON_OUTBOX": url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "KAMELEOON_OUTBOX=postgresql://kd:***@127.0.0.1" in err.decode() and pg.PASSWORD not in err.decode()


async def test_the_password_shows_nowhere_in_a_running_service(postgres, start_service, sink):
    postgres.create_password_user()
    database = postgres.create_database().rsplit("/", 1)[1]
    url = postgres.url(database, pg.PASSWORD_USER, pg.PASSWORD)
    app, stub = await start_service(delivery="queued", outbox=url, api_key=API_KEY, sitecode=SITECODE)
    response = await stub.LogEvent(pb.LogEventRequest(timestamp="2024-01-01T00:00:00Z", message_id="pw-1"), timeout=10)
    assert response.queued
    await until(lambda: [r.json()["messageId"] for r in sink.accepted()] == ["pw-1"])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stats = await pb_grpc.OutboxAdminStub(channel).GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)
    assert stats.location == f"postgresql://{pg.PASSWORD_USER}:***@127.0.0.1:{postgres.port}/{database}"
    assert pg.PASSWORD not in app.metrics.exposition().decode()


async def test_a_batch_is_accepted_in_one_statement_and_claimed_in_one(postgres, postgres_url):
    if not postgres.has_statement_stats():
        pytest.skip("pg_stat_statements is not installed with these PostgreSQL binaries")
    store = await opened(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # This database's counts only: another process may be counting its own on the same server.
        await conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
        accepted = await put(store, [event(n) for n in range(500)] + [event(7)], max_pending=10_000)
        assert sum(not a.duplicate for a in accepted) == 500
        claimed = await store.claim(500, now=T0, lease_s=LEASE)
        assert await store.mark_delivered(claimed, now=T0) == 500
        calls = await conn.fetch(
            "SELECT calls, rows FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND query LIKE '%outbox_events%' ORDER BY query"
        )
    finally:
        await conn.close()
        await store.close()
    # One enqueue, one claim, one mark: three statements for 500 events, each its own transaction.
    assert [row["calls"] for row in calls] == [1, 1, 1]
