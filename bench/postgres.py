"""The PostgreSQL outbox on the bench, beside the SQLite one: accepting, and draining with one and two processes.

``python -m bench --postgres`` (``make bench BENCH_ARGS=--postgres``) runs in one go, against
the cheap stand-in (bench/standin.py) and a throwaway PostgreSQL (tools/postgres_server.py,
fsync on; or ``BENCH_POSTGRES_URL`` to use a server of yours, its CPU then not measured):

1. for each store: queued SendBatch while Kameleoon is down (the service points at a closed
   port): events/s accepted, the service's CPU microseconds per event, and the database
   server's (PostgreSQL: every process of the cluster);
2. for each store: the drain of that backlog by one service process, Kameleoon up;
3. PostgreSQL: the backlog again, drained by two service processes on the one database;
4. PostgreSQL alone: the same backlog drained by one and by two processes that only claim and
   mark delivered (no HTTP): what the database can take, beside what the service asks of it.

Drain rates are measured between 10% and 90% of the backlog delivered (start-up and the
tail left out); CPU over the same stretch; during the PostgreSQL drains pg_stat_activity is
sampled for the service's connections waiting on a lock (replicas queuing on each other). Targets (issue 10): two processes drain at least
1.6x one; queued SendBatch accepts at least 10,000 events/s on PostgreSQL. They are
reported as PASS / FAIL with the cores the machine gave (a CPU probe), never asserted.
Writes bench/out/postgres.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import CLOCK_TICKS, cpu_capacity, tree_cpu_seconds
from bench.queued import Requests, _drive, _start_service
from bench.run import BENCH, free_port, log, standin_stats, start_standin, stop

TARGET_SCALE = 1.6  # two processes' drain / one process's
TARGET_ACCEPT = 10_000  # queued SendBatch events/s on PostgreSQL


class Database:
    """Where the PostgreSQL outbox lives; ``cpu()`` is the cluster's CPU seconds so far (None: not ours to measure)."""

    def __init__(self):
        self.server = None
        self.base_url = os.environ.get("BENCH_POSTGRES_URL")
        self.made = 0

    def __enter__(self) -> Database:
        if not self.base_url:
            from tools.postgres_server import start_server

            self.server = start_server(fsync=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.destroy()

    def fresh(self) -> str:
        """An empty database (with BENCH_POSTGRES_URL: that one, its outbox tables emptied)."""
        if self.server is not None:
            return self.server.create_database("bench")
        import asyncpg

        async def empty() -> None:
            conn = await asyncpg.connect(self.base_url)
            try:
                await conn.execute(
                    "DROP TABLE IF EXISTS outbox_events, outbox_dead_letters, outbox_keys, outbox_counters, "
                    "outbox_schema_version; DROP FUNCTION IF EXISTS outbox_refuse"
                )
            finally:
                await conn.close()

        asyncio.run(empty())
        return self.base_url

    def cpu(self) -> float | None:
        """CPU seconds of the server so far: its living processes, and the backends that exited (the postmaster reaped them)."""
        if self.server is None:
            return None
        with open(os.path.join(self.server.datadir, "postmaster.pid")) as pidfile:
            postmaster = int(pidfile.readline())
        with open(f"/proc/{postmaster}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS  # cutime + cstime
        return (tree_cpu_seconds(postmaster) or 0.0) + reaped


class LockWaits:
    """Samples pg_stat_activity every 0.1 s in a thread: how often the service's busy connections wait for a lock.

    Near 0: replicas do not queue on one another in the database (claims skip locked rows,
    counters are spread); the database is not what limits the drain.
    """

    QUERY = (
        "SELECT count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') "
        "FROM pg_stat_activity WHERE application_name = 'kameleoon-destination' AND pid <> pg_backend_pid()"
    )

    def __init__(self, url: str):
        import threading

        self.url = url
        self.active = self.waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)

    async def _sample(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                active, waiting = await conn.fetchrow(self.QUERY)
                self.active += active
                self.waiting += waiting
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def start(self) -> LockWaits:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def share(self) -> float:
        return round(self.waiting / self.active, 3) if self.active else 0.0


def _accept(out: Path, name: str, outbox: str, requests: Requests, events: int, batch: int, concurrency: int, db: Database | None) -> dict:
    down = f"http://127.0.0.1:{free_port()}/segmentio"  # nothing listens there: everything stays in the outbox
    env = {"KAMELEOON_DELIVERY": "queued", "KAMELEOON_OUTBOX": outbox}
    svc, port, svc_log = _start_service(out, name, down, env)
    try:
        db_cpu0 = db.cpu() if db else None
        result = asyncio.run(_drive(port, "SendBatch", lambda: requests.batch(batch, True), events // batch, batch, concurrency, svc.pid))
        if db_cpu0 is not None:
            result["database_cpu_us_per_event"] = round((db.cpu() - db_cpu0) / result["events"] * 1e6, 1)
    finally:
        stop(svc, grace=15)
        svc_log.close()
    return result


def _drain(out: Path, name: str, outbox: str, processes: int, standin_port: int, backlog: int, db: Database | None) -> dict:
    """Start ``processes`` services on ``outbox`` with Kameleoon up; rates and CPU between 10% and 90% delivered."""
    url = f"http://127.0.0.1:{standin_port}/segmentio"
    env = {"KAMELEOON_DELIVERY": "queued", "KAMELEOON_OUTBOX": outbox}
    before = standin_stats(standin_port)["posts"]
    with ThreadPoolExecutor(processes) as pool:  # all start together
        services = list(pool.map(lambda i: _start_service(out, f"{name}-{i}", url, env), range(processes)))
    waits = LockWaits(outbox).start() if outbox.startswith("postgres") else None

    def sample(done: int) -> tuple[float, float, float | None, int]:
        cpu = sum(tree_cpu_seconds(svc.pid) or 0.0 for svc, _, _ in services)
        return time.perf_counter(), cpu, db.cpu() if db else None, done

    marks = {0: sample(0)}
    try:
        while True:
            done = standin_stats(standin_port)["posts"] - before
            for mark in (10, 90):
                if mark not in marks and done >= backlog * mark / 100:
                    marks[mark] = sample(done)
            if done >= backlog or time.perf_counter() - marks[0][0] > 900:
                break
            time.sleep(0.05)
        marks[100] = sample(done)
    finally:
        if waits:
            waits.stop()
        for svc, _, svc_log in services:
            stop(svc, grace=15)
            svc_log.close()
    elapsed = marks[100][0] - marks[0][0]
    if 90 in marks and marks[90][0] - marks[10][0] >= 1.0:
        (t10, cpu10, db10, n10), (t90, cpu90, db90, n90) = marks[10], marks[90]
    else:  # too quick to measure a stretch in the middle (--quick): the whole drain
        (t10, cpu10, db10, n10), (t90, cpu90, db90, n90) = marks[0], marks[100]
    steady = n90 - n10
    result = {
        "processes": processes,
        "events": done,
        "seconds": round(elapsed, 2),
        "events_per_s_overall": round(done / elapsed),
        "events_per_s": round(steady / (t90 - t10)),
        "service_cpu_us_per_event": round((cpu90 - cpu10) / steady * 1e6, 1),
    }
    if db10 is not None:
        result["database_cpu_us_per_event"] = round((db90 - db10) / steady * 1e6, 1)
    if waits:
        result["lock_wait_share"] = waits.share()
    return result


async def _fill(url: str, events: int) -> None:
    """``events`` due events straight into the store, 1,000 a statement."""
    from service.outbox.base import NewEvent
    from service.outbox.postgres import PostgresOutbox

    store = PostgresOutbox(url)
    await store.open()
    try:
        body = b'{"type":"track","event":"Bench","timestamp":"2024-01-01T00:00:00Z","properties":{}}'
        now = time.time()
        for start in range(0, events, 1000):
            batch = [NewEvent("logEvent", "logEvent", "0123456789", f"c-{n}", body, "server") for n in range(start, min(events, start + 1000))]
            await store.enqueue(batch, now=now, window_s=14400, idempotency_window_s=0, max_pending=0)
    finally:
        await store.close()


async def _claim_loop(url: str, limit: int, workers: int) -> None:
    """One drainer process without HTTP: claims and marks delivered until nothing is due; prints start, end, count."""
    from service.outbox.postgres import PostgresOutbox

    store = PostgresOutbox(url)
    await store.open()
    done, start = 0, time.time()

    async def worker() -> None:
        nonlocal done
        while claimed := await store.claim(limit, now=time.time(), lease_s=60):
            await store.mark_delivered(claimed, now=time.time())
            done += len(claimed)

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await store.close()
    print(json.dumps({"start": start, "end": time.time(), "events": done}), flush=True)


def _database_ceiling(db: Database, events: int, processes: int) -> dict:
    """The database's own drain rate: ``processes`` drainers that only claim and mark (claims of 100, 4 at once each)."""
    import subprocess
    import sys

    url = db.fresh()
    asyncio.run(_fill(url, events))
    cpu0 = db.cpu()
    drainers = [
        subprocess.Popen([sys.executable, "-m", "bench.postgres", "--claim-loop", url], stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    results = [json.loads(drainer.communicate(timeout=900)[0].strip().splitlines()[-1]) for drainer in drainers]
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    done = sum(r["events"] for r in results)
    result = {"processes": processes, "events": done, "events_per_s": round(done / elapsed)}
    if cpu0 is not None:
        result["database_cpu_us_per_event"] = round((db.cpu() - cpu0) / done * 1e6, 1)
    return result


def run(events: int, batch: int, concurrency: int, out: Path) -> dict:
    report: dict = {"settings": {"backlog_events": events, "batch": batch, "concurrency": concurrency}}
    log("CPU probe: the cores this machine gives right now")
    report["cores_available_before"] = cpu_capacity(1.0)
    work = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    standin, standin_port, standin_log = start_standin(out)
    try:
        with Database() as db:
            report["postgres_measured"] = db.server is not None
            requests = Requests(500, "pg")
            stores = {"sqlite": lambda: f"sqlite:///{work / 'outbox.db'}", "postgresql": db.fresh}
            for store, fresh in stores.items():
                outbox = fresh()
                database = db if store == "postgresql" else None
                log(f"{store}: queued SendBatch, {events} events while Kameleoon is down")
                report[f"{store}_accept"] = _accept(out, f"{store}-accept", outbox, requests, events, batch, concurrency, database)
                log(f"{store}: drain by one process")
                report[f"{store}_drain_1"] = _drain(out, f"{store}-drain1", outbox, 1, standin_port, events, database)
                if store == "postgresql":
                    log(f"{store}: the backlog again, drained by two processes")
                    report[f"{store}_accept_again"] = _accept(out, f"{store}-accept2", outbox, requests, events, batch, concurrency, database)
                    report[f"{store}_drain_2"] = _drain(out, f"{store}-drain2", outbox, 2, standin_port, events, database)
            log("postgresql: the database's own drain ceiling, one and two drainers without HTTP")
            report["postgresql_ceiling_1"] = _database_ceiling(db, events, 1)
            report["postgresql_ceiling_2"] = _database_ceiling(db, events, 2)
    finally:
        stop(standin)
        standin_log.close()
        shutil.rmtree(work, ignore_errors=True)
    report["cores_available_after"] = cpu_capacity(1.0)
    scale = report["postgresql_drain_2"]["events_per_s"] / report["postgresql_drain_1"]["events_per_s"]
    report["postgresql_drain_2_vs_1"] = round(scale, 2)
    report["targets"] = {
        "PostgreSQL: two processes drain >= 1.6x one": _verdict(scale >= TARGET_SCALE),
        "PostgreSQL: queued SendBatch accepts >= 10,000 events/s": _verdict(report["postgresql_accept"]["events_per_s"] >= TARGET_ACCEPT),
    }
    return report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def markdown(report: dict) -> str:
    def row(label: str, entry: dict) -> str:
        database = entry.get("database_cpu_us_per_event", "-")
        return f"| {label} | {entry['events_per_s']:,} | {entry['service_cpu_us_per_event']} | {database} |"

    n = report["settings"]["backlog_events"]
    lines = [
        "| outbox | events/s | service CPU µs/event | database CPU µs/event |",
        "|---|---|---|---|",
        row(f"SQLite: queued SendBatch accepted ({report['settings']['batch']}/call)", report["sqlite_accept"]),
        row(f"PostgreSQL: queued SendBatch accepted ({report['settings']['batch']}/call)", report["postgresql_accept"]),
        row(f"SQLite: drain of {n:,}, one process", report["sqlite_drain_1"]),
        row(f"PostgreSQL: drain of {n:,}, one process", report["postgresql_drain_1"]),
        row(f"PostgreSQL: drain of {n:,}, two processes", report["postgresql_drain_2"]),
        f"| PostgreSQL alone: claim + mark delivered, no HTTP, one drainer | {report['postgresql_ceiling_1']['events_per_s']:,} | - | "
        f"{report['postgresql_ceiling_1'].get('database_cpu_us_per_event', '-')} |",
        f"| PostgreSQL alone: claim + mark delivered, no HTTP, two drainers | {report['postgresql_ceiling_2']['events_per_s']:,} | - | "
        f"{report['postgresql_ceiling_2'].get('database_cpu_us_per_event', '-')} |",
        "",
        f"two processes / one on PostgreSQL: {report['postgresql_drain_2_vs_1']}x; the service's busy database connections "
        f"waiting for a lock: {report['postgresql_drain_1']['lock_wait_share']:.1%} (one process), "
        f"{report['postgresql_drain_2']['lock_wait_share']:.1%} (two); cores the machine gave "
        f"(CPU probe, before / after): {report['cores_available_before']} / {report['cores_available_after']}"
        + ("" if report["postgres_measured"] else " (BENCH_POSTGRES_URL: the database's CPU is not measured)"),
        "",
    ]
    lines += [f"- {name}: **{verdict}**" for name, verdict in report["targets"].items()]
    if n < 20_000:
        lines.append(f"\n(a smoke run: {n:,} events are too few for the rates to mean anything)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="backlog size (default 100000)")
    parser.add_argument("--batch", type=int, default=100, help="events per SendBatch (default 100, as python -m bench)")
    parser.add_argument("--concurrency", type=int, default=4, help="SendBatch calls in flight (default 4)")
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke run")
    parser.add_argument("--out", default=str(BENCH / "out"))
    parser.add_argument("--claim-loop", metavar="URL", help=argparse.SUPPRESS)  # one drainer of _database_ceiling
    args = parser.parse_args(argv)
    from service.ops import logs

    logs.configure("warning")  # the stores opened here (filling, drainers) log like a service: warnings only
    if args.claim_loop:
        asyncio.run(_claim_loop(args.claim_loop, 100, 4))
        return 0
    if args.quick:
        args.events = 2000
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run(args.events, args.batch, args.concurrency, out)
    (out / "postgres.json").write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
