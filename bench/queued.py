"""Queued delivery on the bench: what accepting costs, and how fast a backlog drains.

``python -m bench.queued`` (or ``python -m bench --queued``) runs, side by side in one run,
against the cheap stand-in (bench/standin.py):

1. sync SendBatch: the yardstick, events/s and the service's CPU per event;
2. queued SendBatch and queued unary Send while Kameleoon is down (the service points at a
   closed port), so every event lands in the outbox (synchronous=FULL, group commit):
   events/s accepted and the service's CPU microseconds per accepted event;
3. the drain: a fresh service on the same outbox file, Kameleoon up: the backlog's events/s,
   against the sync SendBatch rate, and peak RSS sampled through the drain.

Each phase drives the service from this process with N calls in flight; requests are
pre-encoded protobuf bytes with a fresh messageId spliced in, so the client stays cheap.
Nothing here asserts: targets are reported as PASS / FAIL. Writes bench/out/queued.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import grpc

from bench import events as ev
from bench.common import tree_cpu_seconds, tree_memory_kb
from bench.run import BENCH, free_port, log, standin_stats, start_service, start_standin, stop

SERVICE = "/kameleoon.destination.v1.KameleoonDestination/"
QUEUED = 2
TARGET_ACCEPT = 20_000  # queued SendBatch events/s accepted
TARGET_DRAIN = 0.8  # drain rate / sync SendBatch rate
TARGET_RSS_MB = 100


def _varint(n: int) -> bytes:
    return ev.varint(n)


class Requests:
    """Pre-encoded SendRequest bytes of the event pool, without settings (the server holds the apiKey)."""

    def __init__(self, pool: int, tag: str):
        self.parts = [ev.send_request_parts(e, with_settings=False) for e in ev.make_events(pool)]
        self.tag = tag
        self.n = 0

    def one(self, queued: bool) -> bytes:
        self.n += 1
        request = ev.send_request(self.parts[self.n % len(self.parts)], f"{self.tag}-{self.n}")
        return request + (b"\xa0\x01" + _varint(QUEUED) if queued else b"")

    def batch(self, size: int, queued: bool) -> bytes:
        items = b"".join(ev.length_delimited(2, self.one(False)) for _ in range(size))
        return items + (b"\xa0\x01" + _varint(QUEUED) if queued else b"")


def _start_service(out: Path, name: str, url: str, env: dict) -> tuple:
    """bench.run's service start, holding the apiKey (so queued requests store a reference, not a key)."""
    return start_service(out, url, f"queued-{name}.log", {"KAMELEOON_API_KEY": ev.API_KEY, "KAMELEOON_SITECODE": ev.SITECODE, **env})


