"""The PostgreSQL outbox: one database shared by every replica and every process.

``KAMELEOON_OUTBOX=postgresql://user@host:5432/db`` (asyncpg). Any replica
delivers any event; the messageId window lives here too, so a caller that
retries on another replica gets ``duplicate``.

Schema: numbered migrations (:data:`MIGRATIONS`), applied at start-up in one
transaction under a PostgreSQL advisory lock, recorded in
``outbox_schema_version``: replicas starting together wait for each other
instead of racing, and a replica meeting a newer schema refuses to start.

One statement, one round trip, one transaction: every operation is a single
SQL statement (data-modifying CTEs), sent in autocommit. An enqueue of a whole
SendBatch takes its idempotency keys, checks the limit, inserts the events and
counts them in one statement whose parameters are arrays (``unnest``).

Claims: ``SELECT ... ORDER BY due_at, id LIMIT n FOR UPDATE SKIP LOCKED`` then an
UPDATE that moves ``due_at`` to the end of the lease (the same trick as the
SQLite store): replicas never wait for one another's claims nor take the same
event, and a claim whose holder died becomes due again when its lease ends.

The number of undelivered events (``KAMELEOON_OUTBOX_MAX_PENDING``) is kept in
``outbox_counters``, a few rows each statement picks one of at random, summed
on enqueue: no count(*) per call and no single hot row that every commit must
queue for. Under concurrent enqueues the limit can be passed by what commits at
the same moment.

Durability: enqueues, dead letters and operator changes use connections with
``synchronous_commit`` as the server has it (on by default: an OK survives a
crash of the database host). Claims, marks, sync-mode keys and cleanup use a
second, small pool with ``synchronous_commit=off``: losing one of those in a
database crash means a redelivery, never a loss (the SQLite store makes the same
trade with ``synchronous=NORMAL``).

Housekeeping deletes old idempotency keys and dead letters in batches of
:data:`CLEANUP_BATCH` rows, each its own short transaction that skips rows
someone else holds, so it never stalls enqueues or deliveries. (Partitioning
the keys by time would need the partition key in the unique key, which the
window's ON CONFLICT relies on.)

Connections: two asyncpg pools; a connection that the server closed is
replaced on the next acquire, a health check every :data:`HEALTH_INTERVAL_S`
replaces them all when the database stops answering and logs the outage and
the recovery once each. While the database is down every operation raises
OutboxUnavailable (enqueue: UNAVAILABLE, never an OK); nothing to restart when
it is back. The password never leaves this module: :attr:`location` and every
error text show the URL with it replaced by ``***``.

Text that callers send (route, sitecode, messageId) is stored as UTF-8 bytes
(``bytea``): PostgreSQL text cannot hold NUL, JSON strings can. Idempotency
keys are stored as a 16-byte BLAKE2b digest.

Reservations (``outbox_keys.reservation``, a token, and ``reserved_until``;
NULL for a key taken by a delivery or an enqueue): ``reserve`` and
``enqueue`` take a key with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``
the row is free, which PostgreSQL decides on the row's latest committed
version, so of two replicas exactly one takes it. What the others are told
comes from the statement's snapshot: a key is called a duplicate only when
that snapshot shows it taken within the window; any other key not taken is
``busy`` (with the holder's expiry when the snapshot shows it, else "look
again now"), never a duplicate without a recorded delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import asyncpg
import structlog

from service.config.values import outbox_url as check_url
from service.config.values import redact_url
from service.errors import OutboxFull, OutboxOpenError, OutboxUnavailable
from service.outbox.base import (
    BUSY,
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    TAKEN,
    Accepted,
    ActionStats,
    Claimed,
    Dead,
    DeadLetter,
    DeadLetterFilter,
    Found,
    NewEvent,
    Outbox,
    Reservation,
    Retry,
    Stats,
    page_after,
)

log = structlog.get_logger("kameleoon.outbox")

CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
DURABLE_POOL = (1, 10)  # (min, max) connections: enqueues, dead letters, operators
RELAXED_POOL = (1, 4)  # claims, marks, sync-mode keys, cleanup
HEALTH_INTERVAL_S = 5.0
HEALTH_TIMEOUT_S = 3.0
CLEANUP_BATCH = 2000
COUNTER_SLOTS = 32  # rows of outbox_counters (migration 1 made them)
APPLICATION_NAME = "kameleoon-destination"
# pg_advisory_xact_lock key of schema migrations: b"kdoutbox" as a big-endian bigint.
MIGRATION_LOCK = int.from_bytes(b"kdoutbox", "big")
FULL_SQLSTATE = "KD001"  # raised by outbox_refuse(): the limit would be passed

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS outbox_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

# Migration N (1-based) takes the schema from version N-1 to N. Append only: a
# released migration is never edited; a change is one more entry.
MIGRATIONS: tuple[str, ...] = (
    # 1: the queue, dead letters, the idempotency window and the counters of undelivered events.
    """
    CREATE TABLE outbox_events (
        id bigserial PRIMARY KEY,
        action text NOT NULL,
        route bytea NOT NULL,
        sitecode bytea NOT NULL,
        message_id bytea NOT NULL,
        body bytea NOT NULL,
        credentials text NOT NULL,
        accepted_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        due_at double precision NOT NULL,
        lease bigint,
        attempts integer NOT NULL DEFAULT 0,
        first_attempt_at double precision,
        last_attempt_at double precision,
        last_status integer NOT NULL DEFAULT 0,
        last_error text NOT NULL DEFAULT ''
    );
    CREATE INDEX outbox_events_due ON outbox_events (due_at);
    CREATE INDEX outbox_events_expires ON outbox_events (expires_at);
    CREATE TABLE outbox_dead_letters (
        id bigint PRIMARY KEY,
        action text NOT NULL,
        route bytea NOT NULL,
        sitecode bytea NOT NULL,
        message_id bytea NOT NULL,
        body bytea NOT NULL,
        credentials text NOT NULL,
        accepted_at double precision NOT NULL,
        attempts integer NOT NULL,
        first_attempt_at double precision,
        last_attempt_at double precision,
        last_status integer NOT NULL,
        last_error text NOT NULL,
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
    """,
    # 2: events due at the same moment are claimed in acceptance order (id), deterministically.
    """
    CREATE INDEX outbox_events_due_id ON outbox_events (due_at, id);
    DROP INDEX outbox_events_due;
    """,
    # 3: a key can be reserved by a synchronous delivery in flight (a token, until when); NULL: taken.
    """
    ALTER TABLE outbox_keys ADD COLUMN reservation bigint, ADD COLUMN reserved_until double precision;
    """,
    # 4: the delivery overview: per-minute counts by instance, stage and reason, and samples of failures.
    """
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
    """,
    # 5: when a key's event was delivered (OutboxAdmin.GetEvent).
    """
    ALTER TABLE outbox_keys ADD COLUMN delivered_at double precision;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_SAMPLE_COLUMNS = "source, destination, reason, at, message_id, event, request, http_status, response, attempts"
ADD_OVERVIEW = f"""
WITH counted AS (
    INSERT INTO outbox_overview (minute, source, destination, stage, reason, count)
    SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
    ON CONFLICT (minute, source, destination, stage, reason) DO UPDATE SET count = outbox_overview.count + excluded.count
), added AS (
    INSERT INTO outbox_samples ({_SAMPLE_COLUMNS})
    SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::float8[], $11::text[], $12::text[], $13::text[], $14::int[], $15::text[], $16::int[])
), old AS (
    DELETE FROM outbox_samples WHERE at < $17::float8
)
DELETE FROM outbox_overview WHERE minute < $18::bigint
"""
# The latest SAMPLES_KEPT of each (source, destination, reason) just added to, the others deleted.
TRIM_SAMPLES = """
DELETE FROM outbox_samples AS s USING (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY source, destination, reason ORDER BY at DESC, id DESC) AS n
        FROM outbox_samples WHERE (source, destination, reason) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
    ) AS ranked WHERE n > $4::int
) AS extra WHERE s.id = extra.id
"""
OVERVIEW = """
SELECT source, destination, stage, reason, sum(count)::bigint FROM outbox_overview
WHERE minute >= $1::bigint AND minute < $2::bigint GROUP BY 1, 2, 3, 4
"""
SAMPLES = f"""
SELECT {_SAMPLE_COLUMNS} FROM outbox_samples
WHERE reason = $1::text AND ($2::text = '' OR source = $2::text) AND ($3::text = '' OR destination = $3::text)
ORDER BY at DESC, id DESC LIMIT 1000
"""

_MOVED = "id, action, route, sitecode, message_id, body, credentials, accepted_at, attempts, first_attempt_at, last_attempt_at"
_LETTER_COLUMNS = (
    "id, action, route, sitecode, message_id, attempts, accepted_at, first_attempt_at, last_attempt_at, dead_at, last_status, last_error"
)
_COUNT = "UPDATE outbox_counters SET live = live {sign} (SELECT count(*) FROM {rows}) WHERE slot = ${slot} AND EXISTS (SELECT 1 FROM {rows})"

_ENQUEUE = (
    """
WITH input AS MATERIALIZED (
    SELECT t.*, row_number() OVER (PARTITION BY t.key ORDER BY t.ord) AS nth
    FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::text[], $7::bytea[])
        WITH ORDINALITY AS t(action, route, sitecode, message_id, body, credentials, key, ord)
), taken AS (
    INSERT INTO outbox_keys AS k (key, at)
    SELECT key, $8::float8 FROM input WHERE key IS NOT NULL AND nth = 1 ORDER BY key
    ON CONFLICT (key) DO UPDATE SET at = excluded.at, reservation = NULL, reserved_until = NULL
    WHERE (k.reservation IS NULL AND k.at < $9::float8) OR (k.reservation IS NOT NULL AND k.reserved_until <= $8::float8)
    RETURNING key
), missed AS MATERIALIZED (
    SELECT ord, key FROM input WHERE key IS NOT NULL AND key NOT IN (SELECT key FROM taken)
), busy AS (
    -- not taken and not (in this statement's snapshot) taken within the window: a reservation holds it
    SELECT m.ord, CASE WHEN k.reserved_until > $8::float8 THEN k.reserved_until ELSE $8::float8 END AS until
    FROM missed AS m LEFT JOIN outbox_keys AS k ON k.key = m.key
    WHERE NOT coalesce(k.reservation IS NULL AND k.at >= $9::float8, false)
), chosen AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('outbox_events', 'id')) AS id, c.*
    FROM (SELECT * FROM input WHERE key IS NULL OR (nth = 1 AND key IN (SELECT key FROM taken)) ORDER BY ord) AS c
){guard}, stored AS (
    INSERT INTO outbox_events (id, action, route, sitecode, message_id, body, credentials, accepted_at, expires_at, due_at)
    SELECT id, action, route, sitecode, message_id, body, credentials, $8::float8, $10::float8, $8::float8 FROM chosen{unless_refused}
), counted AS (
    """
    + _COUNT.format(sign="+", rows="chosen", slot=11)
    + """
)
SELECT ord, id, NULL::float8 FROM chosen
UNION ALL
SELECT ord, NULL, until FROM busy
"""
)
_GUARD = """, refused AS (
    SELECT outbox_refuse(live, adding) FROM (
        SELECT (SELECT coalesce(sum(live), 0)::bigint FROM outbox_counters) AS live, (SELECT count(*) FROM chosen) AS adding
    ) AS s
    WHERE adding > 0 AND live + adding > $12::bigint
)"""
ENQUEUE = _ENQUEUE.format(guard="", unless_refused="")
ENQUEUE_LIMITED = _ENQUEUE.format(guard=_GUARD, unless_refused=" WHERE NOT EXISTS (SELECT 1 FROM refused)")

CLAIM = """
WITH picked AS (
    SELECT id FROM outbox_events
    WHERE due_at <= $1::float8 AND expires_at > $1::float8
    ORDER BY due_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox_events AS e
SET due_at = $3::float8, lease = $4::bigint, attempts = e.attempts + 1,
    first_attempt_at = coalesce(e.first_attempt_at, $1::float8), last_attempt_at = $1::float8
FROM picked WHERE e.id = picked.id
RETURNING e.id, e.action, e.route, e.sitecode, e.message_id, e.body, e.credentials, e.attempts, e.accepted_at, e.expires_at
"""

MARK_DELIVERED = (
    """
WITH done AS (
    DELETE FROM outbox_events AS e USING unnest($1::bigint[], $2::bigint[]) AS t(id, lease)
    WHERE e.id = t.id AND e.lease = t.lease
    RETURNING e.id
), stamped AS (
    UPDATE outbox_keys SET delivered_at = $4::float8 WHERE key = ANY($5::bytea[])
), counted AS (
    """
    + _COUNT.format(sign="-", rows="done", slot=3)
    + """
)
SELECT count(*) FROM done
"""
)

MARK_RETRY = """
UPDATE outbox_events AS e SET due_at = t.at, lease = NULL, last_status = t.status, last_error = t.error
FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::integer[], $5::text[]) AS t(id, lease, at, status, error)
WHERE e.id = t.id AND e.lease = t.lease
"""

MARK_DEAD = f"""
WITH moved AS (
    DELETE FROM outbox_events AS e USING unnest($1::bigint[], $2::bigint[], $3::integer[], $4::text[]) AS t(id, lease, status, error)
    WHERE e.id = t.id AND e.lease = t.lease
    RETURNING {", ".join("e." + c.strip() for c in _MOVED.split(","))}, t.status, t.error
), letters AS (
    INSERT INTO outbox_dead_letters ({_MOVED}, dead_at, last_status, last_error)
    SELECT {_MOVED}, $5::float8, status, error FROM moved
), counted AS (
    {_COUNT.format(sign="-", rows="moved", slot=6)}
)
SELECT count(*) FROM moved
"""

RELEASE = """
UPDATE outbox_events AS e SET due_at = $3::float8, lease = NULL, attempts = e.attempts - 1,
    first_attempt_at = CASE WHEN e.attempts = 1 THEN NULL ELSE e.first_attempt_at END,
    last_attempt_at = CASE WHEN e.attempts = 1 THEN NULL ELSE e.last_attempt_at END
FROM unnest($1::bigint[], $2::bigint[]) AS t(id, lease)
WHERE e.id = t.id AND e.lease = t.lease
"""

EXPIRE = f"""
WITH picked AS (
    SELECT id FROM outbox_events
    WHERE expires_at <= $1::float8 AND (lease IS NULL OR due_at <= $1::float8)
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), moved AS (
    DELETE FROM outbox_events AS e USING picked WHERE e.id = picked.id RETURNING e.*
), letters AS (
    INSERT INTO outbox_dead_letters ({_MOVED}, dead_at, last_status, last_error)
    SELECT {_MOVED}, $1::float8, last_status,
        CASE WHEN last_error = '' THEN 'the retry window ended before any attempt'
        WHEN last_error LIKE 'the retry window ended%' THEN last_error
        ELSE 'the retry window ended; last error: ' || last_error END
    FROM moved
    RETURNING {_LETTER_COLUMNS}
), counted AS (
    {_COUNT.format(sign="-", rows="moved", slot=3)}
)
SELECT {_LETTER_COLUMNS} FROM letters ORDER BY id
"""

STATS = """
SELECT action, count(*) - count(*) FILTER (WHERE lease IS NOT NULL AND due_at > $1::float8),
       count(*) FILTER (WHERE lease IS NOT NULL AND due_at > $1::float8), 0::bigint, min(accepted_at)
FROM outbox_events GROUP BY action
UNION ALL
SELECT action, 0, 0, count(*), NULL FROM outbox_dead_letters GROUP BY action
"""

SEEN = "SELECT EXISTS (SELECT 1 FROM outbox_keys WHERE key = $1 AND at >= $2::float8 AND reservation IS NULL)"
REMEMBER = """
INSERT INTO outbox_keys AS k (key, at, delivered_at) VALUES ($1, $2::float8, $2::float8)
ON CONFLICT (key) DO UPDATE SET at = excluded.at, reservation = NULL, reserved_until = NULL, delivered_at = excluded.at
"""
FIND_PENDING = """
SELECT id, action, route, sitecode, credentials, attempts, due_at, lease, last_status, last_error
FROM outbox_events WHERE message_id = $1::bytea ORDER BY id
"""
FIND_DEAD = """
SELECT id, action, route, sitecode, credentials, attempts, dead_at, last_status, last_error
FROM outbox_dead_letters WHERE message_id = $1::bytea ORDER BY id
"""
DELIVERED_AT = "SELECT key, delivered_at FROM outbox_keys WHERE key = ANY($1::bytea[]) AND delivered_at IS NOT NULL AND reservation IS NULL"
# $1 key, $2 now, $3 token, $4 until, $5 start of the window. Returns (taken, reservation, reserved_until, at)
# with the row as this statement's snapshot saw it.
RESERVE = """
WITH taken AS (
    INSERT INTO outbox_keys AS k (key, at, reservation, reserved_until) VALUES ($1, $2::float8, $3::bigint, $4::float8)
    ON CONFLICT (key) DO UPDATE SET at = excluded.at, reservation = excluded.reservation, reserved_until = excluded.reserved_until
    WHERE (k.reservation IS NULL AND k.at < $5::float8) OR (k.reservation IS NOT NULL AND k.reserved_until <= $2::float8)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM taken), k.reservation, k.reserved_until, k.at
FROM (SELECT 1) AS one LEFT JOIN outbox_keys AS k ON k.key = $1
"""
UNRESERVE = "DELETE FROM outbox_keys WHERE key = $1 AND reservation = $2::bigint"

# Housekeeping: one small batch per statement; rows someone holds are left for the next round.
FORGET_KEYS = """
DELETE FROM outbox_keys WHERE key IN (
    SELECT key FROM outbox_keys WHERE at < $1::float8 AND (reservation IS NULL OR reserved_until <= $3::float8)
    LIMIT $2 FOR UPDATE SKIP LOCKED
)
"""
FORGET_LETTERS = """
DELETE FROM outbox_dead_letters WHERE id IN (
    SELECT id FROM outbox_dead_letters WHERE dead_at < $1::float8 LIMIT $2 FOR UPDATE SKIP LOCKED
)
"""

# The server went away or is going: every pooled connection is suspect (a cancelled statement is not).
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
_STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, asyncio.TimeoutError)


