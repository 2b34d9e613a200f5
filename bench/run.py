"""The orchestrator behind ``python -m bench``: starts the stand-in, the
service, the load generator and Segment's runtime, runs every phase, writes
bench/out/report.json and prints the markdown summary.

Processes (all on 127.0.0.1):

    loadgen (python -m bench.loadgen) --gRPC--> service (kameleoon-destination serve) --HTTP--\
    loadgen ------------------------------- raw HTTP ceiling ---------------------------------> stand-in
    segment_driver.js (Segment's runtime, Node) ---------------------------------------------/

Nothing here asserts on numbers: targets are reported as PASS / FAIL text.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import events as ev
from bench import report as rep
from bench.common import cpu_capacity, tree_memory_kb

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVICE_MODES = ("typed", "send", "batch", "stream")
# Service settings worth recording when set in the environment (never credentials).
SHOWN_ENV = ("KAMELEOON_WORKERS", "KAMELEOON_POOL_SIZE", "KAMELEOON_MAX_IN_FLIGHT", "KAMELEOON_IDEMPOTENCY_WINDOW_S",
             "KAMELEOON_IDEMPOTENCY_MAX_ENTRIES", "KAMELEOON_MAX_ATTEMPTS", "KAMELEOON_TIMEOUT_S")


@dataclass
class Profile:
    name: str
    pool: int  # distinct events generated (cycled, each call with a fresh messageId)
    concurrencies: list[int]
    raw_concurrencies: list[int]
    warmup_s: float
    duration_s: float
    max_events: int  # per throughput run, on top of the time bound
    batch_size: int
    latency_count: int
    latency_warmup: int
    memory_events: int
    memory_mark: int  # RSS is read each time this many more events are done
    memory_concurrency: int
    warm_s: float  # throw-away load before the first measurement of each process
    rounds: int = 1  # each throughput configuration is measured this many times; the best is kept
    memory_modes: tuple[str, ...] = ("batch", "stream", "send", "typed")  # the first one available is used
    memory_cap_s: float = 150.0  # wall-clock bound of each memory run
    memory_no_idempotency: bool = True  # a second memory run with the idempotency window off
    grpc_floor: bool = False  # also drive a bare grpc.aio server (bench/grpc_floor.py) with unary Send
    call_cap_s: float = 120.0  # the longest any other command may take
    capacity_probe_s: float = 1.0  # CPU-burner probe of the cores the machine really gives, at start and end
    extra: dict = field(default_factory=dict)


FULL = Profile("full", pool=2000, concurrencies=[1, 8, 32, 128], raw_concurrencies=[8, 32, 128], warmup_s=0.6,
               duration_s=1.6, rounds=2, max_events=200_000, batch_size=100, latency_count=2000, latency_warmup=200,
               memory_events=100_000, memory_mark=20_000, memory_concurrency=32, warm_s=1.5)
QUICK = Profile("quick", pool=200, concurrencies=[1, 8], raw_concurrencies=[8], warmup_s=0.2, duration_s=0.5,
                max_events=20_000, batch_size=20, latency_count=100, latency_warmup=20, memory_events=2000,
                memory_mark=400, memory_concurrency=8, warm_s=0.3, memory_cap_s=30.0, call_cap_s=30.0,
                capacity_probe_s=0.3)


class HarnessError(RuntimeError):
    pass


def git_state() -> dict:
    """The commit measured, and whether service/ differs from it (others may be editing)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None, "service_dirty": bool(git("status", "--porcelain", "--", "service"))}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------


