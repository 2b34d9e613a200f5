"""The SQLite outbox: one file on one host, shared by every process of that host.

Durable for real: WAL journal, ``synchronous=FULL`` for every transaction that
accepts events (an OK survives power loss, not only a crash). Group commit: the
writes of all callers go through one queue to one writer thread; whatever
queued up while a transaction was committing goes into the next one, so
concurrent enqueues share one transaction and one fsync. Marks, claims and
idempotency keys of synchronous calls need no fsync of their own (losing them
means a redelivery, never a loss): transactions holding only those run with
``synchronous=NORMAL``, and the next durable commit syncs them too.

SQLite calls run on two threads of our own (one writing connection, one
reading), so the event loop never waits for the disk. Several processes share
the file: every write transaction is ``BEGIN IMMEDIATE`` (one writer at a time,
waiting up to ``busy_timeout``), claims are one UPDATE ... RETURNING, so no two
processes claim the same event.

Each operation of a shared transaction runs in a SAVEPOINT: one that fails
(OutboxFull) is rolled back alone; a commit that fails fails them all
(OutboxUnavailable), so nobody is told OK for something not committed.

Schema: :data:`SCHEMA` is version 1 as the first release wrote it; each later
version is one entry of :data:`MIGRATIONS`, applied at open in the start-up
transaction (``BEGIN IMMEDIATE``: processes opening together wait for each
other), the version kept in ``PRAGMA user_version``. A file written by a newer
release is refused.

Idempotency keys (table ``idempotency``): ``reservation`` NULL means taken at
``at`` (delivered or enqueued); set, it is a synchronous delivery's token,
live until ``reserved_until`` (see service.outbox.base). Reserving is a write
like any other: one writer at a time makes it atomic across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from service.errors import OutboxFull, OutboxOpenError, OutboxUnavailable
from service.jsonwire import is_well_formed
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
    Disk,
    Found,
    NewEvent,
    Outbox,
    Reservation,
    Retry,
    Stats,
    page_after,
)

BUSY_TIMEOUT_MS = 10_000
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# The headroom kept free on the file's filesystem when KAMELEOON_OUTBOX_MIN_FREE_BYTES is unset: room for
# the deliverer's claims, marks and dead letters (each a write) so that delivering can free space.
HEADROOM_MAX_BYTES = 64 * 1024 * 1024
HEADROOM_SHARE = 0.05
# The filesystem's free space is read (statvfs) when this long has passed since the last reading, or
# when the events stored since could have taken an eighth of the headroom: not per event.
DISK_CHECK_S = 0.1
DISK_CHECK_SHARE = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    route TEXT NOT NULL,
    sitecode TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    credentials TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    due_at REAL NOT NULL,
    lease TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    last_attempt_at REAL,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_due ON events (due_at);
CREATE INDEX IF NOT EXISTS events_expires ON events (expires_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    route TEXT NOT NULL,
    sitecode TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    credentials TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt_at REAL,
    last_attempt_at REAL,
    last_status INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters (dead_at);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_at ON idempotency (at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

# Version N (N >= 2) is MIGRATIONS[N - 2]: statements taking a file from N-1 to N. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 2: reservations of synchronous deliveries in flight (a key with a token is not a delivery).
    (
        "ALTER TABLE idempotency ADD COLUMN reservation INTEGER",
        "ALTER TABLE idempotency ADD COLUMN reserved_until REAL",
    ),
    # 3: the delivery overview: per-minute counts by instance, stage and reason, and samples of failures.
    (
        "CREATE TABLE overview (minute INTEGER NOT NULL, source TEXT NOT NULL, destination TEXT NOT NULL, stage TEXT NOT NULL, "
        "reason TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (minute, source, destination, stage, reason)) WITHOUT ROWID",
        "CREATE TABLE samples (id INTEGER PRIMARY KEY, source TEXT NOT NULL, destination TEXT NOT NULL, reason TEXT NOT NULL, "
        "at REAL NOT NULL, message_id TEXT NOT NULL, event TEXT NOT NULL, request TEXT NOT NULL, http_status INTEGER NOT NULL, "
        "response TEXT NOT NULL, attempts INTEGER NOT NULL)",
        "CREATE INDEX samples_kind ON samples (reason, source, destination, at)",
        "CREATE INDEX samples_at ON samples (at)",
    ),
    # 4: when a key's event was delivered (OutboxAdmin.GetEvent).
    ("ALTER TABLE idempotency ADD COLUMN delivered_at REAL",),
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)

# Columns shared by events and dead_letters, in the order DeadLetter wants them.
_LETTER_COLUMNS = (
    "id, action, route, sitecode, message_id, attempts, accepted_at, first_attempt_at, last_attempt_at, dead_at, last_status, last_error"
)
_SAMPLE_COLUMNS = "source, destination, reason, at, message_id, event, request, http_status, response, attempts"
_MOVED = "id, action, route, sitecode, message_id, body, credentials, accepted_at, attempts, first_attempt_at, last_attempt_at"


def path_of(url: str) -> str:
    """The file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's spelling)."""
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        raise ValueError("must be sqlite:///relative/path.db or sqlite:////absolute/path.db")
    return url[len("sqlite:///") :]


