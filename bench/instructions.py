"""``make bench BENCH_ARGS="--instructions --baseline DIR"``: cost per event counted in instructions under
valgrind's callgrind, side by side with another checkout.

CPU time on a shared host moves by tens of percent from run to run; instruction counts move by
about 1%. Two measurements:

- ``own`` (default): what the service adds on top of gRPC and HTTP, in one process: a unary
  ``Send`` through the servicer, the ingest stages, routing and sync delivery (its idempotency
  window and in-flight limit), its log line rendered at info as in production, with a stand-in
  for the HTTP client that answers at once. A baseline must have the layout by stage
  (service/api/pipeline.py).
- ``--whole MODE`` (``batch`` or ``send``): the whole service, ``kameleoon-destination serve`` at
  its defaults under callgrind, real grpc.aio and aiohttp, posting to bench/standin.py; the load
  comes from this process (SendBatch of 100 events, or unary Send), not counted. Any checkout.

Each measurement runs N and 3N events; the difference over 2N is the cost per event (start-up
cancels out).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _child(count: int) -> None:
    """Runs in the measured checkout (its own interpreter and ``service`` package)."""
    from kameleoon.destination.v1 import destination_pb2 as pb
    from service.api.pipeline import Pipeline
    from service.api.servicer import Servicer
    from service.config import Config
    from service.delivery.client import Delivered
    from service.delivery.idempotency import MemoryStore
    from service.delivery.sync import SyncDelivery
    from service.ops import logs
    from service.outbox.accept import Acceptor
    from service.routing.router import Router
    from service.routing.subscriptions import load

    class Client:
        answer = Delivered(200, 1)

        async def post(self, body, credentials, deadline, action):
            return self.answer

    class Context:
        def time_remaining(self):
            return None

    async def run() -> None:
        config = Config(api_key="eyJpZCI6ImEiLCJzZWNyZXQiOiJiIn0=", sitecode="0123456789")
        logs.configure("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 -- for the process's life
        sync = SyncDelivery(Client(), MemoryStore(config.idempotency_window_s, config.idempotency_max_entries), config.max_in_flight)
        if "router" in inspect.signature(Pipeline).parameters:  # a checkout before sources and instances
            servicer = Servicer(config, Pipeline(Router(load(None)), sync, Acceptor(None)))
        else:  # the variables' one source and instance, as the server makes them
            from service.api.server import Holder
            from service.routing.filters import NO_FILTERS

            holder = Holder()
            holder.start(config, {"subscriptions": load(None), "filters": NO_FILTERS}, Router)
            servicer = Servicer(config, Pipeline(sync, Acceptor(None)), holder.get)
        context = Context()
        requests = [pb.SendRequest(event_json=_event(i)) for i in range(count)]
        for request in requests:
            await servicer.Send(request, context)

    asyncio.run(run())


def _instructions(checkout: pathlib.Path, count: int) -> int:
    python = checkout / ".venv" / "bin" / "python"
    # This file runs as a script in the checkout's own interpreter, which imports that checkout's service.
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(python), __file__, "--child", str(count)]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PYTHONHASHSEED": "0"}
    run = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"{checkout}: the child failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def _event(i: int) -> str:
    return json.dumps(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"user-{i}",
            "properties": {"revenue": i, "currency": "EUR", "kameleoonVisitorCode": "vc-1"},
            "context": {"ip": "203.0.113.9", "library": {"name": "analytics-node", "version": "6.2.0"}},
            "timestamp": "2026-11-28T10:00:00.000Z",
            "messageId": f"m-{i}",
        }
    )


async def _load(port: int, mode: str, count: int, offset: int) -> None:
    """``count`` events to the service on ``port``, once it serves (it starts slowly under valgrind)."""
    import grpc

    from kameleoon.destination.v1 import destination_pb2 as pb
    from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 600)
        stub = pb_grpc.KameleoonDestinationStub(channel)
        texts = [_event(offset + i) for i in range(count)]
        if mode == "batch":
            for start in range(0, count, 100):
                requests = [pb.SendRequest(event_json=text) for text in texts[start : start + 100]]
                response = await stub.SendBatch(pb.SendBatchRequest(requests=requests), timeout=600)
                assert all(r.status.code == 0 for r in response.responses), response
        else:
            for text in texts:
                await stub.Send(pb.SendRequest(event_json=text), timeout=600)


def _whole(checkout: pathlib.Path, mode: str, count: int, standin: str) -> int:
    import signal
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {
        "PYTHONHASHSEED": "0",
        "KAMELEOON_BASE_URL": standin,
        "KAMELEOON_API_KEY": "eyJpZCI6ImEiLCJzZWNyZXQiOiJiIn0=",
        "KAMELEOON_SITECODE": "0123456789",
        "KAMELEOON_LOG_FORMAT": "json",
        "KAMELEOON_MAX_CONNECTION_AGE_S": "86400",  # a run under valgrind outlasts the default 300 s
    }
    script = checkout / ".venv" / "bin" / "kameleoon-destination"
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(checkout / ".venv" / "bin" / "python"), str(script)]
    # stderr to a file, not a pipe: unary Sends log a line each, more than a pipe holds before the service blocks
    with tempfile.TemporaryFile(mode="w+") as log_file:
        service = subprocess.Popen(
            [*command, "serve", "--listen", f"127.0.0.1:{port}"], cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=log_file
        )
        try:
            asyncio.run(_load(port, mode, count, offset=count * 7))
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=600)
        log_file.seek(0)
        err = log_file.read()
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise SystemExit(f"{checkout}: no count from callgrind:\n{err[-2000:]}")
    return int(found.group(1))


def per_event(checkout: pathlib.Path, count: int, whole: str | None = None, standin: str = "") -> float:
    if whole:
        return (_whole(checkout, whole, 3 * count, standin) - _whole(checkout, whole, count, standin)) / (2 * count)
    return (_instructions(checkout, 3 * count) - _instructions(checkout, count)) / (2 * count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=pathlib.Path, help="another checkout (with its own make install) measured beside this one")
    parser.add_argument("--events", type=int, default=500, help="N: each child runs N and 3N events (default 500)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each checkout, alternating (default 2)")
    parser.add_argument("--whole", choices=("batch", "send"), help="the whole service process, loaded with SendBatch or unary Send")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child)
        return 0
    checkouts = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    found: dict[str, list[float]] = {name: [] for name, _ in checkouts}
    standin = None
    if args.whole:
        standin = subprocess.Popen([sys.executable, "-m", "bench.standin"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        port = standin.stdout.readline().split()[1]  # type: ignore[union-attr]  # "PORT <n>"
    try:
        for _ in range(args.rounds):
            for name, checkout in checkouts:
                url = f"http://127.0.0.1:{port}/segmentio" if standin else ""
                found[name].append(per_event(checkout, args.events, args.whole, url))
                print(f"[instructions] {name}: {found[name][-1]:,.0f} per event", file=sys.stderr, flush=True)
    finally:
        if standin is not None:
            standin.terminate()
    what = f"the whole service, {'SendBatch' if args.whole == 'batch' else 'unary Send'}" if args.whole else "the service's own work per Send"
    print(f"| checkout | instructions per event: {what} (each round) | mean |\n|---|---|---|")
    for name, values in found.items():
        print(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {sum(values) / len(values):,.0f} |")
    if args.baseline:
        ratio = (sum(found["this"]) / len(found["this"])) / (sum(found["baseline"]) / len(found["baseline"]))
        print(f"\nthis / baseline: {ratio:.3f}x (runs of one checkout agree within about 1%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
