"""Profile the service under load with py-spy: ``python -m bench.profile``.

Starts the stand-in, the service and the load generator as ``python -m bench``
does, drives one mode at one concurrency, and samples the service with
``py-spy record`` (install it into the venv: ``.venv/bin/pip install py-spy``).
Writes the collapsed stacks (bench/out/profile-<mode>-c<N>.txt, loadable in
speedscope or flamegraph.pl) and prints the top functions by self and by
inclusive share of samples, and the share per component (service code, grpc,
aiohttp, asyncio, protobuf, ...).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench import events as ev
from bench.run import BENCH, SERVICE_MODES, LineWorker, log, start_service, start_standin, stop

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Component of a frame, by the first segment of its (py-spy shortened) path.
COMPONENTS = {
    "service": "service (this project)",
    "grpc": "grpc",
    "aiohttp": "aiohttp / yarl / multidict",
    "yarl": "aiohttp / yarl / multidict",
    "multidict": "aiohttp / yarl / multidict",
    "aiohappyeyeballs": "aiohttp / yarl / multidict",
    "google": "protobuf",
    "structlog": "structlog / logging",
    "logging": "structlog / logging",
    "prometheus_client": "prometheus_client",
    "json": "json",
    "asyncio": "asyncio",
    "selectors.py": "asyncio",
    "threading.py": "threads",
}


def _split(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame)
    if not m:
        return frame, ""
    return m.group("func"), m.group("file")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


LOOP_FRAMES = {"Runner.run", "BaseEventLoop.run_forever", "BaseEventLoop._run_once", "Handle._run", "run"}


def _component(path: str) -> str:
    path = _short(path)
    if path.endswith((".so", ".pyx", ".pxi")) or "cygrpc" in path:
        return "native (grpc core, C extensions)"
    return COMPONENTS.get(path.split("/", 1)[0], "other")


def _owner(frames: list[tuple[str, str]]) -> str:
    """Who a sample's time belongs to: the nearest frame, from the leaf up, of a known component.

    Native frames of libc or the interpreter are charged to the library that called them
    (grpc's cygrpc, uvloop, ...). Without --native, time a Python event-loop frame spends in
    C below it (grpc's Cython server, the loop's own C code, syscalls) has no frame of its own.
    """
    func, file = frames[-1]
    short = _short(file)
    if func in LOOP_FRAMES and short.startswith(("asyncio/", "uvloop/")):
        return "native under the event loop (grpc Cython/core, loop C code, syscalls)"
    for func, file in reversed(frames):
        short = _short(file)
        if "gc_collect" in func:
            return "Python GC"
        if "cygrpc" in short:
            return "grpc (cygrpc + core, native)"
        if "loop.c" in short or short.startswith("uvloop/"):
            return "uvloop (native)"
        if "_json.c" in short:
            return "json"
        if ".py" in short or short.startswith("<"):
            return _component(file)
    return "other native"


def summarise(collapsed: Path, top: int = 25) -> dict:
    """Self and inclusive shares from py-spy's raw (collapsed) output.

    Shares are of all samples; the main thread (the event loop, where the
    service's Python runs) is broken down, other threads (grpc's completion
    queue poller, mostly blocked in epoll_wait) are listed apart.
    """
    other_threads: Counter = Counter()
    self_counts: Counter = Counter()
    incl_counts: Counter = Counter()
    component_self: Counter = Counter()
    component_incl: Counter = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_split(f) for f in stack.split(";")]
        # The thread's name/process frames py-spy adds have no file: skip them.
        frames = [(func, file) for func, file in frames if file]
        if not frames:
            continue
        if not any(func == "<module>" for func, _ in frames):  # not the main thread: grpc's poller and other helper threads
            leaf = frames[-1]
            other_threads[f"{leaf[0]} ({_short(leaf[1])})"] += n
            continue
        func, file = frames[-1]
        self_counts[f"{func} ({_short(file)})"] += n
        component_self[_owner(frames)] += n
        for key in {f"{f} ({_short(p)})" for f, p in frames}:
            incl_counts[key] += n
        for comp in {_component(p) for _, p in frames}:
            component_incl[comp] += n

    def table(counter: Counter) -> list[dict]:
        return [{"function": k, "share": round(v / total, 4)} for k, v in counter.most_common(top)] if total else []

    main_total = total - sum(other_threads.values())
    return {
        "samples": total,
        "main_thread_share": round(main_total / total, 4) if total else None,
        "other_threads_top": table(other_threads)[:5],
        "self": table(self_counts),
        "inclusive": table(incl_counts),
        # Each sample charged to one owner (see _owner): these add up to the main thread's share.
        "components_self": {k: round(v / total, 4) for k, v in component_self.most_common()} if total else {},
        "components_inclusive": {k: round(v / total, 4) for k, v in component_incl.most_common()} if total else {},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=SERVICE_MODES, default="send")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0, help="sampling time (load runs 2 s longer)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include native (C) frames")
    parser.add_argument("--idle", action="store_true", help="include idle samples (threads waiting)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=str(BENCH / "out"))
    args = parser.parse_args(argv)

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    events_file = out / "events.json"
    events_file.write_text(json.dumps(ev.make_events(2000)))
    collapsed = out / f"profile-{args.mode}-c{args.concurrency}.txt"
    closers = []
    try:
        standin, standin_port, standin_log = start_standin(out)
        closers.append(lambda: (stop(standin), standin_log.close()))
        url = f"http://127.0.0.1:{standin_port}/segmentio"
        service, port, service_log = start_service(out, url, "service-profile.log")
        closers.append(lambda: (stop(service, grace=15), service_log.close()))
        loadgen = LineWorker("load generator", [sys.executable, "-m", "bench.loadgen"], out / "loadgen.log")
        closers.append(loadgen.close)
        loadgen.ask({"op": "load", "events_file": str(events_file)}, 120)
        base = {"target": f"127.0.0.1:{port}", "standin_url": url, "batch_size": 100}
        probe = loadgen.ask({"op": "probe", "mode": args.mode, **base}, 30)
        if not probe["available"]:
            print(f"mode {args.mode} unavailable: {probe['reason']}", file=sys.stderr)
            return 1
        loadgen.ask({"op": "throughput", "mode": args.mode, "concurrency": args.concurrency, "warmup_s": 1.0, "duration_s": 0.0, **base}, 60)
        cmd = [py_spy, "record", "-p", str(service.pid), "-d", str(int(args.seconds)), "-r", str(args.rate), "-f", "raw", "-o", str(collapsed)]
        if args.native:
            cmd.append("--native")
        if args.idle:
            cmd.append("--idle")
        log(f"profiling {args.mode} c={args.concurrency} for {args.seconds:g} s: {' '.join(cmd)}")
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out / "py-spy.log", "wb"))
        time.sleep(0.5)
        result = loadgen.ask(
            {
                "op": "throughput",
                "mode": args.mode,
                "concurrency": args.concurrency,
                "warmup_s": 0.5,
                "duration_s": args.seconds + 1,
                "tag": "prof",
                "pids": {"service": service.pid},
                **base,
            },
            args.seconds + 90,
        )
        try:
            spy.wait(args.seconds + 30)
        except subprocess.TimeoutExpired:
            stop(spy)
    finally:
        for close in reversed(closers):
            close()
    if not collapsed.exists():
        print(f"py-spy wrote nothing; see {out / 'py-spy.log'}", file=sys.stderr)
        return 1
    summary = summarise(collapsed, args.top)
    summary["load"] = {k: result.get(k) for k in ("events_per_s", "cpu_cores", "errors")}
    (collapsed.with_suffix(".json")).write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"# py-spy: {args.mode} at concurrency {args.concurrency}, {summary['samples']} samples; "
        f"under profiling {result.get('events_per_s')} ev/s, service {result.get('cpu_cores', {}).get('service')} cores\n"
    )
    print(
        f"main thread (event loop): {summary['main_thread_share']:.1%} of samples; other threads: "
        + ", ".join(f"{r['function']} {r['share']:.1%}" for r in summary["other_threads_top"])
        + "\n"
    )
    print("| component (owner of the time) | share of samples |\n|---|---|")
    for comp, share in summary["components_self"].items():
        print(f"| {comp} | {share:.1%} |")
    for kind in ("self", "inclusive"):
        print(f"\n| top by {kind} | share |\n|---|---|")
        for row in summary[kind]:
            print(f"| `{row['function']}` | {row['share']:.1%} |")
    print(f"\ncollapsed stacks: {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
