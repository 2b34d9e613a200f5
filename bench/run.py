"""The orchestrator behind ``python -m bench``: starts the stand-in, the
service (and, with ``--baseline DIR``, the service of another checkout beside
it), the floors, the load generator and Segment's runtime, runs every phase,
writes bench/out/report.json and prints the markdown summary.

Processes (all on 127.0.0.1):

    loadgen (python -m bench.loadgen) --gRPC--> service (kameleoon-destination serve) --HTTP--\
    loadgen --gRPC--> baseline service (another checkout's venv, --baseline) ---------HTTP----->\
    loadgen --gRPC--> gRPC floor (bench/grpc_floor.py, empty handlers)                          stand-in
    loadgen ------------------------------- HTTP floor (aiohttp POSTs of the same bodies) -----> /
    segment_driver.js (Segment's runtime, Node) ----------------------------------------------/

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
from datetime import UTC, datetime
from pathlib import Path

from bench import events as ev
from bench import report as rep
from bench.common import cpu_capacity, tree_memory_kb

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVICE_MODES = ("typed", "send", "batch", "stream")
# Service settings worth recording when set in the environment (never credentials).
SHOWN_ENV = (
    "KAMELEOON_WORKERS",
    "KAMELEOON_POOL_SIZE",
    "KAMELEOON_CONCURRENCY",
    "KAMELEOON_MAX_CONCURRENCY",
    "KAMELEOON_RATE_LIMIT",
    "KAMELEOON_MAX_IN_FLIGHT",
    "KAMELEOON_IDEMPOTENCY_WINDOW_S",
    "KAMELEOON_IDEMPOTENCY_MAX_ENTRIES",
    "KAMELEOON_MAX_ATTEMPTS",
    "KAMELEOON_TIMEOUT_S",
)


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
    grpc_floor: bool = True  # also drive a bare grpc.aio server (bench/grpc_floor.py) with unary Send
    warning_line: bool = True  # the service again with KAMELEOON_LOG_LEVEL=warning, every mode
    slow_delay_ms: float = 100.0  # the slow stand-in's answer delay (0: no slow phase)
    slow_pools: tuple[int, ...] = (
        100,
        250,
    )  # a fixed KAMELEOON_CONCURRENCY of each slow run (100: the fixed pool of old; --throughput measures the adaptive default)
    slow_concurrency: int = 8  # SendBatch calls in flight against the slow stand-in
    slow_duration_s: float = 3.0
    call_cap_s: float = 120.0  # the longest any other command may take
    capacity_probe_s: float = 1.0  # CPU-burner probe of the cores the machine really gives, at start and end
    extra: dict = field(default_factory=dict)


FULL = Profile(
    "full",
    pool=2000,
    concurrencies=[1, 8, 32, 128],
    raw_concurrencies=[8, 32, 128],
    warmup_s=0.6,
    duration_s=1.6,
    rounds=3,
    max_events=200_000,
    batch_size=100,
    latency_count=2000,
    latency_warmup=200,
    memory_events=100_000,
    memory_mark=20_000,
    memory_concurrency=32,
    warm_s=1.5,
)
QUICK = Profile(
    "quick",
    pool=200,
    concurrencies=[1, 8],
    raw_concurrencies=[8],
    warmup_s=0.2,
    duration_s=0.5,
    max_events=20_000,
    batch_size=20,
    latency_count=100,
    latency_warmup=20,
    memory_events=2000,
    memory_mark=400,
    memory_concurrency=8,
    warm_s=0.3,
    memory_cap_s=30.0,
    call_cap_s=30.0,
    capacity_probe_s=0.3,
    warning_line=False,
    slow_pools=(100,),
    slow_duration_s=1.0,
)


@dataclass
class Variant:
    """One service process measured: this checkout or another one (--baseline), at one log level."""

    key: str  # its table in report["throughput"]: service, service_warning, baseline
    title: str
    checkout: Path
    log_level: str
    pid: int = 0
    port: int = 0


# The HTTP floor and Segment's runtime post to their own paths of the stand-in, so that the header
# lines each client puts on the wire can be told apart (report: checks.standin_heads).
FLOOR_PATH_SUFFIX = "-floor"
SEGMENT_PATH_SUFFIX = "-segment"


class HarnessError(RuntimeError):
    pass


def git_state(root: Path = ROOT) -> dict:
    """The commit measured, and whether service/ differs from it (others may be editing)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
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