def _passwords(url: str) -> tuple[str, ...]:
    """Every spelling of the URL's password, to scrub from driver messages."""
    parts = urlsplit(url)
    found = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if name.lower() == "password":
            found.append(value)
    spellings = {spelling for raw in found for spelling in (raw, unquote(raw)) if spelling}
    return tuple(sorted(spellings, key=len, reverse=True))


def digest(key: str) -> bytes:
    """The stored form of an idempotency key."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(raw: bytes) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


def _int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def _count(status: str) -> int:
    """Rows a command touched, from its status tag ("UPDATE 3", "DELETE 0")."""
    return int(status.rsplit(" ", 1)[-1])


def _letter(row) -> DeadLetter:
    return DeadLetter(str(row[0]), row[1], _text(row[2]), _text(row[3]), _text(row[4]), row[5], row[6], row[7], row[8], row[9], row[10], row[11])


def _where(where: DeadLetterFilter, params: list) -> str:
    """The SQL condition of ``where``; its values are appended to ``params`` ($n follow on)."""
    clauses = ["true"]

    def param(value) -> str:
        params.append(value)
        return f"${len(params)}"

    if where.ids:
        clauses.append(f"id = ANY({param([i for i in map(_int, where.ids) if i is not None])}::bigint[])")
    if where.action is not None:
        clauses.append(f"action = {param(where.action)}")
    if where.http_status is not None:
        clauses.append(f"last_status = {param(where.http_status)}::integer")
    if where.since is not None:
        clauses.append(f"dead_at >= {param(where.since)}::float8")
    if where.until is not None:
        clauses.append(f"dead_at < {param(where.until)}::float8")
    return " AND ".join(clauses)


def _safe_text(text: str) -> str:
    """Free text for a text column (PostgreSQL text holds no NUL)."""
    return text.replace("\x00", "\ufffd")


class PostgresOutbox(Outbox):
    def __init__(self, url: str, *, health_interval_s: float = HEALTH_INTERVAL_S, cleanup_batch: int = CLEANUP_BATCH):
        check_url(url)
        self._url = url
        self._health_interval_s = health_interval_s
        self._cleanup_batch = cleanup_batch
        self.location = redact_url(url)
        self._secrets = _passwords(url)
        self._durable: asyncpg.Pool | None = None
        self._relaxed: asyncpg.Pool | None = None
        self._health: asyncio.Task | None = None
        self.reachable = True  # what the last health check or operation found

    # -- life -----------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._durable = await self._pool(*DURABLE_POOL, {})
            self._relaxed = await self._pool(*RELAXED_POOL, {"synchronous_commit": "off"})
            async with self._durable.acquire() as conn:
                await migrate(conn)
        except OutboxOpenError as exc:
            await self._terminate()
            raise OutboxOpenError(f"KAMELEOON_OUTBOX={self.location}: {exc}") from None
        except (*_STORE_ERRORS, ValueError) as exc:
            await self._terminate()
            raise OutboxOpenError(f"KAMELEOON_OUTBOX={self.location}: the database cannot be used: {self._reason(exc)}") from None
        self._health = asyncio.ensure_future(self._check_health())

    async def _pool(self, min_size: int, max_size: int, settings: dict) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self._url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
            server_settings={"application_name": APPLICATION_NAME, **settings},
        )

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            try:
                await self._health
            except asyncio.CancelledError:
                pass
            self._health = None
        for pool in (self._durable, self._relaxed):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT_S)
                except (TimeoutError, *_STORE_ERRORS):
                    pool.terminate()
        self._durable = self._relaxed = None

    async def _terminate(self) -> None:
        for pool in (self._durable, self._relaxed):
            if pool is not None:
                pool.terminate()
        self._durable = self._relaxed = None

    async def _check_health(self) -> None:
        """Every few seconds: is the database answering? Replace every connection when it is not."""
        while True:
            await asyncio.sleep(self._health_interval_s)
            try:
                for pool in (self._durable, self._relaxed):
                    await pool.fetchval("SELECT 1", timeout=HEALTH_TIMEOUT_S)
            except _STORE_ERRORS as exc:
                await self._lost(exc)
            else:
                if not self.reachable:
                    self.reachable = True
                    log.info("outbox database reachable again", outbox=self.location)

    async def _lost(self, exc: BaseException) -> None:
        for pool in (self._durable, self._relaxed):
            if pool is not None:
                await pool.expire_connections()
        if self.reachable:
            self.reachable = False
            log.warning("outbox database unreachable", outbox=self.location, error=self._reason(exc))

    def _reason(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _call(self, durable: bool, method: str, sql: str, *args):
        """Run one statement (its own transaction) on a pooled connection; store errors become OutboxUnavailable."""
        pool = self._durable if durable else self._relaxed
        if pool is None:
            raise OutboxUnavailable(f"the outbox {self.location} is closed")
        try:
            return await getattr(pool, method)(sql, *args)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == FULL_SQLSTATE:
                live, adding = (int(n) for n in exc.detail.split())
                raise OutboxFull(
                    f"the outbox holds {live} undelivered events; {adding} more would pass KAMELEOON_OUTBOX_MAX_PENDING: retry later"
                ) from None
            if isinstance(exc, _CONNECTION_LOST):
                await self._lost(exc)
            raise OutboxUnavailable(f"the outbox {self.location} cannot be used: {self._reason(exc)}") from None
        except _STORE_ERRORS as exc:
            await self._lost(exc)
            raise OutboxUnavailable(f"the outbox {self.location} cannot be reached: {self._reason(exc)}") from None

    # -- accepting ------------------------------------------------------------

    async def enqueue(
        self, events: Sequence[NewEvent], *, now: float, window_s: float, idempotency_window_s: float, max_pending: int
    ) -> list[Accepted]:
        if not events:
            return []
        args = (
            [e.action for e in events],
            [_bytes(e.route) for e in events],
            [_bytes(e.sitecode) for e in events],
            [_bytes(e.message_id) for e in events],
            [e.body for e in events],
            [e.credentials for e in events],
            [None if e.dedupe_key is None else digest(e.dedupe_key) for e in events],
            now,
            now - idempotency_window_s,
            now + window_s,
            random.randrange(COUNTER_SLOTS),
        )
        if max_pending:
            rows = await self._call(True, "fetch", ENQUEUE_LIMITED, *args, max_pending)
        else:
            rows = await self._call(True, "fetch", ENQUEUE, *args)
        accepted = [Accepted(None, duplicate=True)] * len(events)
        for ord_, id_, busy_until in rows:
            accepted[ord_ - 1] = Accepted(str(id_)) if id_ is not None else Accepted(None, busy_until=busy_until)
        return accepted

    # -- delivering -----------------------------------------------------------

    async def claim(self, limit: int, *, now: float, lease_s: float) -> list[Claimed]:
        lease = secrets.randbits(63)
        rows = await self._call(False, "fetch", CLAIM, now, limit, now + lease_s, lease)
        claimed = [Claimed(str(r[0]), str(lease), r[1], _text(r[2]), _text(r[3]), _text(r[4]), bytes(r[5]), r[6], r[7], r[8], r[9]) for r in rows]
        claimed.sort(key=lambda c: int(c.id))
        return claimed

    async def next_due(self) -> float | None:
        return await self._call(False, "fetchval", "SELECT min(due_at) FROM outbox_events")

    @staticmethod
    def _held(items) -> tuple[list[int], list[int]]:
        ids, leases = [], []
        for item in items:
            ids.append(int(item.id))
            leases.append(int(item.lease))
        return ids, leases

    async def mark_delivered(self, claims: Sequence[Claimed], *, now: float, keys: Sequence[str] = ()) -> int:
        if not claims:
            return 0
        stamped = [digest(key) for key in keys]
        return await self._call(False, "fetchval", MARK_DELIVERED, *self._held(claims), random.randrange(COUNTER_SLOTS), now, stamped)

    async def mark_retry(self, retries: Sequence[Retry], *, now: float) -> int:
        if not retries:
            return 0
        status = await self._call(
            False,
            "execute",
            MARK_RETRY,
            *self._held(retries),
            [r.at for r in retries],
            [r.http_status for r in retries],
            [_safe_text(r.error) for r in retries],
        )
        return _count(status)

    async def mark_dead(self, dead: Sequence[Dead], *, now: float) -> int:
        if not dead:
            return 0
        return await self._call(
            True,
            "fetchval",
            MARK_DEAD,
            *self._held(dead),
            [d.http_status for d in dead],
            [_safe_text(d.error) for d in dead],
            now,
            random.randrange(COUNTER_SLOTS),
        )

    async def release(self, claims: Sequence[Claimed], *, now: float) -> int:
        if not claims:
            return 0
        return _count(await self._call(False, "execute", RELEASE, *self._held(claims), now))

    async def expire(self, *, now: float, limit: int) -> list[DeadLetter]:
        rows = await self._call(True, "fetch", EXPIRE, now, limit, random.randrange(COUNTER_SLOTS))
        return [_letter(row) for row in rows]

    # -- operators ------------------------------------------------------------

    async def stats(self, *, now: float) -> Stats:
        stats = Stats()
        oldest = None
        for action, pending, in_flight, dead, first in await self._call(False, "fetch", STATS, now):
            entry = stats.by_action.setdefault(action, ActionStats())
            entry.pending += pending
            entry.in_flight += in_flight
            entry.dead += dead
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
        for entry in stats.by_action.values():
            stats.pending += entry.pending
            stats.in_flight += entry.in_flight
            stats.dead += entry.dead
        stats.oldest_pending_age_s = max(0.0, now - oldest) if oldest is not None else 0.0
        return stats

    async def list_dead_letters(self, where: DeadLetterFilter, *, limit: int, cursor: str | None = None) -> tuple[list[DeadLetter], str | None]:
        params: list = []
        clause = _where(where, params)
        if cursor:
            params.append(page_after(cursor))
            clause += f" AND id > ${len(params)}::bigint"
        params.append(limit + 1)
        rows = await self._call(
            False, "fetch", f"SELECT {_LETTER_COLUMNS} FROM outbox_dead_letters WHERE {clause} ORDER BY id LIMIT ${len(params)}", *params
        )
        letters = [_letter(row) for row in rows[:limit]]
        return letters, (letters[-1].id if len(rows) > limit else None)

    async def retry_dead_letters(self, where: DeadLetterFilter, *, now: float, window_s: float) -> int:
        params: list = [now, now + window_s, random.randrange(COUNTER_SLOTS)]
        clause = _where(where, params)
        return await self._call(
            True,
            "fetchval",
            f"""
            WITH moved AS (
                DELETE FROM outbox_dead_letters WHERE {clause} RETURNING {_MOVED}, last_status, last_error
            ), back AS (
                INSERT INTO outbox_events ({_MOVED}, last_status, last_error, expires_at, due_at)
                SELECT {_MOVED}, last_status, last_error, $2::float8, $1::float8 FROM moved
            ), counted AS (
                {_COUNT.format(sign="+", rows="moved", slot=3)}
            )
            SELECT count(*) FROM moved
            """,
            *params,
        )

    async def purge_dead_letters(self, where: DeadLetterFilter) -> int:
        params: list = []
        clause = _where(where, params)
        return _count(await self._call(True, "execute", f"DELETE FROM outbox_dead_letters WHERE {clause}", *params))

    async def housekeep(self, *, now: float, dead_letter_retention_s: float, idempotency_window_s: float) -> tuple[int, int]:
        letters = await self._forget(FORGET_LETTERS, now - dead_letter_retention_s)
        keys = await self._forget(FORGET_KEYS, now - idempotency_window_s, now)
        return letters, keys

    async def _forget(self, sql: str, cut: float, *more) -> int:
        total = 0
        while True:
            done = _count(await self._call(False, "execute", sql, cut, self._cleanup_batch, *more))
            total += done
            if done < self._cleanup_batch:
                return total
            await asyncio.sleep(0)  # let enqueues and deliveries of this process run between batches

    async def dead_letter_bodies(self, ids: Sequence[str]) -> dict[str, bytes]:
        wanted = [number for number in map(_int, ids) if number is not None]
        if not wanted:
            return {}
        rows = await self._call(False, "fetch", "SELECT id, body FROM outbox_dead_letters WHERE id = ANY($1::bigint[])", wanted)
        return {str(row[0]): bytes(row[1]) for row in rows}

    # -- one event's fate -----------------------------------------------------------

    async def find_event(self, message_id: str, *, now: float) -> list[Found]:
        wanted = _bytes(message_id)
        pending = await self._call(False, "fetch", FIND_PENDING, wanted)
        dead = await self._call(False, "fetch", FIND_DEAD, wanted)
        found = [
            Found(IN_FLIGHT if r[7] is not None and r[6] > now else PENDING, str(r[0]), r[1], _text(r[2]), _text(r[3]), r[4], r[5], r[6], r[8], r[9])
            for r in pending
        ]
        return found + [Found(DEAD, str(r[0]), r[1], _text(r[2]), _text(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in dead]

    async def delivered_at(self, keys: Sequence[str]) -> dict[str, float]:
        if not keys:
            return {}
        stored = {digest(key): key for key in keys}
        return {stored[bytes(row[0])]: row[1] for row in await self._call(False, "fetch", DELIVERED_AT, list(stored))}

    # -- the delivery overview ---------------------------------------------------

    async def add_overview(
        self, minute: int, rows: Sequence[tuple], samples: Sequence[tuple], *, first_minute: int, samples_since: float, samples_kept: int
    ) -> None:
        columns = [list(column) for column in zip(*rows)] if rows else [[]] * 5
        kept = [list(column) for column in zip(*samples)] if samples else [[]] * 10
        await self._call(False, "execute", ADD_OVERVIEW, minute, *columns, *kept, samples_since, first_minute)
        if samples:
            kinds = list({sample[:3] for sample in samples})
            await self._call(False, "execute", TRIM_SAMPLES, *[list(column) for column in zip(*kinds)], samples_kept)

    async def overview(self, since: float, until: float) -> list[tuple]:
        first, end = -int(-since // 60), -int(-until // 60)  # the minutes starting in [since, until)
        return [tuple(row) for row in await self._call(False, "fetch", OVERVIEW, first, end)]

    async def samples(self, reason: str, source: str = "", destination: str = "") -> list[tuple]:
        return [tuple(row) for row in await self._call(False, "fetch", SAMPLES, reason, source, destination)]

    # -- idempotency of synchronous deliveries -----------------------------------

    async def reserve(self, key: str, *, now: float, window_s: float, until: float) -> Reservation:
        token = secrets.randbits(63)
        cut = now - window_s
        taken, holder, held_until, at = await self._call(False, "fetchrow", RESERVE, digest(key), now, token, until, cut)
        if taken:
            return Reservation(TAKEN, token=str(token))
        if holder is None and at is not None and at >= cut:
            return Reservation(DELIVERED)
        # Reserved by someone else; or changed since this statement's snapshot (look again at once).
        return Reservation(BUSY, until=held_until if holder is not None and held_until > now else now)

    async def unreserve(self, key: str, token: str, *, now: float) -> bool:
        held = _int(token)
        if held is None:
            return False
        return _count(await self._call(False, "execute", UNRESERVE, digest(key), held)) > 0

    async def seen(self, key: str, *, now: float, window_s: float) -> bool:
        return await self._call(False, "fetchval", SEEN, digest(key), now - window_s)

    async def remember(self, key: str, *, now: float) -> None:
        await self._call(False, "execute", REMEMBER, digest(key), now)


async def migrate(conn: asyncpg.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target`` in one transaction under the migration lock; the version found before."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(VERSION_TABLE)
        found = await conn.fetchval("SELECT coalesce(max(version), 0) FROM outbox_schema_version")
        if found > len(MIGRATIONS):
            raise OutboxOpenError(
                f"the database holds outbox schema version {found}, written by a newer release "
                f"(this one knows up to {len(MIGRATIONS)}): upgrade this service"
            )
        for version in range(found + 1, target + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("INSERT INTO outbox_schema_version (version) VALUES ($1)", version)
            log.info("outbox schema migrated", version=version)
    return found


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresOutbox", "digest", "migrate"]
