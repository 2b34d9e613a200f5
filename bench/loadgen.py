"""The load generator: a separate process that drives the service (gRPC) or the
stand-in (raw HTTP) and measures what it sees.

It reads one JSON command per line on stdin and answers one JSON line on
stdout, so the orchestrator (``python -m bench``) starts it once. Commands
(``op``): ``load`` (the event pool), ``probe``, ``throughput`` (optionally
sampling a process's RSS: the memory phase) and ``latency``; see :func:`handle`. Requests are pre-encoded protobuf bytes
(see bench.events), so per call the generator only splices in a fresh
messageId: its own CPU stays small next to the service's.

Every loop is bounded twice: by a count of events and by a wall-clock cap.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections import Counter

import aiohttp
import grpc
import yarl

from bench import events as ev
from bench.common import percentile, run, tree_cpu_seconds, tree_memory_kb

SERVICE = "/kameleoon.destination.v1.KameleoonDestination/"
MODES = ("typed", "send", "batch", "stream", "direct")
CALL_TIMEOUT_S = 30.0


class Unavailable(Exception):
    """The service does not implement a mode (UNIMPLEMENTED)."""


class Pool:
    """The event pool in every pre-encoded form."""

    def __init__(self, events: list[dict]):
        self.events = events
        self.size = len(events)
        self.ids = [e["messageId"] for e in events]
        self.send_parts = [ev.send_request_parts(e) for e in events]
        self.batch_parts = [ev.send_request_parts(e, with_settings=False) for e in events]
        self.typed_parts = [ev.typed_request_parts(e) for e in events]
        self.body_parts = ev.service_body_parts(events)
        self.settings_field = ev.length_delimited(1, ev.settings_bytes())


def floor_session(pool_size: int) -> aiohttp.ClientSession:
    """The HTTP floor's session: what the service's delivery client needs of aiohttp, done the
    cheapest way aiohttp allows, putting the same header lines on the wire (the report compares them)."""
    connector = aiohttp.TCPConnector(limit=pool_size, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("accept-encoding",),
    )


class Target:
    """One mode against one endpoint: ``await unit(n)`` sends events n.. and returns (ok, errors)."""

    def __init__(self, pool: Pool, mode: str, cmd: dict, tag: str):
        self.pool = pool
        self.mode = mode
        self.cmd = cmd
        self.tag = tag
        self.batch_size = int(cmd.get("batch_size", 100)) if mode == "batch" else 1
        self.channel: grpc.aio.Channel | None = None
        self.session: aiohttp.ClientSession | None = None

    def mid(self, n: int) -> str:
        return f"{self.pool.ids[n % self.pool.size]}-{self.tag}-{n}"

    async def __aenter__(self) -> Target:
        if self.mode == "direct":
            self.session = floor_session(int(self.cmd.get("pool_size", 100)))
            self.url = yarl.URL(self.cmd.get("direct_url") or self.cmd["standin_url"])
            self.headers = ev.kameleoon_headers()
            return self
        # Several channels (HTTP/2 connections) when asked: one grpc.aio channel tops out well
        # below what a server may take.
        count = max(1, int(self.cmd.get("channels", 1)))
        self.channels = [grpc.aio.insecure_channel(self.cmd["target"], options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(count)]
        self.channel = self.channels[0]
        raw = dict(request_serializer=None, response_deserializer=None)
        if self.mode == "typed":
            self.typed_rr = [{name: ch.unary_unary(SERVICE + name, **raw) for name in ev.MESSAGE_ID_FIELD} for ch in self.channels]
            self.typed = self.typed_rr[0]
        elif self.mode == "send":
            self.calls = [ch.unary_unary(SERVICE + "Send", **raw) for ch in self.channels]
            self.call = self.calls[0]
        elif self.mode == "batch":
            self.calls = [ch.unary_unary(SERVICE + "SendBatch", **raw) for ch in self.channels]
            self.call = self.calls[0]
        elif self.mode == "stream":
            self.call = self.channel.stream_stream(SERVICE + "SendStream", **raw)
        else:
            raise ValueError(f"unknown mode {self.mode!r}")
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()
        if self.channel is not None:
            for channel in self.channels:
                await channel.close()

    async def unit(self, n: int) -> tuple[int, Counter | None]:
        """Send the events starting at index n; (events ok, Counter of error kinds or None)."""
        pool = self.pool
        i = n % pool.size
        if self.mode == "direct":
            async with self.session.post(self.url, data=ev.service_body(pool.body_parts[i], self.mid(n)), headers=self.headers) as response:
                await response.read()
                if response.status == 200:
                    return 1, None
                return 0, Counter({f"HTTP {response.status}": 1})
        try:
            if self.mode == "typed":
                parts = pool.typed_parts[i]
                typed = self.typed_rr[n % len(self.typed_rr)]
                await typed[parts[0]](ev.typed_request(parts, self.mid(n)), timeout=CALL_TIMEOUT_S)
                return 1, None
            if self.mode == "send":
                await self.calls[n % len(self.calls)](ev.send_request(pool.send_parts[i], self.mid(n)), timeout=CALL_TIMEOUT_S)
                return 1, None
            # batch
            chunks = [pool.settings_field]
            for k in range(n, n + self.batch_size):
                chunks.append(ev.length_delimited(2, ev.send_request(pool.batch_parts[k % pool.size], self.mid(k))))
            answer = await self.calls[(n // self.batch_size) % len(self.calls)](b"".join(chunks), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise Unavailable(exc.details() or "UNIMPLEMENTED") from None
            return 0, Counter({exc.code().name: self.batch_size})
        from kameleoon.destination.v1 import destination_pb2 as pb

        response = pb.SendBatchResponse.FromString(answer)
        bad = Counter(_code_name(r.status.code) for r in response.responses if r.status.code != 0)
        missing = self.batch_size - len(response.responses)
        if missing:
            bad["MISSING_RESPONSE"] += missing
        return self.batch_size - sum(bad.values()), (bad or None)


def _code_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return f"CODE_{code}"


class Meter:
    def __init__(self, pids: dict[str, int]):
        self.ok = 0
        self.failed = 0
        self.errors: Counter = Counter()
        self.latencies: list[float] = []
        self.record_latency = False
        self.pids = pids

    def snapshot(self) -> dict:
        return {
            "t": time.perf_counter(),
            "ok": self.ok,
            "failed": self.failed,
            "own_cpu": time.process_time(),
            "cpu": {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()},
        }


def _window(first: dict, last: dict) -> dict:
    wall = last["t"] - first["t"]
    out = {
        "window_s": round(wall, 3),
        "ok_events": last["ok"] - first["ok"],
        "failed_events": last["failed"] - first["failed"],
        "events_per_s": round((last["ok"] - first["ok"]) / wall, 1) if wall > 0 else None,
        "cpu_cores": {"loadgen": round((last["own_cpu"] - first["own_cpu"]) / wall, 3) if wall > 0 else None},
    }
    ok = last["ok"] - first["ok"]
    out["cpu_us_per_event"] = {"loadgen": round((last["own_cpu"] - first["own_cpu"]) / ok * 1e6, 1) if ok > 0 else None}
    for name, before in first["cpu"].items():
        after = last["cpu"].get(name)
        known = before is not None and after is not None
        out["cpu_cores"][name] = round((after - before) / wall, 3) if wall > 0 and known else None
        out["cpu_us_per_event"][name] = round((after - before) / ok * 1e6, 1) if ok > 0 and known else None
    return out


def _latency_summary(values: list[float]) -> dict:
    values = sorted(values)
    ms = lambda v: None if v is None else round(v * 1000, 4)  # noqa: E731
    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 0.50)),
        "p90_ms": ms(percentile(values, 0.90)),
        "p99_ms": ms(percentile(values, 0.99)),
        "mean_ms": ms(sum(values) / len(values)) if values else None,
    }


async def _drive_units(target: Target, meter: Meter, concurrency: int, max_events: int, stop: asyncio.Event, on_progress=None):
    """``concurrency`` workers, each one call in flight, until stop or max_events issued."""
    issued = 0
    per_call = target.batch_size
    unavailable: list[str] = []

    async def worker() -> None:
        nonlocal issued
        while not stop.is_set() and issued < max_events:
            n = issued
            issued += per_call
            t0 = time.perf_counter()
            try:
                ok, bad = await target.unit(n)
            except Unavailable as exc:
                unavailable.append(str(exc))
                stop.set()
                return
            except Exception as exc:  # noqa: BLE001 -- counted, never fatal
                ok, bad = 0, Counter({type(exc).__name__: per_call})
            if meter.record_latency:
                meter.latencies.append(time.perf_counter() - t0)
            meter.ok += ok
            if bad:
                meter.errors.update(bad)
                meter.failed += sum(bad.values())
            if on_progress is not None:
                on_progress()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if unavailable:
        raise Unavailable(unavailable[0])


async def _drive_stream(target: Target, meter: Meter, concurrency: int, max_events: int, stop: asyncio.Event, on_progress=None):
    """One SendStream call with at most ``concurrency`` requests unanswered."""
    from kameleoon.destination.v1 import destination_pb2 as pb

    call = target.call(timeout=None)
    window = asyncio.Semaphore(concurrency)
    sent: list[float] = []
    issued = 0

    async def writer() -> None:
        nonlocal issued
        try:
            while not stop.is_set() and issued < max_events:
                await window.acquire()
                if stop.is_set():
                    break
                n = issued
                issued += 1
                sent.append(time.perf_counter())
                await call.write(ev.send_request(target.pool.send_parts[n % target.pool.size], target.mid(n)))
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the reader reports what ended the call

    write_task = asyncio.ensure_future(writer())
    answered = 0
    try:
        async for answer in call:
            t1 = time.perf_counter()
            if meter.record_latency:
                meter.latencies.append(t1 - sent[answered])
            answered += 1
            window.release()
            code = pb.SendResponse.FromString(answer).status.code
            if code == 0:
                meter.ok += 1
            else:
                meter.failed += 1
                meter.errors[_code_name(code)] += 1
            if on_progress is not None:
                on_progress()
    except grpc.aio.AioRpcError as exc:
        stop.set()
        write_task.cancel()
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Unavailable(exc.details() or "UNIMPLEMENTED") from None
        meter.errors[exc.code().name] += issued - answered
        meter.failed += issued - answered
    finally:
        if not write_task.done():
            write_task.cancel()
        try:
            await write_task
        except asyncio.CancelledError:
            pass
    if answered < issued:
        meter.errors["MISSING_RESPONSE"] += issued - answered
        meter.failed += issued - answered


async def throughput(pool: Pool, cmd: dict) -> dict:
    """Load at a fixed concurrency: warm-up, then a measured window (bounded by time and count)."""
    mode, concurrency = cmd["mode"], int(cmd["concurrency"])
    warmup_s, duration_s = float(cmd.get("warmup_s", 1.0)), float(cmd.get("duration_s", 3.0))
    max_events = int(cmd.get("max_events", 10_000_000))
    meter = Meter(cmd.get("pids", {}))
    stop = asyncio.Event()
    rss_pid = cmd.get("rss_pid")
    marks = sorted(int(m) for m in cmd.get("rss_marks", []))
    at_marks: dict[str, dict] = {}
    peak = {"rss_kb": 0}

    def on_progress() -> None:
        done = meter.ok + meter.failed
        while marks and done >= marks[0]:
            at_marks[str(marks.pop(0))] = tree_memory_kb(rss_pid)

    async def sampler() -> None:
        deadline = time.monotonic() + warmup_s + duration_s + 60
        while not stop.is_set() and time.monotonic() < deadline:
            peak["rss_kb"] = max(peak["rss_kb"], tree_memory_kb(rss_pid).get("VmRSS", 0))
            await asyncio.sleep(0.05)

    async with Target(pool, mode, cmd, cmd.get("tag", "t")) as target:
        drive = _drive_stream if mode == "stream" else _drive_units
        start = meter.snapshot()
        task = asyncio.ensure_future(drive(target, meter, concurrency, max_events, stop, on_progress if rss_pid else None))
        sampling = asyncio.ensure_future(sampler()) if rss_pid else None
        done, _ = await asyncio.wait({task}, timeout=warmup_s)
        if done:
            first, last = start, meter.snapshot()
        else:
            first = meter.snapshot()
            meter.record_latency = True
            done, _ = await asyncio.wait({task}, timeout=duration_s)
            last = meter.snapshot()
            meter.record_latency = False
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), CALL_TIMEOUT_S + 5)
        except TimeoutError:
            task.cancel()
            meter.errors["DRAIN_TIMEOUT"] += 1
        if sampling is not None:
            await sampling
        if task.done() and not task.cancelled() and isinstance(task.exception(), Unavailable):
            return {"available": False, "reason": str(task.exception())}
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()
    out = {
        "available": True,
        "mode": mode,
        "concurrency": concurrency,
        **_window(first, last),
        "total_ok_events": meter.ok,
        "total_failed_events": meter.failed,
        "errors": dict(meter.errors),
        "latency": _latency_summary(meter.latencies),
    }
    if mode == "batch":
        out["batch_size"] = target.batch_size
    if rss_pid:
        out["memory"] = {"peak_sampled_rss_kb": peak["rss_kb"], "at_events": at_marks, "end": tree_memory_kb(rss_pid)}
    return out


async def latency(pool: Pool, cmd: dict) -> dict:
    """One call at a time: ``warmup`` calls, then ``count`` timed ones (capped by ``time_cap_s``)."""
    mode, count, warm = cmd["mode"], int(cmd.get("count", 1000)), int(cmd.get("warmup", 100))
    cap = float(cmd.get("time_cap_s", 30))
    values: list[float] = []
    errors: Counter = Counter()
    async with Target(pool, mode, cmd, cmd.get("tag", "l")) as target:
        if mode == "stream":
            raise ValueError("latency is measured on unary modes only")
        deadline = time.monotonic() + cap
        for n in range(warm + count):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            try:
                ok, bad = await target.unit(n * target.batch_size)
            except Unavailable as exc:
                return {"available": False, "reason": str(exc)}
            t1 = time.perf_counter()
            if bad:
                errors.update(bad)
            elif n >= warm:
                values.append(t1 - t0)
    return {"available": True, "mode": mode, **_latency_summary(values), "errors": dict(errors)}


async def probe(pool: Pool, cmd: dict) -> dict:
    """One call of a mode: is it implemented, and does it deliver?"""
    async with Target(pool, cmd["mode"], cmd, cmd.get("tag", "p")) as target:
        try:
            if cmd["mode"] == "stream":
                meter = Meter({})
                await asyncio.wait_for(_drive_stream(target, meter, 1, 1, asyncio.Event()), 10)
                ok, bad = meter.ok, meter.errors
            else:
                ok, bad = await asyncio.wait_for(target.unit(0), 10)
        except Unavailable as exc:
            return {"available": False, "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001
            return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    if bad:
        return {"available": False, "reason": f"probe failed: {dict(bad)}"}
    return {"available": True}


async def handle(state: dict, cmd: dict) -> dict:
    op = cmd["op"]
    if op == "load":
        with open(cmd["events_file"]) as f:
            state["pool"] = Pool(json.load(f))
        return {"events": state["pool"].size}
    pool = state["pool"]
    if op == "probe":
        return await probe(pool, cmd)
    if op == "throughput":
        return await throughput(pool, cmd)
    if op == "latency":
        return await latency(pool, cmd)
    raise ValueError(f"unknown op {op!r}")


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    state: dict = {}
    while True:
        line = await reader.readline()
        if not line:
            return
        try:
            answer = await handle(state, json.loads(line))
        except Exception as exc:  # noqa: BLE001 -- reported to the orchestrator
            answer = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> int:
    run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