def start_port_printer(out: Path, module: str, log_name: str, args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int, object]:
    """Start ``python -m <module> [args]``, which prints ``PORT <n>`` once listening."""
    err = open(out / log_name, "wb")
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        stop(proc)
        err.close()
        raise HarnessError(f"{module} did not start; see {out / log_name}")
    return proc, int(line.split()[1]), err


def start_standin(out: Path, delay_ms: float = 0.0, log_name: str = "standin.log") -> tuple[subprocess.Popen, int, object]:
    return start_port_printer(out, "bench.standin", log_name, ("--delay-ms", str(delay_ms)) if delay_ms else ())


def standin_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=5) as answer:
        return json.loads(answer.read())


def service_argv(checkout: Path = ROOT) -> list[str]:
    """``kameleoon-destination`` of ``checkout``'s own venv (``make install`` there), else this interpreter's."""
    for script in (checkout / ".venv" / "bin" / "kameleoon-destination", Path(sys.executable).parent / "kameleoon-destination"):
        if script.exists() and (checkout == ROOT or script.is_relative_to(checkout)):
            return [str(script)]
    if checkout != ROOT:
        raise HarnessError(f"{checkout} has no .venv/bin/kameleoon-destination: run `make install` there")
    return [sys.executable, "-m", "service.cli"]


def start_service(
    out: Path, standin_url: str, log_name: str, extra_env: dict | None = None, checkout: Path = ROOT, log_level: str = "info"
) -> tuple[subprocess.Popen, int, object]:
    """The service at its defaults but the stand-in's URL and ``log_level`` (info is its default); its log
    lines (JSON, one per RPC at info) go to ``out/log_name``."""
    port = free_port()
    env = {**os.environ, "KAMELEOON_BASE_URL": standin_url, "KAMELEOON_LOG_LEVEL": log_level, **(extra_env or {})}
    env.pop("VIRTUAL_ENV", None)
    err = open(out / log_name, "wb")
    proc = subprocess.Popen(
        [*service_argv(checkout), "serve", "--listen", f"127.0.0.1:{port}"], cwd=checkout, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
    )
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