async def _drive(port: int, method: str, make, calls: int, per_call: int, concurrency: int, pid: int) -> dict:
    """``calls`` calls of ``method`` (each carrying ``per_call`` events), ``concurrency`` in flight."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(SERVICE + method)
        await call(make(), timeout=30)  # warm the connection and the service's code paths
        todo = iter(range(calls))
        failures = 0
        cpu0, t0 = tree_cpu_seconds(pid), time.perf_counter()

        async def worker() -> None:
            nonlocal failures
            for _ in todo:
                try:
                    await call(make(), timeout=60)
                except grpc.aio.AioRpcError:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - t0, tree_cpu_seconds(pid) - cpu0
    events = calls * per_call
    return {
        "events": events,
        "failed_calls": failures,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "service_cpu_us_per_event": round(cpu / events * 1e6, 1),
        "concurrency": concurrency,
        "events_per_call": per_call,
    }


def _outbox_pending(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def run(events: int, batch: int, concurrency: int, send_events: int, sync_events: int, out: Path) -> dict:
    report: dict = {
        "settings": {"backlog_events": events, "batch": batch, "concurrency": concurrency, "send_events": send_events, "sync_events": sync_events}
    }
    work = Path(tempfile.mkdtemp(prefix="bench-queued-"))
    db = work / "outbox.db"
    children = []
    try:
        standin, standin_port, standin_log = start_standin(out)
        children.append(lambda: (stop(standin), standin_log.close()))
        url = f"http://127.0.0.1:{standin_port}/segmentio"
        requests = Requests(500, "q")

        log("sync SendBatch (the yardstick)")
        svc, port, svc_log = _start_service(out, "sync", url, {})
        report["sync_batch"] = asyncio.run(
            _drive(port, "SendBatch", lambda: requests.batch(batch, False), sync_events // batch, batch, concurrency, svc.pid)
        )
        report["sync_batch"]["peak_rss_kb"] = tree_memory_kb(svc.pid).get("VmHWM")
        stop(svc, grace=15)
        svc_log.close()

        log(f"queued SendBatch: {events} events into the outbox while Kameleoon is down")
        down = f"http://127.0.0.1:{free_port()}/segmentio"  # nothing listens there
        env = {"KAMELEOON_DELIVERY": "queued", "KAMELEOON_OUTBOX": f"sqlite:///{db}"}
        svc, port, svc_log = _start_service(out, "accept", down, env)
        report["queued_batch"] = asyncio.run(
            _drive(port, "SendBatch", lambda: requests.batch(batch, True), events // batch, batch, concurrency, svc.pid)
        )
        log(f"queued unary Send: {send_events} events, 32 in flight")
        report["queued_send"] = asyncio.run(_drive(port, "Send", lambda: requests.one(True), send_events, 1, 32, svc.pid))
        report["queued_send"]["peak_rss_kb"] = report["queued_batch"]["peak_rss_kb"] = tree_memory_kb(svc.pid).get("VmHWM")
        stop(svc, grace=15)
        svc_log.close()
        backlog = _outbox_pending(db)
        report["backlog"] = backlog
        report["outbox_file_mb"] = round(sum(p.stat().st_size for p in work.iterdir()) / 1e6, 1)

        log(f"drain: {backlog} events, Kameleoon up")
        before = standin_stats(standin_port)["posts"]
        svc, port, svc_log = _start_service(out, "drain", url, env)
        cpu0, t0 = tree_cpu_seconds(svc.pid), time.perf_counter()
        marks, rss = [], []
        while True:
            done = standin_stats(standin_port)["posts"] - before
            now = time.perf_counter() - t0
            rss.append((done, tree_memory_kb(svc.pid).get("VmRSS")))
            if done >= backlog or now > 600:
                break
            time.sleep(0.25)
        elapsed, cpu = time.perf_counter() - t0, tree_cpu_seconds(svc.pid) - cpu0
        marks = [rss[int(i * (len(rss) - 1) / 4)] for i in range(5)]
        report["drain"] = {
            "events": done,
            "seconds": round(elapsed, 2),
            "events_per_s": round(done / elapsed),
            "service_cpu_us_per_event": round(cpu / max(done, 1) * 1e6, 1),
            "rss_kb_by_events_done": marks,
            "peak_rss_kb": tree_memory_kb(svc.pid).get("VmHWM"),
        }
        stop(svc, grace=15)
        svc_log.close()
    finally:
        for close in reversed(children):
            close()
        shutil.rmtree(work, ignore_errors=True)
    sync_rate = report["sync_batch"]["events_per_s"]
    peak_mb = max(report["queued_batch"]["peak_rss_kb"] or 0, report["drain"]["peak_rss_kb"] or 0) / 1024
    report["targets"] = {
        "queued SendBatch accepted events/s >= 20,000": _verdict(report["queued_batch"]["events_per_s"] >= TARGET_ACCEPT),
        "drain >= 80% of sync SendBatch": _verdict(report["drain"]["events_per_s"] >= TARGET_DRAIN * sync_rate),
        "peak RSS <= 100 MB": _verdict(peak_mb <= TARGET_RSS_MB),
    }
    report["drain_vs_sync_batch"] = round(report["drain"]["events_per_s"] / sync_rate, 2)
    report["peak_rss_mb"] = round(peak_mb, 1)
    return report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def markdown(report: dict) -> str:
    sync, qb, qs, drain = report["sync_batch"], report["queued_batch"], report["queued_send"], report["drain"]
    lines = [
        "| queued delivery | events/s | service CPU µs/event |",
        "|---|---|---|",
        f"| sync SendBatch ({sync['events_per_call']}/call, {sync['concurrency']} in flight) | {sync['events_per_s']:,} | {sync['service_cpu_us_per_event']} |",
        f"| queued SendBatch, accepted ({qb['events_per_call']}/call) | {qb['events_per_s']:,} | {qb['service_cpu_us_per_event']} |",
        f"| queued unary Send, accepted (32 in flight) | {qs['events_per_s']:,} | {qs['service_cpu_us_per_event']} |",
        f"| drain of a {report['backlog']:,}-event backlog | {drain['events_per_s']:,} ({report['drain_vs_sync_batch']}x sync SendBatch) | {drain['service_cpu_us_per_event']} |",
        "",
        f"peak RSS: queued service {report['peak_rss_mb']} MB (sync SendBatch service {round((sync['peak_rss_kb'] or 0) / 1024, 1)} MB); "
        f"RSS (kB) through the drain by events delivered: {drain['rss_kb_by_events_done']}; outbox files {report['outbox_file_mb']} MB",
        "",
    ]
    lines += [f"- {name}: **{verdict}**" for name, verdict in report["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queued", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="backlog size, through queued SendBatch (default 100000)")
    parser.add_argument("--batch", type=int, default=100, help="events per SendBatch (default 100, as python -m bench)")
    parser.add_argument("--concurrency", type=int, default=4, help="SendBatch calls in flight (default 4)")
    parser.add_argument("--send-events", type=int, default=5000, help="queued unary Send events (default 5000)")
    parser.add_argument("--sync-events", type=int, default=20_000, help="sync SendBatch events (default 20000)")
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke run")
    parser.add_argument("--out", default=str(BENCH / "out"))
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.send_events, args.sync_events, args.batch = 1000, 100, 500, 50
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run(args.events, args.batch, args.concurrency, args.send_events, args.sync_events, out)
    (out / "queued.json").write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