class _Op:
    __slots__ = ("run", "durable", "future")

    def __init__(self, run: Callable[[sqlite3.Connection], object], durable: bool, future: asyncio.Future):
        self.run = run
        self.durable = durable
        self.future = future


class SqliteOutbox(Outbox):
    """``min_free_bytes``: the headroom (None: the smaller of 64 MiB and 5% of the filesystem; 0: none).
    ``create_directory``: make the file's directory when missing (the default location), else refuse."""

    def __init__(self, path: str, min_free_bytes: int | None = None, create_directory: bool = False):
        self.path = os.path.abspath(path)
        self._min_free = min_free_bytes
        self._create_directory = create_directory
        self._disk: Disk | None = None
        self._disk_read_at = float("-inf")
        self._stored_since = 0  # bytes of bodies stored since the last reading of the free space
        self._freelist_bytes = 0  # pages free inside the file (reused before the file grows), after the last write
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._broken: str | None = None
        self._page_size = 4096
        self.location = f"sqlite:///{self.path}" if self.path.startswith("/") else path
        self.commits = 0  # write transactions committed by this instance (group commit makes it small)
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="outbox-write")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="outbox-read")
        self._write: sqlite3.Connection | None = None
        self._read: sqlite3.Connection | None = None
        self._synchronous = ""
        self._queue: list[_Op] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self._closed = False

    # -- life -----------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        directory = os.path.dirname(self.path)
        if not self._create_directory and not os.path.isdir(directory):
            raise OutboxOpenError(
                f"the outbox file {self.path} cannot be used: its directory {directory} does not exist (KAMELEOON_OUTBOX; is the volume mounted?)"
            )
        try:
            self._write = await loop.run_in_executor(self._writer_thread, self._open_writer)
            self._read = await loop.run_in_executor(self._reader_thread, self._connect)
            found = os.stat(self.path)
            self._identity = (found.st_dev, found.st_ino)
        except (sqlite3.Error, OSError) as exc:
            self._writer_thread.shutdown(wait=False)
            self._reader_thread.shutdown(wait=False)
            raise OutboxOpenError(f"the outbox file {self.path} cannot be used (KAMELEOON_OUTBOX): {_reason(exc)}") from exc
        self._wake = asyncio.Event()
        self._writer = asyncio.ensure_future(self._write_loop())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        if self._create_directory:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        conn = self._connect()
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.OperationalError(f"WAL journal refused (journal_mode stays {mode})")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            self._set_synchronous(conn, "FULL")
            self._page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"the file is damaged ({check})")
            conn.execute("BEGIN IMMEDIATE")
            migrate(conn)
            conn.execute(
                "INSERT INTO counters (name, value) VALUES ('live', (SELECT count(*) FROM events)) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._wake.set()
            await self._writer
        loop = asyncio.get_running_loop()
        for executor, conn in ((self._writer_thread, self._write), (self._reader_thread, self._read)):
            if conn is not None:
                await loop.run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)
        self._write = self._read = None  # a read after close is refused as closed, as a write is

    # -- the writer: group commit ----------------------------------------------

    def _submit(self, run: Callable[[sqlite3.Connection], object], durable: bool) -> asyncio.Future:
        if self._closed or self._wake is None:
            raise OutboxUnavailable(f"the outbox {self.path} is closed")
        if self._broken is not None:
            raise OutboxUnavailable(self._broken)
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(run, durable, future))
        self._wake.set()
        return future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                ops, self._queue = self._queue, []
                try:
                    results = await loop.run_in_executor(self._writer_thread, self._transaction, ops)
                except BaseException as exc:  # noqa: BLE001 -- every caller must hear of it
                    failure = (
                        exc if isinstance(exc, OutboxUnavailable) else OutboxUnavailable(f"the outbox {self.path} cannot be written: {_reason(exc)}")
                    )
                    results = [failure] * len(ops)
                for op, result in zip(ops, results):
                    if op.future.done():
                        continue
                    if isinstance(result, BaseException):
                        op.future.set_exception(result)
                    else:
                        op.future.set_result(result)
            if self._closed:
                return

    def _set_synchronous(self, conn: sqlite3.Connection, level: str) -> None:
        if self._synchronous != level:
            conn.execute(f"PRAGMA synchronous = {level}")
            self._synchronous = level

    def _transaction(self, ops: list[_Op]) -> list:
        """One transaction for every op (in the writer thread); each op in its own savepoint. The file is
        checked first (a stat per transaction, next to its fsync): a file deleted or replaced under the
        process is never written."""
        conn = self._write
        assert conn is not None  # open() made it; close() stops the writer first
        broken = self.verify()
        if broken is not None:
            raise OutboxUnavailable(broken)
        results: list = []
        try:
            self._set_synchronous(conn, "FULL" if any(op.durable for op in ops) else "NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append(op.run(conn))
                except (OutboxFull, OutboxUnavailable) as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append(exc)
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
            self.commits += 1
            # Pages free inside the file: room the next writes take before the file grows (read with the commit's lock gone).
            self._freelist_bytes = conn.execute("PRAGMA freelist_count").fetchone()[0] * self._page_size
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
                    self._disk_read_at = float("-inf")  # read the free space again before the next enqueue
                raise OutboxUnavailable(f"the outbox {self.path} cannot be written: {_reason(exc)}") from exc
            raise
        return results

    async def _read_op(self, run: Callable[[sqlite3.Connection], object]):
        if self._read is None:
            raise OutboxUnavailable(f"the outbox {self.path} is closed")
        if self._broken is not None:
            raise OutboxUnavailable(self._broken)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_thread, run, self._read)
        except sqlite3.Error as exc:
            raise OutboxUnavailable(f"the outbox {self.path} cannot be read: {_reason(exc)}") from exc

    # -- the disk and the file --------------------------------------------------

    def disk(self) -> Disk:
        """Room to write: the filesystem's free bytes plus the pages free inside the file, and the headroom kept.
        Read again after DISK_CHECK_S, or once the bodies stored since could have used an eighth of the headroom."""
        now = time.monotonic()
        disk = self._disk
        if disk is None or now - self._disk_read_at >= DISK_CHECK_S or self._stored_since * DISK_CHECK_SHARE > disk.headroom_bytes:
            disk = self._disk = self._read_disk()
            self._disk_read_at, self._stored_since = now, 0
        return disk

    def _read_disk(self) -> Disk:
        try:
            found = os.statvfs(os.path.dirname(self.path))
        except OSError:  # the directory is gone: verify() tells; nothing to refuse here
            return Disk(free_bytes=0, headroom_bytes=0)
        size = found.f_blocks * found.f_frsize
        headroom = min(HEADROOM_MAX_BYTES, int(size * HEADROOM_SHARE)) if self._min_free is None else self._min_free
        return Disk(free_bytes=found.f_bavail * found.f_frsize + self._freelist_bytes, headroom_bytes=headroom)

    def _check_headroom(self) -> None:
        """New events are refused while the filesystem has less than the headroom free, so that claims,
        marks and dead letters (which free space once delivered) always find room."""
        disk = self.disk()
        if disk.free_bytes < disk.headroom_bytes:
            raise OutboxFull(
                f"the outbox's filesystem has {disk.free_bytes} bytes free, less than the {disk.headroom_bytes} kept for "
                f"delivering what is queued (KAMELEOON_OUTBOX_MIN_FREE_BYTES; {self.path}): nothing was stored, retry later"
            )

    def verify(self) -> str | None:
        """The file deleted or replaced under the running process: from then on every write is refused
        (never written to an unlinked inode, never mixed with another file), until a restart."""
        if self._broken is None and self._identity is not None:
            try:
                found = os.stat(self.path)
                if (found.st_dev, found.st_ino) != self._identity:
                    self._broken = f"the outbox file {self.path} was replaced by another file while the service ran: restart the service"
            except FileNotFoundError:
                self._broken = f"the outbox file {self.path} was deleted while the service ran: restart the service"
            except OSError:
                pass  # unreadable for now (a remount): not a replacement
        return self._broken

    # -- accepting ------------------------------------------------------------

    async def enqueue(
        self, events: Sequence[NewEvent], *, now: float, window_s: float, idempotency_window_s: float, max_pending: int
    ) -> list[Accepted]:
        if not events:
            return []
        self._check_headroom()
        self._stored_since += sum(len(e.body) for e in events)
        rows = [
            (e.action, _storable(e.route), _storable(e.sitecode), _storable(e.message_id), e.body, e.credentials, now, now + window_s, now)
            for e in events
        ]
        keys = [None if e.dedupe_key is None else _stored_key(e.dedupe_key) for e in events]

        def run(conn: sqlite3.Connection) -> list[Accepted]:
            fresh: set = set()
            busy: dict = {}
            wanted = [key for key in keys if key is not None]
            if wanted:
                fresh = {
                    row[0]
                    for row in conn.execute(
                        "INSERT INTO idempotency (key, at) SELECT value, :now FROM json_each(:keys) WHERE true "
                        f"ON CONFLICT (key) DO UPDATE SET at = excluded.at, reservation = NULL, reserved_until = NULL WHERE {_FREE} "
                        "RETURNING key",
                        {"now": now, "keys": json.dumps(wanted), "cut": now - idempotency_window_s},
                    )
                }
                if len(fresh) < len(wanted):  # duplicates, or keys a synchronous delivery holds right now
                    busy = dict(
                        conn.execute(
                            "SELECT key, reserved_until FROM idempotency WHERE key IN (SELECT value FROM json_each(?)) AND reservation IS NOT NULL",
                            (json.dumps([key for key in wanted if key not in fresh]),),
                        ).fetchall()
                    )
            stored = []
            answers = [Accepted(None, duplicate=True)] * len(events)
            for index, key in enumerate(keys):
                if key is None:
                    stored.append(index)
                elif key in fresh:
                    fresh.discard(key)  # a second one of the same key in this call is a duplicate
                    stored.append(index)
                elif key in busy:
                    answers[index] = Accepted(None, busy_until=busy[key])
            if not stored:
                return answers
            if max_pending:
                live = conn.execute("SELECT value FROM counters WHERE name = 'live'").fetchone()[0]
                if live + len(stored) > max_pending:
                    raise OutboxFull(
                        f"the outbox holds {live} undelivered events; {len(stored)} more would pass "
                        f"KAMELEOON_OUTBOX_MAX_PENDING ({max_pending}): retry later"
                    )
            conn.executemany(
                "INSERT INTO events (action, route, sitecode, message_id, body, credentials, accepted_at, expires_at, due_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [rows[index] for index in stored],
            )
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            _count(conn, len(stored))
            for offset, index in enumerate(stored):  # one writer at a time: the ids are consecutive
                answers[index] = Accepted(str(last - len(stored) + 1 + offset))
            return answers

        return await self._submit(run, durable=True)

    # -- delivering -----------------------------------------------------------

    async def claim(self, limit: int, *, now: float, lease_s: float) -> list[Claimed]:
        lease = secrets.token_hex(8)

        def run(conn: sqlite3.Connection) -> list[Claimed]:
            rows = conn.execute(
                "UPDATE events SET due_at = :until, lease = :lease, attempts = attempts + 1, "
                "first_attempt_at = coalesce(first_attempt_at, :now), last_attempt_at = :now "
                "WHERE id IN (SELECT id FROM events WHERE due_at <= :now AND expires_at > :now ORDER BY due_at LIMIT :limit) "
                "RETURNING id, action, route, sitecode, message_id, body, credentials, attempts, accepted_at, expires_at, due_at",
                {"until": now + lease_s, "lease": lease, "now": now, "limit": limit},
            ).fetchall()
            return [Claimed(str(r[0]), lease, r[1], _text(r[2]), _text(r[3]), _text(r[4]), bytes(r[5]), r[6], r[7], r[8], r[9]) for r in rows]

        claimed = await self._submit(run, durable=False)
        claimed.sort(key=lambda c: int(c.id))
        return claimed

    async def next_due(self) -> float | None:
        return await self._read_op(lambda conn: conn.execute("SELECT min(due_at) FROM events").fetchone()[0])

    async def mark_delivered(self, claims: Sequence[Claimed], *, now: float, keys: Sequence[str] = ()) -> int:
        params = [(int(c.id), c.lease) for c in claims]
        stamped = [(now, _stored_key(key)) for key in keys]

        def run(conn: sqlite3.Connection) -> int:
            done = _changes(conn, lambda: conn.executemany("DELETE FROM events WHERE id = ? AND lease = ?", params))
            _count(conn, -done)
            if stamped:
                conn.executemany("UPDATE idempotency SET delivered_at = ? WHERE key = ?", stamped)
            return done

        return await self._submit(run, durable=False) if params else 0

    async def mark_retry(self, retries: Sequence[Retry], *, now: float) -> int:
        params = [(r.at, r.http_status, r.error, int(r.id), r.lease) for r in retries]

        def run(conn: sqlite3.Connection) -> int:
            return _changes(
                conn,
                lambda: conn.executemany(
                    "UPDATE events SET due_at = ?, lease = NULL, last_status = ?, last_error = ? WHERE id = ? AND lease = ?", params
                ),
            )

        return await self._submit(run, durable=False) if params else 0

    async def mark_dead(self, dead: Sequence[Dead], *, now: float) -> int:
        params = [(now, d.http_status, d.error, int(d.id), d.lease) for d in dead]

        def run(conn: sqlite3.Connection) -> int:
            moved = _changes(
                conn,
                lambda: conn.executemany(
                    f"INSERT INTO dead_letters ({_MOVED}, dead_at, last_status, last_error) "
                    f"SELECT {_MOVED}, ?, ?, ? FROM events WHERE id = ? AND lease = ?",
                    params,
                ),
            )
            conn.executemany("DELETE FROM events WHERE id = ? AND lease = ?", [p[3:] for p in params])
            _count(conn, -moved)
            return moved

        return await self._submit(run, durable=True) if params else 0

    async def release(self, claims: Sequence[Claimed], *, now: float) -> int:
        params = [(now, int(c.id), c.lease) for c in claims]

        def run(conn: sqlite3.Connection) -> int:
            return _changes(
                conn,
                lambda: conn.executemany(
                    "UPDATE events SET due_at = ?, lease = NULL, attempts = attempts - 1, "
                    "first_attempt_at = CASE WHEN attempts = 1 THEN NULL ELSE first_attempt_at END, "
                    "last_attempt_at = CASE WHEN attempts = 1 THEN NULL ELSE last_attempt_at END "
                    "WHERE id = ? AND lease = ?",
                    params,
                ),
            )

        return await self._submit(run, durable=False) if params else 0

    async def expire(self, *, now: float, limit: int) -> list[DeadLetter]:
        def run(conn: sqlite3.Connection) -> list[DeadLetter]:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM events WHERE expires_at <= ? AND (lease IS NULL OR due_at <= ?) ORDER BY expires_at LIMIT ?",
                    (now, now, limit),
                )
            ]
            if not ids:
                return []
            marks = json.dumps(ids)
            conn.execute(
                f"INSERT INTO dead_letters ({_MOVED}, dead_at, last_status, last_error) "
                f"SELECT {_MOVED}, ?, last_status, CASE WHEN last_error = '' THEN 'the retry window ended before any attempt' "
                "WHEN last_error LIKE 'the retry window ended%' THEN last_error "
                "ELSE 'the retry window ended; last error: ' || last_error END "
                "FROM events WHERE id IN (SELECT value FROM json_each(?))",
                (now, marks),
            )
            conn.execute("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))", (marks,))
            _count(conn, -len(ids))
            return [
                _letter(row)
                for row in conn.execute(
                    f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", (marks,)
                )
            ]

        return await self._submit(run, durable=True)

    # -- operators ------------------------------------------------------------

    async def stats(self, *, now: float) -> Stats:
        def run(conn: sqlite3.Connection) -> Stats:
            stats = Stats()
            oldest = None
            for action, total, in_flight, first in conn.execute(
                "SELECT action, count(*), sum(lease IS NOT NULL AND due_at > ?), min(accepted_at) FROM events GROUP BY action",
                (now,),
            ):
                entry = stats.by_action.setdefault(action, ActionStats())
                entry.in_flight, entry.pending = in_flight, total - in_flight
                oldest = first if oldest is None else min(oldest, first)
            for action, dead in conn.execute("SELECT action, count(*) FROM dead_letters GROUP BY action"):
                stats.by_action.setdefault(action, ActionStats()).dead = dead
            for entry in stats.by_action.values():
                stats.pending += entry.pending
                stats.in_flight += entry.in_flight
                stats.dead += entry.dead
            stats.oldest_pending_age_s = max(0.0, now - oldest) if oldest is not None else 0.0
            return stats

        return await self._read_op(run)

    async def list_dead_letters(self, where: DeadLetterFilter, *, limit: int, cursor: str | None = None) -> tuple[list[DeadLetter], str | None]:
        clause, params = _where(where)
        if cursor:
            clause += " AND id > ?"
            params.append(page_after(cursor))

        def run(conn: sqlite3.Connection):
            rows = conn.execute(f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE {clause} ORDER BY id LIMIT ?", (*params, limit + 1)).fetchall()
            letters = [_letter(row) for row in rows[:limit]]
            return letters, (letters[-1].id if len(rows) > limit else None)

        return await self._read_op(run)

    async def retry_dead_letters(self, where: DeadLetterFilter, *, now: float, window_s: float) -> int:
        clause, params = _where(where)

        def run(conn: sqlite3.Connection) -> int:
            moved = _changes(
                conn,
                lambda: conn.execute(
                    f"INSERT INTO events ({_MOVED}, last_status, last_error, expires_at, due_at) "
                    f"SELECT {_MOVED}, last_status, last_error, ?, ? FROM dead_letters WHERE {clause}",
                    (now + window_s, now, *params),
                ),
            )
            conn.execute(f"DELETE FROM dead_letters WHERE {clause}", params)
            _count(conn, moved)
            return moved

        return await self._submit(run, durable=True)

    async def purge_dead_letters(self, where: DeadLetterFilter) -> int:
        clause, params = _where(where)

        def run(conn: sqlite3.Connection) -> int:
            return _changes(conn, lambda: conn.execute(f"DELETE FROM dead_letters WHERE {clause}", params))

        return await self._submit(run, durable=True)

    async def housekeep(self, *, now: float, dead_letter_retention_s: float, idempotency_window_s: float) -> tuple[int, int]:
        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            letters = _changes(conn, lambda: conn.execute("DELETE FROM dead_letters WHERE dead_at < ?", (now - dead_letter_retention_s,)))
            keys = _changes(
                conn,
                lambda: conn.execute(
                    "DELETE FROM idempotency WHERE at < ? AND (reservation IS NULL OR reserved_until <= ?)",
                    (now - idempotency_window_s, now),
                ),
            )
            return letters, keys

        return await self._submit(run, durable=False)

    async def dead_letter_bodies(self, ids: Sequence[str]) -> dict[str, bytes]:
        wanted = [number for number in map(_int, ids) if number is not None]

        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            rows = conn.execute("SELECT id, body FROM dead_letters WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(wanted),))
            return {str(row[0]): bytes(row[1]) for row in rows}

        return await self._read_op(run) if wanted else {}

    # -- one event's fate -----------------------------------------------------------

    async def find_event(self, message_id: str, *, now: float) -> list[Found]:
        stored = _storable(message_id)

        def run(conn: sqlite3.Connection) -> list[Found]:
            found = [
                Found(
                    IN_FLIGHT if r[8] is not None and r[7] > now else PENDING,
                    str(r[0]),
                    r[1],
                    _text(r[2]),
                    _text(r[3]),
                    r[4],
                    r[5],
                    r[7],
                    r[9],
                    r[10],
                )
                for r in conn.execute(
                    "SELECT id, action, route, sitecode, credentials, attempts, message_id, due_at, lease, last_status, last_error "
                    "FROM events WHERE message_id = ? ORDER BY id",
                    (stored,),
                )
            ]
            found += [
                Found(DEAD, str(r[0]), r[1], _text(r[2]), _text(r[3]), r[4], r[5], r[6], r[7], r[8])
                for r in conn.execute(
                    "SELECT id, action, route, sitecode, credentials, attempts, dead_at, last_status, last_error "
                    "FROM dead_letters WHERE message_id = ? ORDER BY id",
                    (stored,),
                )
            ]
            return found

        return await self._read_op(run)

    async def delivered_at(self, keys: Sequence[str]) -> dict[str, float]:
        stored = {_stored_key(key): key for key in keys}

        def run(conn: sqlite3.Connection) -> dict[str, float]:
            rows = conn.execute(
                "SELECT key, delivered_at FROM idempotency WHERE key IN (SELECT value FROM json_each(?)) AND delivered_at IS NOT NULL "
                "AND reservation IS NULL",
                (json.dumps(list(stored)),),
            ).fetchall()
            return {stored[key]: at for key, at in rows}

        return await self._read_op(run) if stored else {}

    # -- the delivery overview ---------------------------------------------------

    async def add_overview(
        self, minute: int, rows: Sequence[tuple], samples: Sequence[tuple], *, first_minute: int, samples_since: float, samples_kept: int
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO overview VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count",
                [(minute, *row) for row in rows],
            )
            conn.executemany(f"INSERT INTO samples ({_SAMPLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", samples)
            for kind in {sample[:3] for sample in samples}:
                conn.execute(
                    "DELETE FROM samples WHERE source = ? AND destination = ? AND reason = ? AND id NOT IN "
                    "(SELECT id FROM samples WHERE source = ? AND destination = ? AND reason = ? ORDER BY at DESC, id DESC LIMIT ?)",
                    (*kind, *kind, samples_kept),
                )
            conn.execute("DELETE FROM samples WHERE at < ?", (samples_since,))
            conn.execute("DELETE FROM overview WHERE minute < ?", (first_minute,))

        await self._submit(run, durable=False)

    async def overview(self, since: float, until: float) -> list[tuple]:
        first, end = -int(-since // 60), -int(-until // 60)  # the minutes starting in [since, until)

        def run(conn: sqlite3.Connection) -> list[tuple]:
            query = "SELECT source, destination, stage, reason, sum(count) FROM overview WHERE minute >= ? AND minute < ? GROUP BY 1, 2, 3, 4"
            return conn.execute(query, (first, end)).fetchall()

        return await self._read_op(run)

    async def samples(self, reason: str, source: str = "", destination: str = "") -> list[tuple]:
        def run(conn: sqlite3.Connection) -> list[tuple]:
            query = (
                f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE reason = ? AND (? = '' OR source = ?) AND (? = '' OR destination = ?) "
                "ORDER BY at DESC, id DESC LIMIT 1000"
            )
            return conn.execute(query, (reason, source, source, destination, destination)).fetchall()

        return await self._read_op(run)

    # -- idempotency of synchronous deliveries -----------------------------------

    async def reserve(self, key: str, *, now: float, window_s: float, until: float) -> Reservation:
        token = secrets.randbits(63)
        key = _stored_key(key)

        def run(conn: sqlite3.Connection) -> Reservation:
            taken = conn.execute(
                "INSERT INTO idempotency (key, at, reservation, reserved_until) VALUES (:key, :now, :token, :until) "
                "ON CONFLICT (key) DO UPDATE SET at = excluded.at, reservation = excluded.reservation, "
                f"reserved_until = excluded.reserved_until WHERE {_FREE} RETURNING 1",
                {"key": key, "now": now, "token": token, "until": until, "cut": now - window_s},
            ).fetchall()
            if taken:
                return Reservation(TAKEN, token=str(token))
            holder, held_until = conn.execute("SELECT reservation, reserved_until FROM idempotency WHERE key = ?", (key,)).fetchone()
            return Reservation(DELIVERED) if holder is None else Reservation(BUSY, until=held_until)

        return await self._submit(run, durable=False)

    async def unreserve(self, key: str, token: str, *, now: float) -> bool:
        key = _stored_key(key)

        def run(conn: sqlite3.Connection) -> bool:
            return bool(_changes(conn, lambda: conn.execute("DELETE FROM idempotency WHERE key = ? AND reservation = ?", (key, _int(token)))))

        return await self._submit(run, durable=False)

    async def seen(self, key: str, *, now: float, window_s: float) -> bool:
        key = _stored_key(key)
        return await self._read_op(
            lambda conn: (
                conn.execute("SELECT 1 FROM idempotency WHERE key = ? AND at >= ? AND reservation IS NULL", (key, now - window_s)).fetchone()
                is not None
            )
        )

    async def remember(self, key: str, *, now: float) -> None:
        key = _stored_key(key)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO idempotency (key, at, delivered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET at = excluded.at, reservation = NULL, reserved_until = NULL, delivered_at = excluded.at",
                (key, now, now),
            )

        await self._submit(run, durable=False)


# A key row that a new delivery or enqueue may take (named parameters :now and :cut, the window's start):
# taken before the window, or reserved by a delivery whose reservation ran out.
_FREE = "(idempotency.reservation IS NULL AND idempotency.at < :cut) OR (idempotency.reservation IS NOT NULL AND idempotency.reserved_until <= :now)"


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to SCHEMA_VERSION inside the caller's transaction; the version found before."""
    for statement in filter(str.strip, SCHEMA.split(";")):
        conn.execute(statement)
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"written by a newer version (schema {found}, this one knows {SCHEMA_VERSION})")
    for version in range(max(found, 1) + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version - 2]:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return found


def _count(conn: sqlite3.Connection, delta: int) -> None:
    if delta:
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'live'", (delta,))


def _changes(conn: sqlite3.Connection, statement: Callable[[], object]) -> int:
    before = conn.total_changes
    statement()
    return conn.total_changes - before


def _int(text: str) -> int:
    """An id or a token as SQLite stores it; -1 (no row has it) for text that is none, or out of INTEGER's range."""
    try:
        value = int(text)
    except ValueError:
        return -1
    return value if -(2**63) <= value < 2**63 else -1


def _where(where: DeadLetterFilter) -> tuple[str, list[object]]:
    clauses: list[str] = ["1"]
    params: list[object] = []
    if where.ids:
        clauses.append(f"id IN ({', '.join('?' * len(where.ids))})")
        params.extend(_int(i) for i in where.ids)
    if where.action is not None:
        clauses.append("action = ?")
        params.append(where.action)
    if where.http_status is not None:
        clauses.append("last_status = ?")
        params.append(where.http_status)
    if where.since is not None:
        clauses.append("dead_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("dead_at < ?")
        params.append(where.until)
    return " AND ".join(clauses), params


def _letter(row) -> DeadLetter:
    return DeadLetter(str(row[0]), row[1], _text(row[2]), _text(row[3]), _text(row[4]), *row[5:])


# Text from callers may hold lone surrogates (JSON's "\ud800" is legal; the parser keeps it, as JavaScript
# does), which UTF-8 cannot encode and so SQLite's text cannot hold. Such a route, sitecode or messageId is
# stored as a BLOB of its bytes (UTF-8, surrogates kept) and read back as the same text; every other value
# stays text, so files written before read as they did.
def _storable(text: str) -> str | bytes:
    return text if is_well_formed(text) else text.encode("utf-8", "surrogatepass")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


ESCAPED_KEY = "\uffff"  # the first character of a stored key that is not the key itself


def _stored_key(key: str) -> str:
    """An idempotency key as the table holds it: text, one stored form per key.

    A key is stored as it is, unless UTF-8 cannot encode it (a lone surrogate) or it
    begins with U+FFFF: then as U+FFFF and the hex of its bytes (UTF-8, surrogates kept),
    so no two keys share a stored form. (Only a sitecode beginning with that noncharacter
    makes such a key; earlier releases stored it as it is, so its window restarts once.
    Keys go to SQLite in JSON too, for json_each, which must not meet a lone surrogate.)
    """
    if is_well_formed(key) and not key.startswith(ESCAPED_KEY):
        return key
    return ESCAPED_KEY + key.encode("utf-8", "surrogatepass").hex()


def _reason(exc: BaseException) -> str:
    """What went wrong, in words an operator can act on."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        if name:
            text = f"{text} ({name})"
    return text


__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "SqliteOutbox", "migrate", "path_of"]