def scrape_metrics(port: int) -> dict[str, float]:
    """Prometheus text from a service's /metrics as {"name{labels}": value} (samples only)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                samples[name] = float(value)
            except ValueError:
                pass
    return samples


# -- phases ----------------------------------------------------------------------------


def throughput_cmd(p: Profile, mode: str, concurrency: int, tag: str, pids: dict, **extra) -> dict:
    return {
        "op": "throughput",
        "mode": mode,
        "concurrency": concurrency,
        "warmup_s": p.warmup_s,
        "duration_s": p.duration_s,
        "max_events": p.max_events,
        "batch_size": p.batch_size,
        "tag": tag,
        "pids": pids,
        **extra,
    }


def attempt(label: str, fn):
    """Run one measurement; a failure becomes {"available": False, "reason": ...} instead of ending the run."""
    try:
        return fn()
    except HarnessError as exc:
        log(f"{label}: {exc}")
        return {"available": False, "reason": str(exc)}


def slow_phase(p: Profile, out: Path, loadgen: LineWorker, events_file: Path, children: list) -> dict:
    """Kameleoon 100 ms away: with a fixed KAMELEOON_CONCURRENCY, throughput follows it / latency, and events wait for a
    pooled connection (kameleoon_pool_wait_seconds, read from the service's /metrics)."""
    slow, slow_port, slow_log = start_standin(out, p.slow_delay_ms, "standin-slow.log")
    children.append(lambda: (stop(slow), slow_log.close()))
    url = f"http://127.0.0.1:{slow_port}/segmentio"
    in_flight = p.slow_concurrency * min(p.batch_size, 32)  # KAMELEOON_BATCH_CONCURRENCY's default
    result: dict = {"delay_ms": p.slow_delay_ms, "mode": "batch", "concurrency": p.slow_concurrency, "events_in_flight": in_flight, "runs": {}}
    for pool in p.slow_pools:
        metrics_port = free_port()
        env = {"KAMELEOON_CONCURRENCY": str(pool), "KAMELEOON_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
        log(f"slow stand-in ({p.slow_delay_ms:g} ms): pool of {pool}")
        svc, port, svc_log = start_service(out, url, f"service-slow-pool{pool}.log", env)
        children.append(lambda svc=svc, svc_log=svc_log: (stop(svc, grace=15), svc_log.close()))
        run = attempt(
            "slow",
            lambda: loadgen.ask(
                {
                    **throughput_cmd(
                        p, "batch", p.slow_concurrency, f"slow{pool}", {"service": svc.pid}, target=f"127.0.0.1:{port}", standin_url=url
                    ),
                    "warmup_s": max(p.warmup_s, 0.5),
                    "duration_s": p.slow_duration_s,
                },
                p.call_cap_s,
            ),
        )
        try:
            samples = scrape_metrics(metrics_port)
        except OSError as exc:
            samples = {}
            run["metrics_error"] = str(exc)
        stop(svc, grace=15)
        count = samples.get("kameleoon_pool_wait_seconds_count")
        total = samples.get("kameleoon_pool_wait_seconds_sum")
        waited = {k: v for k, v in samples.items() if k.startswith("kameleoon_pool_wait_seconds_bucket")}
        run.update(
            pool_size=pool,
            expected_events_per_s=round(min(pool, in_flight) / (p.slow_delay_ms / 1000), 1),
            pool_wait={"count": count, "mean_ms": round(total / count * 1000, 2) if count else None, "buckets": waited}
            if count is not None
            else {"available": False, "reason": "no kameleoon_pool_wait_seconds in /metrics"},
        )
        result["runs"][str(pool)] = run
    stop(slow)
    return result


def run(p: Profile, out: Path, skip_segment: bool, modes: tuple[str, ...], baseline: Path | None = None) -> dict:
    started = time.monotonic()
    events = ev.make_events(p.pool, seed=p.extra.get("seed", 20240601))
    events_file = out / "events.json"
    events_file.write_text(json.dumps(events))
    capacity = {"start": cpu_capacity(p.capacity_probe_s)}
    variants = [Variant("service", "service (this checkout, logs at info: its defaults)", ROOT, "info")]
    if baseline is not None:
        variants.append(Variant("baseline", f"baseline ({baseline.name}, logs at info)", baseline, "info"))
    if p.warning_line:
        variants.append(Variant("service_warning", "service, logs at warning", ROOT, "warning"))
    report: dict = {
        "meta": {
            "profile": p.name,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
            "git": git_state(),
            "service_env": {k: os.environ[k] for k in SHOWN_ENV if os.environ.get(k)},
            "settings": asdict(p),
            "events": {"pool": len(events), "mix": dict(ev.MIX), "mean_json_bytes": round(sum(len(ev.dumps(e)) for e in events) / len(events))},
            "variants": {
                v.key: {"title": v.title, "checkout": str(v.checkout), "log_level": v.log_level, "git": git_state(v.checkout)} for v in variants
            },
        },
        "throughput": {"service": {}, "segment": {}, "raw_http": {}, **{v.key: {} for v in variants}},
        "latency": {},
        "memory": {},
        "checks": {},
    }
    children: list = []
    try:
        standin, standin_port, standin_log = start_standin(out)
        children.append(lambda: (stop(standin), standin_log.close()))
        standin_url = f"http://127.0.0.1:{standin_port}/segmentio"
        for v in variants:
            proc, v.port, v_log = start_service(out, standin_url, f"{v.key}.log", checkout=v.checkout, log_level=v.log_level)
            v.pid = proc.pid
            children.append(lambda proc=proc, v_log=v_log: (stop(proc, grace=15), v_log.close()))
            log(f"{v.title} on :{v.port} (pid {v.pid})")
        log(f"stand-in on :{standin_port} (pid {standin.pid})")
        loadgen = LineWorker("load generator", [sys.executable, "-m", "bench.loadgen"], out / "loadgen.log")
        children.append(loadgen.close)
        loadgen.ask({"op": "load", "events_file": str(events_file)}, 120)
        segment, seg_info = (None, {"available": False, "reason": "--no-segment"}) if skip_segment else start_segment(out)
        if segment is not None:
            children.append(segment.close)
            segment.ask(
                {"op": "load", "events_file": str(events_file), "standin_url": standin_url + SEGMENT_PATH_SUFFIX, "settings": ev.SETTINGS}, 60
            )
        report["meta"]["segment"] = seg_info
        channels = int(os.environ.get("BENCH_CHANNELS", "1"))

        def base(v: Variant) -> dict:
            return {"target": f"127.0.0.1:{v.port}", "standin_url": standin_url, "channels": channels}

        cap = p.call_cap_s

        # Which modes does each service answer?
        live: dict[str, list[str]] = {}
        for v in variants:
            live[v.key] = []
            for mode in modes:
                probe = loadgen.ask({"op": "probe", "mode": mode, "batch_size": p.batch_size, **base(v)}, 30)
                if probe["available"]:
                    live[v.key].append(mode)
                else:
                    report["throughput"][v.key][mode] = probe
                    log(f"{v.key} mode {mode}: unavailable ({probe['reason']})")
        if not live["service"]:
            raise HarnessError("the service answers none of the benchmark modes; see bench/out/service.log")

        # Warm every process once, then measure.
        for v in variants:
            for mode in live[v.key]:
                loadgen.ask(throughput_cmd(p, mode, 8, "warm", {}, warmup_s=p.warm_s / 2, duration_s=0.0, **base(v)), cap)
        if segment is not None:
            attempt("segment warm-up", lambda: segment.ask(throughput_cmd(p, "segment", 8, "warm", {}, warmup_s=p.warm_s, duration_s=0.0), cap))

        def measured(worker: LineWorker, command: dict, timeout: float = cap) -> dict:
            before = standin_stats(standin_port)["posts"]
            result = worker.ask(command, timeout)
            if result.get("available", True):
                result["standin_posts"] = standin_stats(standin_port)["posts"] - before
            return result

        # Throughput: every configuration once per round; the variants of one (mode, concurrency) run
        # back to back, and rounds alternate the order, so that drift on a shared machine hits every
        # configuration alike; the best round is kept.
        configs = [("variant", v, mode, c) for mode in modes for c in p.concurrencies for v in variants if mode in live[v.key]]
        if segment is not None:
            configs += [("segment", None, None, c) for c in p.concurrencies]
        else:
            report["throughput"]["segment"] = seg_info
        configs += [("raw_http", None, None, c) for c in p.raw_concurrencies]
        if p.grpc_floor:
            floor, floor_port, floor_log = start_port_printer(out, "bench.grpc_floor", "grpc-floor.log")
            children.append(lambda: (stop(floor), floor_log.close()))
            report["throughput"]["grpc_floor"] = {}
            configs += [("grpc_floor", None, None, c) for c in p.concurrencies]
            # The one-process floor: grpc.aio answering after an aiohttp POST, nothing else (loaded concurrencies only).
            both, both_port, both_log = start_port_printer(
                out, "bench.grpc_floor", "one-process-floor.log", ("--post", standin_url + FLOOR_PATH_SUFFIX, "--events", str(events_file))
            )
            children.append(lambda: (stop(both), both_log.close()))
            report["throughput"]["one_process_floor"] = {}
            configs += [("one_process_floor", None, mode, c) for mode in ("send", "stream") for c in p.concurrencies if c >= 8]
        rounds: dict = {}
        for r in range(p.rounds):
            for kind, v, mode, c in configs if r % 2 == 0 else reversed(configs):
                label = f"{v.key + ' ' + mode if v else kind} c={c}" + (f" (round {r + 1}/{p.rounds})" if p.rounds > 1 else "")
                log(f"throughput {label}")
                if kind == "variant":
                    command = throughput_cmd(p, mode, c, f"{v.key[:4]}{mode}{c}r{r}", {"service": v.pid, "standin": standin.pid}, **base(v))
                    worker = loadgen
                elif kind == "segment":
                    command = throughput_cmd(p, "segment", c, f"seg{c}r{r}", {"standin": standin.pid})
                    worker = segment
                elif kind == "grpc_floor":
                    command = throughput_cmd(
                        p, "send", c, f"floor{c}r{r}", {"grpc_floor": floor.pid}, target=f"127.0.0.1:{floor_port}", standin_url=standin_url
                    )
                    rounds.setdefault((kind, None, c), []).append(attempt(label, lambda: loadgen.ask(command, cap)))
                    continue
                elif kind == "one_process_floor":
                    label = f"one-process floor {mode} c={c}" + (f" (round {r + 1}/{p.rounds})" if p.rounds > 1 else "")
                    command = throughput_cmd(
                        p, mode, c, f"both{mode}{c}r{r}", {"one_process_floor": both.pid}, target=f"127.0.0.1:{both_port}", standin_url=standin_url
                    )
                    rounds.setdefault((kind, mode, c), []).append(attempt(label, lambda: loadgen.ask(command, cap)))
                    continue
                else:
                    command = throughput_cmd(
                        p, "direct", c, f"raw{c}r{r}", {"standin": standin.pid}, **base(variants[0]), direct_url=standin_url + FLOOR_PATH_SUFFIX
                    )
                    worker = loadgen
                key = (v.key if v else kind, mode, c)
                rounds.setdefault(key, []).append(attempt(label, lambda: measured(worker, command)))
        for (kind, mode, c), results in rounds.items():
            measured_ok = [x for x in results if x.get("available", True) and x.get("events_per_s") is not None]
            best = dict(max(measured_ok, key=lambda x: x["events_per_s"])) if measured_ok else results[0]
            best["rounds_events_per_s"] = [x.get("events_per_s") for x in results]
            best["rounds_cpu_us_per_event"] = [x.get("cpu_us_per_event") for x in results]
            table = report["throughput"][kind].setdefault(mode, {}) if mode else report["throughput"][kind]
            table[str(c)] = best
        report["checks"]["standin_heads"] = standin_stats(standin_port).get("heads", {})

        # Latency, one call at a time.
        lat = {"count": p.latency_count, "warmup": p.latency_warmup, "time_cap_s": cap / 2}
        for v in variants:
            if v.key == "service_warning" or p.latency_count <= 0:
                continue
            prefix = "" if v.key == "service" else f"{v.key}_"
            for mode in ("typed", "send"):
                if mode not in live[v.key]:
                    report["latency"][prefix + mode] = {"available": False, "reason": f"{mode} not run"}
                    continue
                log(f"latency {prefix}{mode}")
                report["latency"][prefix + mode] = attempt(
                    f"latency {prefix}{mode}",
                    lambda: loadgen.ask({"op": "latency", "mode": mode, "tag": f"lat-{prefix}{mode}", **lat, **base(v)}, cap),
                )
        log("latency direct")
        report["latency"]["direct"] = (
            {"available": False, "reason": "--latency-count 0"}
            if p.latency_count <= 0
            else attempt(
                "latency direct",
                lambda: loadgen.ask(
                    {
                        "op": "latency",
                        "mode": "direct",
                        "tag": "lat-direct",
                        **lat,
                        **base(variants[0]),
                        "direct_url": standin_url + FLOOR_PATH_SUFFIX,
                    },
                    cap,
                ),
            )
        )
        if p.grpc_floor and p.latency_count > 0:
            log("latency gRPC floor")
            report["latency"]["grpc_floor"] = attempt(
                "latency floor",
                lambda: loadgen.ask(
                    {"op": "latency", "mode": "send", "tag": "lat-floor", **lat, "target": f"127.0.0.1:{floor_port}", "standin_url": standin_url}, cap
                ),
            )
        if segment is not None and p.latency_count > 0:
            log("latency segment")
            report["latency"]["segment"] = attempt("latency segment", lambda: segment.ask({"op": "latency", "tag": "lat-seg", **lat}, cap))
        else:
            report["latency"]["segment"] = seg_info

        report["memory"]["service_after_all_phases_kb"] = tree_memory_kb(variants[0].pid)

        # Memory: a fresh service process, so its peak RSS covers exactly start-up plus these events.
        # Run as configured (what a deployment gets), then with the idempotency window off, which tells
        # growth of the remembered-messageId store (bounded by design) from a leak; the baseline as configured.
        mem_mode = next((m for m in p.memory_modes if m in live["service"]), live["service"][0])
        runs = [("run", variants[0], {}, "as configured")] if p.memory_events > 0 else []
        if p.memory_no_idempotency and runs:
            runs.append(("run_no_idempotency", variants[0], {"KAMELEOON_IDEMPOTENCY_WINDOW_S": "0"}, "idempotency window off"))
        runs += [(f"{v.key}_run", v, {}, "as configured") for v in variants if runs and v.key == "baseline" and mem_mode in live[v.key]]
        for key, v, env, what in runs:
            # The leak check runs half as many events (marks twice as dense): enough to see a slope, and
            # it keeps the full run shorter.
            count = p.memory_events if key != "run_no_idempotency" else max(2, p.memory_events // 2)
            step = p.memory_mark if key != "run_no_idempotency" else max(1, count // 5)
            marks = list(range(step, count + 1, step))
            log(f"memory ({v.key}, {what}): {count} events through {mem_mode} on a fresh service")
            fresh, fresh_port, fresh_log = start_service(out, standin_url, f"{v.key}-memory-{key}.log", env, checkout=v.checkout)
            children.append(lambda fresh=fresh, fresh_log=fresh_log: (stop(fresh, grace=15), fresh_log.close()))
            at_start = tree_memory_kb(fresh.pid)
            mem = attempt(
                "memory",
                lambda: measured(
                    loadgen,
                    timeout=p.memory_cap_s + 60,
                    command={
                        **throughput_cmd(
                            p,
                            mem_mode,
                            p.memory_concurrency,
                            f"mem-{key}",
                            {"service": fresh.pid, "standin": standin.pid},
                            target=f"127.0.0.1:{fresh_port}",
                            standin_url=standin_url,
                        ),
                        "warmup_s": 0.0,
                        "duration_s": p.memory_cap_s,
                        "max_events": count,
                        "rss_pid": fresh.pid,
                        "rss_marks": marks,
                    },
                ),
            )
            mem.update(mode=mem_mode, variant=what, service=v.key, environment=env, at_start_kb=at_start, end_kb=tree_memory_kb(fresh.pid))
            report["memory"][key] = mem
            stop(fresh, grace=15)
        report["checks"]["standin_total"] = {k: v for k, v in standin_stats(standin_port).items() if k != "heads"}

        if p.slow_delay_ms and "batch" in live["service"]:
            report["slow"] = slow_phase(p, out, loadgen, events_file, children)
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
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Side-by-side benchmark: the service vs its floors, Segment's runtime and (--baseline) another checkout of itself.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds with small counts")
    parser.add_argument("--out", default=str(BENCH / "out"), help="output directory (default bench/out)")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout (with its own `make install`): its service is measured beside this one, every configuration back to back",
    )
    parser.add_argument("--no-segment", action="store_true", help="skip Segment's runtime even when Node is available")
    parser.add_argument("--no-grpc-floor", action="store_true", help="skip the gRPC floor (a bare grpc.aio server)")
    parser.add_argument("--no-warning-line", action="store_true", help="skip the service with logs at warning")
    parser.add_argument("--no-slow", action="store_true", help="skip the run against a stand-in answering after 100 ms")
    parser.add_argument("--modes", default=",".join(SERVICE_MODES), help=f"service modes to run (default {','.join(SERVICE_MODES)})")
    parser.add_argument("--concurrency", help="comma-separated concurrencies (default: 1,8,32,128; quick: 1,8)")
    parser.add_argument("--duration", type=float, help="measured seconds per throughput run")
    parser.add_argument("--rounds", type=int, help="measurements per throughput configuration, best kept (default 2; quick: 1)")
    parser.add_argument("--memory-events", type=int, help="events in the memory phase (default 100000; 0: no memory phase)")
    parser.add_argument(
        "--memory-mode", choices=SERVICE_MODES, help="service mode of the memory phase (default: the first available of batch, stream, send, typed)"
    )
    parser.add_argument("--latency-count", type=int, help="timed calls per latency path (default 2000)")
    parser.add_argument("--workers", type=int, help="KAMELEOON_WORKERS for the service (default: the service's own default)")
    parser.add_argument(
        "--channels",
        type=int,
        help="gRPC connections the load generator spreads calls over (default 1; use several with --workers, which share connections, not calls)",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)

    p = QUICK if args.quick else FULL
    if args.concurrency:
        p.concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
        p.raw_concurrencies = [c for c in p.concurrencies if c > 1] or p.concurrencies
    if args.duration:
        p.duration_s = args.duration
    if args.rounds:
        p.rounds = max(1, args.rounds)
    if args.memory_events is not None:
        p.memory_events = args.memory_events
        p.memory_mark = max(1, args.memory_events // 5)
    if args.memory_mode:
        p.memory_modes = (args.memory_mode,)
    if args.latency_count is not None:
        p.latency_count = args.latency_count
        p.latency_warmup = min(p.latency_warmup, max(1, args.latency_count // 10))
    p.extra["seed"] = args.seed
    p.grpc_floor = not args.no_grpc_floor
    p.warning_line = p.warning_line and not args.no_warning_line
    if args.no_slow:
        p.slow_delay_ms = 0.0
    if args.workers:
        os.environ["KAMELEOON_WORKERS"] = str(args.workers)
    if args.channels:
        os.environ["BENCH_CHANNELS"] = str(args.channels)
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = set(modes) - set(SERVICE_MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    baseline = Path(args.baseline).resolve() if args.baseline else None
    if baseline is not None and not (baseline / ".venv" / "bin" / "kameleoon-destination").exists():
        parser.error(f"--baseline {baseline}: no .venv/bin/kameleoon-destination there (run `make install` in it)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run(p, out, args.no_segment, modes, baseline)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    text = rep.markdown(report)
    (out / "report.md").write_text(text)
    print(text)
    plot = rep.plot(report, out / "throughput.png")
    if plot:
        print(f"plot: {plot}")
    print(f"report: {out / 'report.json'}")
    return 1 if "fatal" in report else 0
