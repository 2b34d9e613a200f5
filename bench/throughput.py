"""``make bench BENCH_ARGS="--throughput [--baseline DIR]"``: throughput to a distant or rate-limited Kameleoon.

Delivered events per second at the stand-in (bench/standin.py, given a latency and a capacity: it
answers at most N POSTs at once and 429 beyond), under SendBatch load for a fixed time, every
configuration in one run:

- far: 100 ms away, no limit: the service at its defaults (adaptive concurrency), the same with a
  hand-sized pool (KAMELEOON_CONCURRENCY=1000), and the baseline checkout at its defaults;
- limited: 20 ms away, 50 at once (ideal: 2,500 events/s): defaults and baseline, with the share of
  POSTs answered 429;
- drop: 20 ms away, 50 at once, cut to 20 once the limit has settled, then back to 50: the service's
  kameleoon_concurrency_limit sampled every 250 ms, how long it took to halve and to climb back.

The load comes from this process (LOAD_CALLS SendBatch calls of 100 events in flight, each service
delivering KAMELEOON_BATCH_CONCURRENCY of a call at once). Numbers, never assertions: see the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "eyJpZCI6ImEiLCJzZWNyZXQiOiJiIn0="
SITECODE = "0123456789"
LOAD_CALLS = 24  # SendBatch calls in flight; x 32 (KAMELEOON_BATCH_CONCURRENCY) = 768 events in flight at most
BATCH = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log(message: str) -> None:
    print(f"[throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class StandIn:
    def __init__(self, delay_ms: float, capacity: int = 0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.standin", "--delay-ms", str(delay_ms), "--capacity", str(capacity)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self.process.stdout.readline().split()[1])  # type: ignore[union-attr]  # "PORT <n>"
        self.url = f"http://127.0.0.1:{self.port}/segmentio"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__stats", timeout=5) as answer:
            return json.loads(answer.read())

    def capacity(self, n: int) -> None:
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__capacity?n={n}", timeout=5).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Service:
    def __init__(self, checkout: Path, standin: StandIn, **env: str):
        self.port, self.metrics_port = _free_port(), _free_port()
        environment = {key: value for key, value in os.environ.items() if not key.startswith("KAMELEOON_")} | {
            "KAMELEOON_BASE_URL": standin.url,
            "KAMELEOON_API_KEY": API_KEY,
            "KAMELEOON_SITECODE": SITECODE,
            "KAMELEOON_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "KAMELEOON_LOG_FORMAT": "json",
            **env,
        }
        script = checkout / ".venv" / "bin" / "kameleoon-destination"
        self.process = subprocess.Popen(
            [str(script), "serve", "--listen", f"127.0.0.1:{self.port}"],
            cwd=checkout,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def limit(self) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
                for line in answer.read().decode().splitlines():
                    if line.startswith("kameleoon_concurrency_limit{"):
                        return float(line.rsplit(" ", 1)[1])
        except OSError:
            pass
        return None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _load(port: int, seconds: float, stop_at: list[float]) -> int:
    """LOAD_CALLS SendBatch loops until the time is up; the events answered OK."""
    import grpc

    from kameleoon.destination.v1 import destination_pb2 as pb
    from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc

    ok = [0]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 60)
        stub = pb_grpc.KameleoonDestinationStub(channel)
        event = '{"type":"track","event":"Order Completed","userId":"u-%d","properties":{"revenue":1},"timestamp":"2026-11-28T10:00:00.000Z","messageId":"%s"}'
        counter = [0]
        stop_at.append(time.monotonic() + seconds)

        async def loop() -> None:
            while time.monotonic() < stop_at[0]:
                start = counter[0]
                counter[0] += BATCH
                requests = [pb.SendRequest(event_json=event % (i, f"t-{os.getpid()}-{i}")) for i in range(start, start + BATCH)]
                answer = await stub.SendBatch(pb.SendBatchRequest(requests=requests), timeout=120)
                ok[0] += sum(1 for r in answer.responses if r.status.code == 0)

        await asyncio.gather(*(loop() for _ in range(LOAD_CALLS)))
    return ok[0]


def measure(service: Service, standin: StandIn, seconds: float, warmup: float) -> dict:
    """Warm up, then load for ``seconds``: delivered POSTs/s at the stand-in, 429s, events answered OK."""
    asyncio.run(_load(service.port, warmup, []))
    before = standin.stats()
    started = time.monotonic()
    ok = asyncio.run(_load(service.port, seconds, []))
    elapsed = time.monotonic() - started
    after = standin.stats()
    posts, rejected = after["posts"] - before["posts"], after["rejected"] - before["rejected"]
    return {
        "delivered_per_s": round(posts / elapsed),
        "answered_ok": ok,
        "posts_429": rejected,
        "share_429": round(rejected / (posts + rejected), 4) if posts + rejected else 0.0,
        "limit_at_end": service.limit(),
    }


def compare(label: str, standin: StandIn, variants: list[tuple[str, Path, dict]], seconds: float, warmup: float, **env: str) -> dict:
    """Each (name, checkout, environment) variant against ``standin``, one after the other; the stand-in stopped at the end."""
    result = {}
    try:
        for name, checkout, extra in variants:
            _log(f"{label}: {name}")
            service = Service(checkout, standin, **env, **extra)
            try:
                result[name] = measure(service, standin, seconds, warmup)
            finally:
                service.stop()
    finally:
        standin.stop()
    return result


def _baseline(baseline: Path | None) -> list[tuple[str, Path, dict]]:
    return [(f"baseline {baseline.name} (its defaults)", baseline, {})] if baseline else []


def far(baseline: Path | None, seconds: float, warmup: float) -> dict:
    variants = [("defaults", ROOT, {}), ("hand-sized pool (KAMELEOON_CONCURRENCY=1000)", ROOT, {"KAMELEOON_CONCURRENCY": "1000"})]
    return compare("far (100 ms)", StandIn(delay_ms=100), variants + _baseline(baseline), seconds, warmup)


def limited(baseline: Path | None, seconds: float, warmup: float) -> dict:
    variants = [("defaults", ROOT, {}), ("hand-sized to the capacity (KAMELEOON_CONCURRENCY=50)", ROOT, {"KAMELEOON_CONCURRENCY": "50"})]
    standin = StandIn(delay_ms=20, capacity=50)
    result = compare("limited (20 ms, 50 at once)", standin, variants + _baseline(baseline), seconds, warmup, KAMELEOON_MAX_ATTEMPTS="10")
    return result | {"ideal_per_s": 2500}


def drop(seconds_each: float) -> dict:
    """Capacity 50, then 20, then 50 again: the limit sampled every 250 ms."""
    standin = StandIn(delay_ms=20, capacity=50)
    service = Service(ROOT, standin, KAMELEOON_MAX_ATTEMPTS="10")
    samples: list[tuple[float, float | None, int]] = []
    phases = {"settled": seconds_each, "cut_to_20": 2 * seconds_each, "back_to_50": 3 * seconds_each}

    def sampler(started: float) -> None:
        capacity = 50
        while (now := time.monotonic() - started) < 3 * seconds_each:
            if capacity == 50 and seconds_each <= now < 2 * seconds_each:
                capacity = 20
                standin.capacity(20)
            elif capacity == 20 and now >= 2 * seconds_each:
                capacity = 50
                standin.capacity(50)
            samples.append((round(now, 2), service.limit(), capacity))
            time.sleep(0.25)

    async def run() -> None:
        started = time.monotonic()
        await asyncio.gather(_load(service.port, 3 * seconds_each, []), asyncio.to_thread(sampler, started))

    try:
        asyncio.run(_load(service.port, 2.0, []))
        _log("drop: 50 at once, then 20, then 50")
        asyncio.run(run())
    finally:
        service.stop()
        standin.stop()
    before = [limit for t, limit, cap in samples if cap == 50 and t < seconds_each and limit is not None]
    settled = before[-1] if before else None
    cut = [(t, limit) for t, limit, cap in samples if cap == 20 and limit is not None]
    halved_at = next((t - seconds_each for t, limit in cut if settled and limit <= settled / 2), None)
    low = min((limit for _, limit in cut), default=None)
    back = [(t, limit) for t, limit, cap in samples if cap == 50 and t >= 2 * seconds_each and limit is not None]
    recovered_at = next((t - 2 * seconds_each for t, limit in back if low and settled and limit >= min(settled, 2 * low)), None)
    return {
        "phases_s": phases,
        "limit_settled_at_50": settled,
        "seconds_to_halve_after_the_cut": halved_at,
        "lowest_limit_at_20": low,
        "seconds_to_climb_back": recovered_at,
        "limit_at_end": back[-1][1] if back else None,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout (its own make install), measured beside this one")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds of each run (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measurement (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--only", choices=("far", "limited", "drop"), help="one scenario")
    args = parser.parse_args(argv)
    baseline = args.baseline.resolve() if args.baseline else None
    report: dict = {"far_100ms": {}, "limited_20ms_50": {}, "drop": {}}
    if args.only in (None, "far"):
        report["far_100ms"] = far(baseline, args.duration, args.warmup)
    if args.only in (None, "limited"):
        report["limited_20ms_50"] = limited(baseline, args.duration, args.warmup)
    if args.only in (None, "drop"):
        report["drop"] = drop(max(args.duration, 6.0))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(report, indent=1))
    print("## Kameleoon 100 ms away, no limit (SendBatch, 768 events in flight at most)\n")
    print("| service | delivered events/s | limit at the end |\n|---|---|---|")
    for name, run in report["far_100ms"].items():
        print(f"| {name} | {run['delivered_per_s']:,} | {run['limit_at_end']} |")
    print("\n## Kameleoon 20 ms away, 50 at once, 429 beyond (ideal 2,500 events/s)\n")
    print("| service | delivered events/s | of the ideal | POSTs answered 429 |\n|---|---|---|---|")
    for name, run in report["limited_20ms_50"].items():
        if isinstance(run, dict):
            print(f"| {name} | {run['delivered_per_s']:,} | {run['delivered_per_s'] / 2500:.0%} | {run['share_429']:.1%} ({run['posts_429']:,}) |")
    d = report["drop"]
    if d:
        print(
            f"\n## Capacity cut from 50 to 20, then back\n\nlimit settled at {d['limit_settled_at_50']}; halved "
            f"{d['seconds_to_halve_after_the_cut']} s after the cut (lowest {d['lowest_limit_at_20']}); climbed back "
            f"{d['seconds_to_climb_back']} s after the capacity returned (at the end: {d['limit_at_end']}).\n"
        )
    print(f"report: {args.out / 'throughput.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
