"""``make bench BENCH_ARGS=--http``: events accepted through Segment's HTTP Tracking API (POST /v1/batch)
beside queued SendBatch over gRPC, in one run, on one service process.

Kameleoon is down (the stand-in answers 503), so every event stays in the outbox: what is measured is
accepting, committed with ``synchronous=FULL``, as /v1/batch always is. Each way in is loaded in turn for
the same time with the same batches (100 events, CALLS calls in flight, rounds alternated); the unit is
the service process's CPU microseconds per event accepted, and events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds
from bench.throughput import ROOT, Service, StandIn, _free_port, _log

CALLS = 8
BATCH = 100
WRITE_KEY = "wk_bench"


def _events(prefix: str, start: int) -> list[dict]:
    return [
        {
            "type": "track",
            "userId": f"user-{i}",
            "event": "Order Completed",
            "properties": {"revenue": i, "currency": "EUR", "kameleoonVisitorCode": "vc-1"},
            "context": {"ip": "203.0.113.9", "library": {"name": "analytics-node", "version": "6.2.0"}},
            "timestamp": "2026-11-28T10:00:00.000Z",
            "messageId": f"{prefix}-{i}",
        }
        for i in range(start, start + BATCH)
    ]


async def _grpc(port: int, seconds: float, prefix: str) -> int:
    import grpc

    from kameleoon.destination.v1 import destination_pb2 as pb
    from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc

    accepted, counter = [0], [0]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 60)
        stub = pb_grpc.KameleoonDestinationStub(channel)
        stop = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < stop:
                counter[0] += BATCH
                requests = [pb.SendRequest(event_json=json.dumps(e)) for e in _events(prefix, counter[0])]
                answer = await stub.SendBatch(pb.SendBatchRequest(requests=requests, delivery=pb.DELIVERY_MODE_QUEUED), timeout=60)
                accepted[0] += sum(1 for r in answer.responses if r.status.code == 0)

        await asyncio.gather(*(loop() for _ in range(CALLS)))
    return accepted[0]


async def _http(port: int, seconds: float, prefix: str) -> int:
    import aiohttp

    accepted, counter = [0], [0]
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    async with aiohttp.ClientSession() as session:
        stop = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < stop:
                counter[0] += BATCH
                async with session.post(f"http://127.0.0.1:{port}/v1/batch", json={"batch": _events(prefix, counter[0])}, headers=auth) as answer:
                    if answer.status == 200:
                        accepted[0] += BATCH
                    await answer.read()

        await asyncio.gather(*(loop() for _ in range(CALLS)))
    return accepted[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each measured round (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each way in, alternated (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    standin = StandIn(delay_ms=0)
    standin.process.kill()  # Kameleoon down: connections refused, every event stays in the outbox
    standin.process.wait()
    directory = tempfile.mkdtemp(prefix="kameleoon-bench-http-")
    http_port = _free_port()
    service = Service(
        ROOT,
        standin,
        KAMELEOON_OUTBOX=f"sqlite:///{directory}/outbox.db",
        KAMELEOON_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        KAMELEOON_WRITE_KEYS=WRITE_KEY,
        KAMELEOON_OUTBOX_MAX_PENDING="0",
    )
    results: dict[str, list[dict]] = {"grpc SendBatch (queued)": [], "http /v1/batch": []}
    try:
        asyncio.run(_grpc(service.port, 2.0, "warm-grpc"))
        asyncio.run(_http(http_port, 2.0, "warm-http"))
        for round_ in range(args.rounds):
            for name, run, port in (("grpc SendBatch (queued)", _grpc, service.port), ("http /v1/batch", _http, http_port)):
                _log(f"{name}, round {round_ + 1}/{args.rounds}")
                cpu = cpu_seconds(service.process.pid) or 0.0
                started = time.monotonic()
                accepted = asyncio.run(run(port, args.duration, f"{name[:4]}-{round_}"))
                elapsed = time.monotonic() - started
                used = (cpu_seconds(service.process.pid) or 0.0) - cpu
                results[name].append(
                    {"events_per_s": round(accepted / elapsed), "cpu_us_per_event": round(used / accepted * 1e6, 1) if accepted else None}
                )
    finally:
        service.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "http.json").write_text(json.dumps(results, indent=1))
    print(f"## Accepting queued events: Segment's HTTP API beside gRPC (batches of {BATCH}, {CALLS} in flight, one process)\n")
    print("| way in | CPU us/event (best; each round) | events/s (best) |\n|---|---|---|")
    for name, rounds in results.items():
        cpu = [r["cpu_us_per_event"] for r in rounds if r["cpu_us_per_event"]]
        print(f"| {name} | {min(cpu)} ({', '.join(map(str, cpu))}) | {max(r['events_per_s'] for r in rounds):,} |")
    print(f"\nreport: {args.out / 'http.json'}  (host: {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