class LineWorker:
    """A child speaking one JSON line per command; every answer awaited with a timeout."""

    def __init__(self, name: str, argv: list[str], stderr_path: Path, env: dict | None = None):
        self.name = name
        self.stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_line(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{self.name}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise HarnessError(f"{self.name} exited (code {self.proc.poll()}); see {self.stderr.name}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def ask(self, command: dict, timeout: float) -> dict:
        try:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise HarnessError(f"{self.name} is gone; see {self.stderr.name}") from None
        answer = self.read_line(timeout)
        if "error" in answer:
            raise HarnessError(f"{self.name}: {answer['error']}")
        return answer

    def close(self) -> None:
        stop(self.proc)
        self.stderr.close()


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM one child we started, then SIGKILL it if it does not leave in time."""
    if proc.poll() is not None:
        return
    try:
        if proc.stdin:
            proc.stdin.close()
    except OSError:
        pass
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_port_printer(out: Path, module: str, log_name: str) -> tuple[subprocess.Popen, int, object]:
    """Start ``python -m <module>``, which prints ``PORT <n>`` once listening."""
    err = open(out / log_name, "wb")
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                            stdin=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        stop(proc)
        err.close()
        raise HarnessError(f"{module} did not start; see {out / log_name}")
    return proc, int(line.split()[1]), err


def start_standin(out: Path) -> tuple[subprocess.Popen, int, object]:
    return start_port_printer(out, "bench.standin", "standin.log")


def standin_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=5) as answer:
        return json.loads(answer.read())


def service_argv() -> list[str]:
    script = Path(sys.executable).parent / "kameleoon-destination"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "service.cli"]


def start_service(out: Path, standin_url: str, log_name: str, extra_env: dict | None = None) -> tuple[subprocess.Popen, int, object]:
    port = free_port()
    env = {**os.environ, "KAMELEOON_BASE_URL": standin_url, "KAMELEOON_LOG_LEVEL": "warning", "KAMELEOON_LOG_FORMAT": "json",
           **(extra_env or {})}
    err = open(out / log_name, "wb")
    proc = subprocess.Popen([*service_argv(), "serve", "--listen", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"the service exited with code {proc.returncode}; see {out / log_name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port, err
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise HarnessError(f"the service did not listen on port {port} within 30 s; see {out / log_name}")


def start_segment(out: Path) -> tuple[LineWorker | None, dict]:
    node = shutil.which(os.environ.get("BENCH_NODE", "node"))
    if node is None:
        return None, {"available": False, "reason": f"{os.environ.get('BENCH_NODE', 'node')} not found (Node.js is needed)"}
    if not (ROOT / "tools" / "oracle" / "node_modules").is_dir():
        return None, {"available": False, "reason": "tools/oracle/node_modules is missing (run tools/oracle/install.sh)"}
    worker = LineWorker("segment runtime", [node, str(BENCH / "segment_driver.js")], out / "segment.log")
    try:
        hello = worker.read_line(60)
    except HarnessError as exc:
        worker.close()
        return None, {"available": False, "reason": str(exc)}
    if not hello.get("ready"):
        worker.close()
        return None, {"available": False, "reason": hello.get("reason", "not ready")}
    return worker, {"available": True, "versions": hello.get("versions"), "node": hello.get("node")}


# -- phases ----------------------------------------------------------------------------


def throughput_cmd(p: Profile, mode: str, concurrency: int, tag: str, pids: dict, **extra) -> dict:
    return {"op": "throughput", "mode": mode, "concurrency": concurrency, "warmup_s": p.warmup_s, "duration_s": p.duration_s,
            "max_events": p.max_events, "batch_size": p.batch_size, "tag": tag, "pids": pids, **extra}


def attempt(label: str, fn):
    """Run one measurement; a failure becomes {"available": False, "reason": ...} instead of ending the run."""
    try:
        return fn()
    except HarnessError as exc:
        log(f"{label}: {exc}")
        return {"available": False, "reason": str(exc)}


def run(p: Profile, out: Path, skip_segment: bool, modes: tuple[str, ...]) -> dict:
    started = time.monotonic()
    events = ev.make_events(p.pool, seed=p.extra.get("seed", 20240601))
    events_file = out / "events.json"
    events_file.write_text(json.dumps(events))
    capacity = {"start": cpu_capacity(p.capacity_probe_s)}
    report: dict = {
        "meta": {
            "profile": p.name,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
            "git": git_state(),
            "service_env": {k: os.environ[k] for k in SHOWN_ENV if os.environ.get(k)},
            "settings": asdict(p),
            "events": {"pool": len(events), "mix": dict(ev.MIX), "mean_json_bytes": round(sum(len(ev.dumps(e)) for e in events) / len(events))},
        },
        "throughput": {"service": {}, "segment": {}, "raw_http": {}},
        "latency": {},
        "memory": {},
        "checks": {},
    }
    children: list = []
    try:
        standin, standin_port, standin_log = start_standin(out)
        children.append(lambda: (stop(standin), standin_log.close()))
        standin_url = f"http://127.0.0.1:{standin_port}/segmentio"
        service, service_port, service_log = start_service(out, standin_url, "service.log")
        children.append(lambda: (stop(service, grace=15), service_log.close()))
        log(f"stand-in on :{standin_port} (pid {standin.pid}), service on :{service_port} (pid {service.pid})")
        loadgen = LineWorker("load generator", [sys.executable, "-m", "bench.loadgen"], out / "loadgen.log")
        children.append(loadgen.close)
        loadgen.ask({"op": "load", "events_file": str(events_file)}, 120)
        segment, seg_info = (None, {"available": False, "reason": "--no-segment"}) if skip_segment else start_segment(out)
        if segment is not None:
            children.append(segment.close)
            segment.ask({"op": "load", "events_file": str(events_file), "standin_url": standin_url, "settings": ev.SETTINGS}, 60)
        report["meta"]["segment"] = seg_info
        target = f"127.0.0.1:{service_port}"
        base = {"target": target, "standin_url": standin_url, "channels": int(os.environ.get("BENCH_CHANNELS", "1"))}
        pids = {"service": service.pid, "standin": standin.pid}
        cap = p.call_cap_s

        # Which modes does the service answer?
        available = {}
        for mode in modes:
            probe = loadgen.ask({"op": "probe", "mode": mode, "batch_size": p.batch_size, **base}, 30)
            available[mode] = probe
            if not probe["available"]:
                report["throughput"]["service"][mode] = probe
                log(f"mode {mode}: unavailable ({probe['reason']})")
        live = [m for m in modes if available[m]["available"]]
        if not live:
            raise HarnessError("the service answers none of the benchmark modes; see bench/out/service.log")

        # Warm every process once, then measure.
        loadgen.ask(throughput_cmd(p, live[0], 8, "warm", {}, warmup_s=p.warm_s, duration_s=0.0, **base), cap)
        if segment is not None:
            attempt("segment warm-up", lambda: segment.ask(throughput_cmd(p, "segment", 8, "warm", {}, warmup_s=p.warm_s, duration_s=0.0), cap))

        def measured(worker: LineWorker, command: dict, timeout: float = cap) -> dict:
            before = standin_stats(standin_port)["posts"]
            result = worker.ask(command, timeout)
            if result.get("available", True):
                result["standin_posts"] = standin_stats(standin_port)["posts"] - before
            return result

        # Throughput: every configuration once per round; rounds alternate the order so that
        # drift on a shared machine hits every configuration alike; the best round is kept.
        configs = [("service", mode, c) for mode in live for c in p.concurrencies]
        if segment is not None:
            configs += [("segment", None, c) for c in p.concurrencies]
        else:
            report["throughput"]["segment"] = seg_info
        configs += [("raw_http", None, c) for c in p.raw_concurrencies]
        if p.grpc_floor:
            floor, floor_port, floor_log = start_port_printer(out, "bench.grpc_floor", "grpc-floor.log")
            children.append(lambda: (stop(floor), floor_log.close()))
            report["throughput"]["grpc_floor"] = {}
            configs += [("grpc_floor", None, c) for c in p.concurrencies]
        rounds: dict = {}
        for r in range(p.rounds):
            for kind, mode, c in configs if r % 2 == 0 else reversed(configs):
                label = f"{mode or kind} c={c}" + (f" (round {r + 1}/{p.rounds})" if p.rounds > 1 else "")
                log(f"throughput {label}")
                if kind == "service":
                    command = throughput_cmd(p, mode, c, f"{mode}{c}r{r}", pids, **base)
                    worker = loadgen
                elif kind == "segment":
                    command = throughput_cmd(p, "segment", c, f"seg{c}r{r}", {"standin": standin.pid})
                    worker = segment
                elif kind == "grpc_floor":
                    command = throughput_cmd(p, "send", c, f"floor{c}r{r}", {"grpc_floor": floor.pid},
                                             target=f"127.0.0.1:{floor_port}", standin_url=standin_url)
                    rounds.setdefault((kind, mode, c), []).append(attempt(label, lambda: loadgen.ask(command, cap)))
                    continue
                else:
                    command = throughput_cmd(p, "direct", c, f"raw{c}r{r}", {"standin": standin.pid}, **base)
                    worker = loadgen
                rounds.setdefault((kind, mode, c), []).append(attempt(label, lambda: measured(worker, command)))
        for (kind, mode, c), results in rounds.items():
            measured_ok = [x for x in results if x.get("available", True) and x.get("events_per_s") is not None]
            best = dict(max(measured_ok, key=lambda x: x["events_per_s"])) if measured_ok else results[0]
            best["rounds_events_per_s"] = [x.get("events_per_s") for x in results]
            table = report["throughput"]["service"].setdefault(mode, {}) if kind == "service" else report["throughput"][kind]
            table[str(c)] = best

        # Latency, one call at a time.
        lat = {"count": p.latency_count, "warmup": p.latency_warmup, "time_cap_s": cap / 2}
        for mode in ("typed", "send", "direct"):
            if mode != "direct" and mode not in live:
                report["latency"][mode] = available.get(mode, {"available": False, "reason": "not run"})
                continue
            log(f"latency {mode}")
            report["latency"][mode] = attempt(f"latency {mode}", lambda: loadgen.ask({"op": "latency", "mode": mode, "tag": f"lat-{mode}", **lat, **base}, cap))
        if p.grpc_floor:
            log("latency gRPC floor")
            report["latency"]["grpc_floor"] = attempt("latency floor", lambda: loadgen.ask(
                {"op": "latency", "mode": "send", "tag": "lat-floor", **lat, "target": f"127.0.0.1:{floor_port}", "standin_url": standin_url}, cap))
        if segment is not None:
            log("latency segment")
            report["latency"]["segment"] = attempt("latency segment", lambda: segment.ask({"op": "latency", "tag": "lat-seg", **lat}, cap))
        else:
            report["latency"]["segment"] = seg_info

        report["memory"]["service_after_all_phases_kb"] = tree_memory_kb(service.pid)

        # Memory: a fresh service process, so its peak RSS covers exactly start-up plus these events.
        # Run twice: as configured (what a deployment gets), then with the idempotency window off,
        # which tells growth of the remembered-messageId store (bounded by design) from a leak.
        mem_mode = next((m for m in p.memory_modes if m in live), live[0])
        marks = list(range(p.memory_mark, p.memory_events + 1, p.memory_mark))
        variants = [("run", {}, "as configured")]
        if p.memory_no_idempotency:
            variants.append(("run_no_idempotency", {"KAMELEOON_IDEMPOTENCY_WINDOW_S": "0"}, "idempotency window off"))
        for key, env, what in variants:
            # The leak check runs half as many events (marks twice as dense): enough to see a slope, and
            # it keeps the full run within its five minutes.
            count = p.memory_events if key == "run" else max(2, p.memory_events // 2)
            marks = list(range(max(1, count // 5), count + 1, max(1, count // 5))) if key != "run" else marks
            log(f"memory ({what}): {count} events through {mem_mode} on a fresh service")
            fresh, fresh_port, fresh_log = start_service(out, standin_url, f"service-memory-{key}.log", env)
            children.append(lambda fresh=fresh, fresh_log=fresh_log: (stop(fresh, grace=15), fresh_log.close()))
            at_start = tree_memory_kb(fresh.pid)
            mem = attempt("memory", lambda: measured(loadgen, timeout=p.memory_cap_s + 60, command={
                **throughput_cmd(p, mem_mode, p.memory_concurrency, f"mem-{key}", {"service": fresh.pid, "standin": standin.pid},
                                 target=f"127.0.0.1:{fresh_port}", standin_url=standin_url),
                "warmup_s": 0.0, "duration_s": p.memory_cap_s, "max_events": count, "rss_pid": fresh.pid, "rss_marks": marks}))
            mem.update(mode=mem_mode, variant=what, environment=env, at_start_kb=at_start, end_kb=tree_memory_kb(fresh.pid))
            report["memory"][key] = mem
            stop(fresh, grace=15)
        report["checks"]["standin_total"] = standin_stats(standin_port)
    except HarnessError as exc:
        report["fatal"] = str(exc)
        log(f"fatal: {exc}")
    finally:
        for close in reversed(children):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 -- cleanup goes on
                log(f"cleanup: {exc}")
    capacity["end"] = cpu_capacity(p.capacity_probe_s)
    report["meta"]["host"]["capacity_cores"] = capacity
    report["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    rep.summarise(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Side-by-side benchmark: the service vs Segment's runtime vs raw HTTP.")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds with small counts")
    parser.add_argument("--out", default=str(BENCH / "out"), help="output directory (default bench/out)")
    parser.add_argument("--no-segment", action="store_true", help="skip Segment's runtime even when Node is available")
    parser.add_argument("--modes", default=",".join(SERVICE_MODES), help=f"service modes to run (default {','.join(SERVICE_MODES)})")
    parser.add_argument("--concurrency", help="comma-separated concurrencies (default: 1,8,32,128; quick: 1,8)")
    parser.add_argument("--duration", type=float, help="measured seconds per throughput run")
    parser.add_argument("--rounds", type=int, help="measurements per throughput configuration, best kept (default 2; quick: 1)")
    parser.add_argument("--memory-events", type=int, help="events in the memory phase (default 100000)")
    parser.add_argument("--memory-mode", choices=SERVICE_MODES,
                        help="service mode of the memory phase (default: the first available of batch, stream, send, typed)")
    parser.add_argument("--grpc-floor", action="store_true",
                        help="also measure a bare grpc.aio server (empty handlers) with unary Send: what gRPC alone allows")
    parser.add_argument("--workers", type=int, help="KAMELEOON_WORKERS for the service (default: the service's own default)")
    parser.add_argument("--channels", type=int, help="gRPC connections the load generator spreads calls over (default 1; "
                        "use several with --workers, which share connections, not calls)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)

    p = QUICK if args.quick else FULL
    if args.concurrency:
        p.concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.duration:
        p.duration_s = args.duration
    if args.rounds:
        p.rounds = max(1, args.rounds)
    if args.memory_events:
        p.memory_events = args.memory_events
        p.memory_mark = max(1, args.memory_events // 5)
    if args.memory_mode:
        p.memory_modes = (args.memory_mode,)
    p.extra["seed"] = args.seed
    p.grpc_floor = args.grpc_floor
    if args.workers:
        os.environ["KAMELEOON_WORKERS"] = str(args.workers)
    if args.channels:
        os.environ["BENCH_CHANNELS"] = str(args.channels)
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = set(modes) - set(SERVICE_MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run(p, out, args.no_segment, modes)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    text = rep.markdown(report)
    (out / "report.md").write_text(text)
    print(text)
    plot = rep.plot(report, out / "throughput.png")
    if plot:
        print(f"plot: {plot}")
    print(f"report: {out / 'report.json'}")
    return 1 if "fatal" in report else 0
