"""What the delivery overview and the operator's page cost the event path.

``python -m bench.overview`` (or ``python -m bench --overview``) runs against the cheap stand-in
(bench/standin.py), SendBatch of 100 events with 4 calls in flight, the service at its defaults
otherwise, and reports the service's CPU microseconds per event (its process tree, from /proc):

1. recording, samples on (the default) against ``KAMELEOON_SAMPLES=off``, sync and queued, with a
   filter dropping page events (a fifth of the pool) so that discards are counted and sampled;
2. the page (``KAMELEOON_ADMIN_LISTEN``): its overview, outbox and configuration fetched every second
   during the load, against the same service not fetched.

Each setting is measured ``--rounds`` times, alternating, in fresh services, and the lowest reading
kept (another process on a shared host only ever adds CPU time). Targets are reported as PASS/FAIL,
never asserted: on samples, at most 5% more CPU per event; on the page, no change beyond the noise of
the readings (5%). Writes bench/out/overview.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import tree_cpu_seconds
from bench.queued import Requests, _drive, _outbox_pending, _start_service
from bench.run import BENCH, log, start_standin, stop

BATCH, CONCURRENCY = 100, 4
TARGET = 1.05  # at most 5% more CPU per event


async def _polled(port: int, pid: int, requests: Requests, events: int, page_port: int | None) -> dict:
    """The load; with ``page_port``, the page's three views fetched once a second while it runs."""
    stop_polling = asyncio.Event()
    fetched = 0

    async def poll() -> None:
        nonlocal fetched
        while not stop_polling.is_set():
            for path in ("/", "/outbox", "/config"):
                await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{page_port}{path}", timeout=10).read())
                fetched += 1
            try:
                await asyncio.wait_for(stop_polling.wait(), 1.0)
            except TimeoutError:
                pass

    poller = asyncio.ensure_future(poll()) if page_port else None
    result = await _drive(port, "SendBatch", lambda: requests.batch(BATCH, False), events // BATCH, BATCH, CONCURRENCY, pid)
    stop_polling.set()
    if poller is not None:
        await poller
        result["page_fetches"] = fetched
    return result


def _measure(out: Path, url: str, name: str, env: dict, events: int, requests: Requests, page: bool = False) -> dict:
    if page:
        from bench.run import free_port

        page_port = free_port()
        env = {**env, "KAMELEOON_ADMIN_LISTEN": f"127.0.0.1:{page_port}"}
    svc, port, svc_log = _start_service(out, f"overview-{name}", url, env)
    try:
        outbox = env.get("KAMELEOON_OUTBOX", "").removeprefix("sqlite:///")
        cpu0 = tree_cpu_seconds(svc.pid) or 0.0
        result = asyncio.run(_polled(port, svc.pid, requests, events, page_port if page else None))
        if outbox:  # queued: delivering (and its marks and samples) comes after the calls: count until the outbox drained
            deadline = time.monotonic() + 120
            while _outbox_pending(Path(outbox)) and time.monotonic() < deadline:
                time.sleep(0.05)
            result["service_cpu_us_per_event"] = round(((tree_cpu_seconds(svc.pid) or 0.0) - cpu0) / events * 1e6, 1)
    finally:
        stop(svc, grace=30)
        svc_log.close()
    return result


def run(events: int, rounds: int, out: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-overview-"))
    filters = work / "filters.json"
    filters.write_text(json.dumps([{"title": "No page views", "enabled": True, "if": 'type = "page"', "actions": [{"type": "DROP"}]}]))
    standin, standin_port, standin_log = start_standin(out, log_name="overview-standin.log")
    url = f"http://127.0.0.1:{standin_port}/segmentio"
    requests = Requests(500, "ov")
    settings = {
        "sync, samples on": ({"KAMELEOON_FILTERS": str(filters)}, False),
        "sync, samples off": ({"KAMELEOON_FILTERS": str(filters), "KAMELEOON_SAMPLES": "off"}, False),
        "queued, samples on": ({"KAMELEOON_FILTERS": str(filters), "KAMELEOON_DELIVERY": "queued"}, False),
        "queued, samples off": ({"KAMELEOON_FILTERS": str(filters), "KAMELEOON_DELIVERY": "queued", "KAMELEOON_SAMPLES": "off"}, False),
        "sync, page fetched every second": ({}, True),
        "sync, page not fetched": ({}, False),
    }
    readings: dict[str, list[dict]] = {name: [] for name in settings}
    try:
        for round_ in range(rounds):
            for index, (name, (env, page)) in enumerate(settings.items()):
                if env.get("KAMELEOON_DELIVERY") == "queued":
                    env = {**env, "KAMELEOON_OUTBOX": f"sqlite:///{work}/outbox-{round_}-{index}.db"}
                log(f"round {round_ + 1}/{rounds}: {name}")
                readings[name].append(_measure(out, url, name.replace(", ", "-").replace(" ", "-"), env, events, requests, page))
    finally:
        stop(standin)
        standin_log.close()
        shutil.rmtree(work, ignore_errors=True)
    best = {name: min(r["service_cpu_us_per_event"] for r in found) for name, found in readings.items()}
    ratios = {
        "sync: samples on / off": round(best["sync, samples on"] / best["sync, samples off"], 3),
        "queued: samples on / off": round(best["queued, samples on"] / best["queued, samples off"], 3),
        "page fetched / not fetched": round(best["sync, page fetched every second"] / best["sync, page not fetched"], 3),
    }
    return {
        "settings": {"events": events, "rounds": rounds, "batch": BATCH, "concurrency": CONCURRENCY},
        "cpu_us_per_event": best,
        "readings": readings,
        "ratios": ratios,
        "targets": {f"{name} <= {TARGET}": "PASS" if ratio <= TARGET else "FAIL" for name, ratio in ratios.items()},
    }


def markdown(report: dict) -> str:
    lines = ["| setting | service CPU µs/event (lowest of the rounds) | readings |", "|---|---|---|"]
    for name, best in report["cpu_us_per_event"].items():
        shown = ", ".join(str(r["service_cpu_us_per_event"]) for r in report["readings"][name])
        lines.append(f"| {name} | {best} | {shown} |")
    lines.append("")
    lines += [f"- {name}: {ratio}x" for name, ratio in report["ratios"].items()]
    lines += [f"- {name}: **{verdict}**" for name, verdict in report["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each setting, alternating (default 3)")
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke run")
    parser.add_argument("--out", default=str(BENCH / "out"))
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.rounds = 1000, 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run(args.events, args.rounds, out)
    (out / "overview.json").write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
