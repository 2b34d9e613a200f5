"""From raw measurements to CPU per event, ratios, target verdicts, a markdown table and an optional plot.

The unit is CPU microseconds per event of the measured process (tree): the
service for its modes, bench/grpc_floor.py for the gRPC floor, the load
generator's aiohttp client for the HTTP floor, Node for Segment's runtime.
Each configuration's number is that of its best round (highest events/s).
Targets are text (PASS / FAIL / N/A), never assertions.
"""

from __future__ import annotations

from pathlib import Path

MODES = ("typed", "send", "batch", "stream")
MODE_TITLES = {"typed": "typed unary", "send": "Send", "batch": "SendBatch", "stream": "SendStream"}
VARIANTS = ("service", "baseline", "service_warning")
# Which process does the work of each yardstick (its CPU is the one counted).
MEASURED_PROCESS = {"segment": "segment", "raw_http": "loadgen", "grpc_floor": "grpc_floor"}

# Issue 11's goals, against the floors measured in the same run.
BULK_VS_HTTP_FLOOR = 1.25  # the better of SendBatch/SendStream: CPU per event at most this x the HTTP floor's
SEND_VS_FLOORS = 1.25  # unary Send: at most this x (gRPC floor + HTTP floor)
ADDED_P50_MS = 0.25  # Send p50 at concurrency 1: at most the floors' p50s + this
PEAK_RSS_MB = 100.0
# ... and against the baseline checkout (--baseline), same run: CPU per event at most this share of it.
VS_BASELINE = {"batch": 0.5, "stream": 0.5, "send": 0.6}
# "Flat": RSS after the last events within this much of RSS after the first mark.
FLAT_MB = 5.0
FLAT_SHARE = 0.05
# The stand-in counts as saturated when it used more than this share of a core in a run.
STANDIN_SATURATED_CORES = 0.85


def _runs(table: dict) -> dict[int, dict]:
    """{concurrency: run} of the runs that measured something."""
    if not isinstance(table, dict) or table.get("available") is False:
        return {}
    return {int(c): r for c, r in table.items() if isinstance(r, dict) and r.get("available", True) and r.get("events_per_s")}


def cpu_us(run: dict, process: str) -> float | None:
    """CPU microseconds per OK event that ``process`` spent in the measured window of ``run``."""
    value = (run.get("cpu_us_per_event") or {}).get(process)
    if value is not None:
        return value
    cores = (run.get("cpu_cores") or {}).get(process)
    if cores is None or not run.get("ok_events") or not run.get("window_s"):
        return None
    return round(cores * run["window_s"] / run["ok_events"] * 1e6, 1)


# CPU per event is read where the measured process is loaded: concurrency at least this (when measured).
LOADED_CONCURRENCY = 8


def _cpu_samples(runs: dict[int, dict], process: str) -> list[tuple[float, int]]:
    """(CPU us/event, concurrency) of every round of the loaded configurations (all when none is loaded)."""
    loaded = {c: r for c, r in runs.items() if c >= LOADED_CONCURRENCY} or runs
    samples = []
    for c, r in loaded.items():
        rounds = [x.get(process) for x in r.get("rounds_cpu_us_per_event") or [] if isinstance(x, dict) and x.get(process) is not None]
        samples += [(v, c) for v in rounds or ([cpu_us(r, process)] if cpu_us(r, process) is not None else [])]
    return samples


def _best(table: dict, process: str) -> dict | None:
    """The most events/s (and at which concurrency); CPU us per event: the lowest of every round at
    concurrency >= LOADED_CONCURRENCY (other processes on a shared host only ever add CPU time: the
    lowest reading is the one they disturbed least), with the range of those readings."""
    runs = _runs(table)
    if not runs:
        return None
    c, r = max(runs.items(), key=lambda item: item[1]["events_per_s"])
    samples = _cpu_samples(runs, process)
    lowest = min(samples) if samples else (None, None)
    return {
        "events_per_s": r["events_per_s"],
        "concurrency": c,
        "cpu_us_per_event": lowest[0],
        "cpu_concurrency": lowest[1],
        "cpu_us_rounds": sorted(v for v, _ in samples),
        "cpu_cores": (r.get("cpu_cores") or {}).get(process),
    }


def _div(a, b, digits: int = 3) -> float | None:
    return None if a is None or not b else round(a / b, digits)


def _verdict(value, ok) -> str:
    if value is None:
        return "N/A"
    return "PASS" if ok(value) else "FAIL"


def _memory_summary(mem_run: dict) -> dict:
    """Peak RSS and RSS at each mark of one memory run, and whether it stayed flat."""
    mem = mem_run.get("memory") or {}
    peak_kb = max([mem.get("peak_sampled_rss_kb") or 0, (mem.get("end") or {}).get("VmHWM", 0)]) or None
    at = {int(k): v.get("VmRSS") for k, v in (mem.get("at_events") or {}).items() if v.get("VmRSS")}
    first_mark = min(at) if at else None
    last_mark = max(at) if at else None
    growth_kb = at[last_mark] - at[first_mark] if at and last_mark != first_mark else None
    flat = None
    if growth_kb is not None:
        flat = growth_kb <= max(FLAT_MB * 1024, FLAT_SHARE * at[first_mark])
    done = (mem_run.get("total_ok_events") or 0) + (mem_run.get("total_failed_events") or 0)
    return {
        "mode": mem_run.get("mode"),
        "variant": mem_run.get("variant"),
        "events": done if mem_run.get("available", True) else 0,
        "peak_rss_mb": round(peak_kb / 1024, 1) if peak_kb else None,
        "rss_mb_at_events": {str(k): round(v / 1024, 1) for k, v in sorted(at.items())},
        "first_mark": first_mark,
        "last_mark": last_mark,
        "growth_mb": round(growth_kb / 1024, 2) if growth_kb is not None else None,
        "flat": flat,
        "events_per_s": mem_run.get("events_per_s"),
    }


def summarise(report: dict) -> None:
    """Adds report["best"], report["ratios"], report["targets"] and report["checks"] entries."""
    tp = report["throughput"]
    best: dict = {}
    for variant in VARIANTS:
        if variant in tp:
            best[variant] = {mode: _best(table, "service") for mode, table in tp[variant].items()}
    for yardstick, process in MEASURED_PROCESS.items():
        best[yardstick] = _best(tp.get(yardstick) or {}, process)
    best["one_process_floor"] = {mode: _best(table, "one_process_floor") for mode, table in (tp.get("one_process_floor") or {}).items()}
    # Kept at the top level for older readers of report.json: the service's modes.
    best.update(best.get("service", {}))
    service = best.get("service", {})
    bulk_candidates = [(m, service.get(m)) for m in ("batch", "stream") if service.get(m) and service[m]["cpu_us_per_event"]]
    bulk_mode, bulk = min(bulk_candidates, key=lambda mb: mb[1]["cpu_us_per_event"]) if bulk_candidates else (None, None)
    best["bulk"] = {**bulk, "mode": bulk_mode} if bulk else None
    report["best"] = best

    http = (best.get("raw_http") or {}).get("cpu_us_per_event")
    grpc = (best.get("grpc_floor") or {}).get("cpu_us_per_event")
    segment = (best.get("segment") or {}).get("cpu_us_per_event")
    floors = http + grpc if http and grpc else None
    per_mode: dict = {}
    for mode in MODES:
        row = {}
        for variant in VARIANTS:
            b = (best.get(variant) or {}).get(mode)
            cpu = b["cpu_us_per_event"] if b else None
            row[variant] = {
                "cpu_us_per_event": cpu,
                "events_per_s": b["events_per_s"] if b else None,
                "concurrency": b["concurrency"] if b else None,
                "cpu_us_rounds": b["cpu_us_rounds"] if b else [],
                "vs_http_floor": _div(cpu, http),
                "vs_floors": _div(cpu, floors),
                "segment_cpu_per_event_vs_this": _div(segment, cpu, 2),
                "vs_one_process_floor": _div(
                    cpu, ((best["one_process_floor"].get("send" if mode in ("send", "typed") else mode) or {}).get("cpu_us_per_event"))
                ),
            }
        row["vs_baseline"] = _div(row["service"]["cpu_us_per_event"], row["baseline"]["cpu_us_per_event"])
        per_mode[mode] = row

    lat = report["latency"]

    def p50(name):
        entry = lat.get(name) or {}
        return entry.get("p50_ms") if entry.get("available", True) else None

    floors_p50 = round(p50("grpc_floor") + p50("direct"), 4) if p50("grpc_floor") is not None and p50("direct") is not None else None
    send_over_floors_p50 = round(p50("send") - floors_p50, 4) if p50("send") is not None and floors_p50 is not None else None

    memory = _memory_summary((report.get("memory") or {}).get("run") or {})
    report["memory"]["summary"] = memory
    for key in ("run_no_idempotency", "baseline_run"):
        if (report.get("memory") or {}).get(key):
            report["memory"]["summary_" + key.removesuffix("_run").removeprefix("run_")] = _memory_summary(report["memory"][key])
    flat = memory["flat"]

    ratios = {
        "per_mode": per_mode,
        "floors_cpu_us_per_event": {"http": http, "grpc": grpc, "sum": floors, "segment": segment},
        "bulk_vs_http_floor": _div(bulk["cpu_us_per_event"], http) if bulk else None,
        "send_vs_floors": per_mode["send"]["service"]["vs_floors"],
        "bulk_segment_cpu_vs_this": _div(segment, bulk["cpu_us_per_event"], 2) if bulk else None,
        "p50_ms": {
            "send": p50("send"),
            "typed": p50("typed"),
            "direct": p50("direct"),
            "grpc_floor": p50("grpc_floor"),
            "floors": floors_p50,
            "send_over_floors": send_over_floors_p50,
            "baseline_send": p50("baseline_send"),
            "segment": p50("segment"),
        },
        "peak_rss_mb": memory["peak_rss_mb"],
        # What grpc.aio and aiohttp alone cost against the baseline: no mode can go below its one-process floor.
        "one_process_floor_vs_baseline": {
            mode: _div((best["one_process_floor"].get(mode) or {}).get("cpu_us_per_event"), per_mode[mode]["baseline"]["cpu_us_per_event"])
            for mode in ("send", "stream")
            if mode in per_mode
        },
    }
    report["ratios"] = ratios
    targets = []
    for mode, share in VS_BASELINE.items():
        value = per_mode[mode]["vs_baseline"]
        targets.append(
            {
                "name": f"{MODE_TITLES[mode]} CPU/event vs the baseline",
                "target": f"<= {share:g}x",
                "value": value,
                "status": _verdict(value, lambda v, share=share: v <= share),
                "kind": "x",
            }
        )
    targets += [
        {
            "name": "bulk (better of SendBatch/SendStream) CPU/event vs the HTTP floor",
            "target": f"<= {BULK_VS_HTTP_FLOOR:g}x",
            "value": ratios["bulk_vs_http_floor"],
            "status": _verdict(ratios["bulk_vs_http_floor"], lambda v: v <= BULK_VS_HTTP_FLOOR),
            "kind": "x",
        },
        {
            "name": "unary Send CPU/event vs gRPC floor + HTTP floor",
            "target": f"<= {SEND_VS_FLOORS:g}x",
            "value": ratios["send_vs_floors"],
            "status": _verdict(ratios["send_vs_floors"], lambda v: v <= SEND_VS_FLOORS),
            "kind": "x",
        },
        {
            "name": "Send p50 at concurrency 1 over the floors' p50s",
            "target": f"<= {ADDED_P50_MS} ms",
            "value": send_over_floors_p50,
            "status": _verdict(send_over_floors_p50, lambda v: v <= ADDED_P50_MS),
            "kind": "ms",
        },
        {
            "name": f"peak RSS through {memory['events']} events",
            "target": f"<= {PEAK_RSS_MB:g} MB",
            "value": memory["peak_rss_mb"],
            "status": _verdict(memory["peak_rss_mb"], lambda v: v <= PEAK_RSS_MB),
            "kind": "MB",
        },
        {
            "name": "RSS flat (first mark vs last mark)",
            "target": f"growth <= max({FLAT_MB:g} MB, {FLAT_SHARE:.0%})",
            "value": memory["growth_mb"],
            "status": "N/A" if flat is None else ("PASS" if flat else "FAIL"),
            "kind": "growth",
        },
    ]
    report["targets"] = targets

    # Sanity checks: was the stand-in ever the bottleneck, and did every event reach it?
    standin_cores = []
    undelivered = []
    tables = [(f"{variant} {m}", t) for variant in VARIANTS for m, t in (tp.get(variant) or {}).items()]
    for label, table in [*tables, ("segment", tp["segment"]), ("raw_http", tp["raw_http"])]:
        for c, r in _runs(table).items():
            cores = (r.get("cpu_cores") or {}).get("standin")
            if cores is not None:
                standin_cores.append((cores, f"{label} c={c}"))
            if "standin_posts" in r and r["standin_posts"] < r.get("total_ok_events", 0):
                undelivered.append(f"{label} c={c}: {r['total_ok_events']} ok events, {r['standin_posts']} POSTs")
    busiest = max(standin_cores) if standin_cores else None
    checks = report["checks"]
    checks["standin_max_cores"] = busiest[0] if busiest else None
    checks["standin_busiest_run"] = busiest[1] if busiest else None
    checks["standin_saturated"] = busiest[0] > STANDIN_SATURATED_CORES if busiest else None
    checks["undelivered"] = undelivered
    checks["floor_headers_match_service"] = _same_headers(checks.get("standin_heads") or {})


def _same_headers(heads: dict[str, int]) -> bool | None:
    """Whether the HTTP floor's sampled POSTs carried the very header lines of the service's (and the
    baseline's); None when either was not sampled."""

    def lines(path_suffix: str) -> set[str]:
        found = set()
        for head in heads:
            request_line, _, rest = head.partition("\n")
            path = request_line.split(" ")[1] if request_line.count(" ") >= 2 else ""
            if path.endswith("/segmentio" + path_suffix):
                found.add(rest)
        return found

    service, floor = lines(""), lines("-floor")
    if not service or not floor:
        return None
    return service == floor


def _num(v, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}{unit}"


def _x(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}x"


def _spread(rounds: list) -> str:
    return "" if len(rounds) < 2 else f" ({min(rounds):,.0f}-{max(rounds):,.0f})"


def _cell(table: dict, c: int, process: str) -> str:
    if isinstance(table, dict) and table.get("available") is False:
        return "unavailable"
    r = (table or {}).get(str(c))
    if r is None:
        return "-"
    if r.get("available") is False:
        return "unavailable"
    text = f"{_num(r.get('events_per_s'))} / {_num(cpu_us(r, process))}"
    if r.get("failed_events"):
        text += f" ({r['failed_events']} failed)"
    return text


def markdown(report: dict) -> str:
    best = report.get("best", {})
    ratios = report.get("ratios", {})
    meta = report["meta"]
    git = meta.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" + uncommitted service/ changes" if git.get("service_dirty") else "")
    lines = [f"# kameleoon-destination benchmark ({meta['profile']} run, {meta['host']['cpus']} CPUs, {meta.get('elapsed_s')} s, {commit})", ""]
    capacity = meta["host"].get("capacity_cores") or {}
    if capacity:
        lines += [
            f"CPU the machine gave to {meta['host']['cpus']} busy processes: {capacity.get('start')} cores at start, "
            f"{capacity.get('end')} at the end"
            + (
                " (a shared or throttled host: expect noisy numbers)"
                if min((v for v in capacity.values() if v is not None), default=meta["host"]["cpus"]) < 0.9 * meta["host"]["cpus"]
                else ""
            )
            + ".",
            "",
        ]
    variants = meta.get("variants") or {}
    if "baseline" in variants:
        base_git = variants["baseline"].get("git") or {}
        lines += [
            f"Baseline: {variants['baseline']['checkout']} at {(base_git.get('commit') or 'unknown')[:10]}, measured in the same run, "
            "each configuration back to back with this checkout's.",
            "",
        ]
    if report.get("fatal"):
        lines += [f"**The run stopped early: {report['fatal']}**", ""]

    lines += ["## Ratios and targets", "", "| metric | value | target | status |", "|---|---|---|---|"]
    for t in report.get("targets", []):
        value, kind = t["value"], t.get("kind")
        shown = (
            _x(value)
            if kind == "x"
            else _num(value, " ms", 3)
            if kind == "ms"
            else _num(value, " MB", 1)
            if kind == "MB"
            else ("n/a" if value is None else f"{value:+.1f} MB")
        )
        lines.append(f"| {t['name']} | {shown} | {t['target']} | {t['status']} |")

    per_mode = ratios.get("per_mode") or {}
    fl = ratios.get("floors_cpu_us_per_event") or {}
    has_base = any((per_mode.get(m) or {}).get("baseline", {}).get("cpu_us_per_event") for m in MODES)
    has_warn = any((per_mode.get(m) or {}).get("service_warning", {}).get("cpu_us_per_event") for m in MODES)
    head = ["what", "CPU us/event", "events/s", "x HTTP floor", "x (gRPC + HTTP floors)", "x one-process floor", "Segment's CPU/event / this"]
    if has_base:
        head += ["baseline CPU us/event", "baseline events/s", "this / baseline"]
    if has_warn:
        head += ["logs at warning: CPU us/event"]
    lines += [
        "",
        "## CPU per event (the service at its defaults: logs at info, one line per RPC)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for mode in MODES:
        row = per_mode.get(mode)
        if not row:
            continue
        s, b, w = row["service"], row["baseline"], row["service_warning"]
        if s["cpu_us_per_event"] is None and b["cpu_us_per_event"] is None:
            continue
        cells = [
            f"service {MODE_TITLES[mode]}",
            _num(s["cpu_us_per_event"]) + _spread(s["cpu_us_rounds"]),
            f"{_num(s['events_per_s'])} @ c={s['concurrency']}",
            _x(s["vs_http_floor"]),
            _x(s["vs_floors"]) if mode in ("send", "typed") else "-",
            _x(s["vs_one_process_floor"]) if mode != "batch" else "-",
            _x(s["segment_cpu_per_event_vs_this"]),
        ]
        if has_base:
            cells += [
                _num(b["cpu_us_per_event"]) + _spread(b["cpu_us_rounds"]),
                f"{_num(b['events_per_s'])} @ c={b['concurrency']}",
                _x(row["vs_baseline"]),
            ]
        if has_warn:
            cells.append(_num(w["cpu_us_per_event"]) + _spread(w["cpu_us_rounds"]))
        lines.append("| " + " | ".join(cells) + " |")
    floor_rows = [("grpc_floor", "gRPC floor: empty grpc.aio handler, unary Send"), ("raw_http", "HTTP floor: aiohttp POST of the same bodies")]
    floor_rows += [
        (("one_process_floor", mode), f"one-process floor: grpc.aio {title} that POSTs with aiohttp first")
        for mode, title in (("send", "unary Send"), ("stream", "SendStream, each message"))
    ]
    for key, title in (*floor_rows, ("segment", "Segment's runtime (Node, in-process)")):
        b = best.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else best.get(key)
        if b is None:
            continue
        vs_base = (ratios.get("one_process_floor_vs_baseline") or {}).get(key[1]) if isinstance(key, tuple) else None
        cells = (
            [title, _num(b["cpu_us_per_event"]) + _spread(b["cpu_us_rounds"]), f"{_num(b['events_per_s'])} @ c={b['concurrency']}", "", "", "", ""]
            + (["", "", _x(vs_base) if vs_base else ""] if has_base else [])
            + ([""] if has_warn else [])
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "CPU us/event: CPU time of the measured process (the service's process tree; the floor's own process; Node) "
        f"per event answered OK in a run's measured window; the lowest over every round at concurrency >= {LOADED_CONCURRENCY} "
        "(on a shared host other processes only add CPU time), in brackets the range of those readings. events/s: the best "
        f"run, at concurrency c. Floors: gRPC {_num(fl.get('grpc'))}, HTTP {_num(fl.get('http'))}, sum {_num(fl.get('sum'))} us/event. "
        "'Segment's CPU/event / this': how many times more events per CPU-second than Segment's runtime. One-process "
        "floor: grpc.aio and aiohttp in one process doing nothing else (unary modes against its Send, SendStream against "
        "its stream, with as many messages in flight as the service's default window); on a shared host it costs more than the two floors apart. "
        "Its 'this / baseline' is what grpc.aio and aiohttp alone cost against the baseline's same mode: "
        "no change of ours can bring a mode below it.",
    ]

    p50 = ratios.get("p50_ms") or {}
    lines += [
        "",
        f"Send p50 at concurrency 1: {_num(p50.get('send'), ' ms', 3)} (baseline {_num(p50.get('baseline_send'), ' ms', 3)}); "
        f"floors' p50s: gRPC {_num(p50.get('grpc_floor'), ' ms', 3)} + HTTP {_num(p50.get('direct'), ' ms', 3)} = "
        f"{_num(p50.get('floors'), ' ms', 3)}.",
    ]

    tp = report["throughput"]
    cs = sorted(
        {
            int(c)
            for table in [*(tp.get(v, {}).get(m) or {} for v in VARIANTS for m in MODES), tp["segment"], tp["raw_http"], tp.get("grpc_floor") or {}]
            if isinstance(table, dict)
            for c in table
            if str(c).isdigit()
        }
    )
    columns = [
        (f"{MODE_TITLES[m]}" + ("" if v == "service" else f" ({'baseline' if v == 'baseline' else 'warning'})"), tp[v][m], "service")
        for m in MODES
        for v in VARIANTS
        if m in (tp.get(v) or {})
    ]
    columns += [("Segment runtime", tp["segment"], "segment"), ("HTTP floor", tp["raw_http"], "loadgen")]
    if tp.get("grpc_floor") is not None:
        columns.append(("gRPC floor", tp["grpc_floor"], "grpc_floor"))
    lines += [
        "",
        "## Throughput by concurrency (events/s / CPU us per event)",
        "",
        "| concurrency | " + " | ".join(name for name, _, _ in columns) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for c in cs:
        lines.append("| " + " | ".join([str(c), *(_cell(table, c, process) for _, table, process in columns)]) + " |")
    batch_size = meta["settings"].get("batch_size")
    lines += ["", f"Concurrency = calls in flight (SendBatch: {batch_size} events per call; SendStream: one stream, that many requests unanswered)."]

    lines += ["", "## Latency at concurrency 1 (ms)", "", "| path | p50 | p90 | p99 |", "|---|---|---|---|"]
    names = {
        "typed": "typed unary (gRPC)",
        "send": "Send (gRPC)",
        "baseline_typed": "baseline typed unary",
        "baseline_send": "baseline Send",
        "direct": "HTTP floor: aiohttp POST to the stand-in",
        "grpc_floor": "gRPC floor: Send to an empty grpc.aio handler",
        "segment": "Segment runtime onEvent",
    }
    for key, title in names.items():
        if key not in report.get("latency", {}):
            continue
        r = report["latency"][key] or {}
        if r.get("available") is False:
            lines.append(f"| {title} | unavailable | | |")
        else:
            lines.append(f"| {title} | {_num(r.get('p50_ms'), '', 3)} | {_num(r.get('p90_ms'), '', 3)} | {_num(r.get('p99_ms'), '', 3)} |")

    slow = report.get("slow")
    if slow:
        lines += [
            "",
            f"## Kameleoon {slow['delay_ms']:g} ms away (stand-in answering after {slow['delay_ms']:g} ms)",
            "",
            f"SendBatch, {slow['concurrency']} calls in flight, about {slow['events_in_flight']} events in flight.",
            "",
            "| fixed KAMELEOON_CONCURRENCY | events/s | expected: min(limit, in flight) / latency | mean wait for the limit |",
            "|---|---|---|---|",
        ]
        for pool, r in slow["runs"].items():
            wait = r.get("pool_wait") or {}
            lines.append(
                f"| {pool} | {_num(r.get('events_per_s'))} | {_num(r.get('expected_events_per_s'))} | "
                f"{_num(wait.get('mean_ms'), ' ms', 1) if wait.get('available', True) else 'n/a (no metric)'} |"
            )

    lines += ["", "## Memory", ""]
    for key, title in (
        ("summary", "service, as configured"),
        ("summary_no_idempotency", "service, idempotency window off"),
        ("summary_baseline", "baseline, as configured"),
    ):
        m = (report.get("memory") or {}).get(key)
        if not m:
            continue
        marks = ", ".join(f"{int(k) / 1000:g}k: {v} MB" for k, v in m["rss_mb_at_events"].items())
        growth = "n/a" if m["growth_mb"] is None else f"{m['growth_mb']:+.1f} MB"
        lines.append(
            f"- {title}: peak {_num(m['peak_rss_mb'], ' MB', 1)} through {m['events']} events ({MODE_TITLES.get(m['mode'], m['mode'])}), "
            f"growth {growth} ({marks}): {'flat' if m['flat'] else 'NOT flat' if m['flat'] is False else 'n/a'}."
        )

    checks = report.get("checks", {})
    lines += ["", "## Checks", ""]
    cores = checks.get("standin_max_cores")
    lines.append(
        f"- stand-in busiest at {_num(cores, ' core', 2)} ({checks.get('standin_busiest_run')}): "
        + ("SATURATED, numbers are capped by the stand-in" if checks.get("standin_saturated") else "not saturated")
    )
    undelivered = checks.get("undelivered") or []
    lines.append("- every OK event reached the stand-in" if not undelivered else "- events missing at the stand-in: " + "; ".join(undelivered))
    same = checks.get("floor_headers_match_service")
    lines.append(
        "- header lines on the wire: "
        + (
            "the HTTP floor's are the service's"
            if same
            else "n/a"
            if same is None
            else "the HTTP floor's DIFFER from the service's (see checks.standin_heads)"
        )
    )
    seg_meta = meta.get("segment") or {}
    if not seg_meta.get("available"):
        lines.append(f"- Segment runtime unavailable: {seg_meta.get('reason')}")
    for variant in VARIANTS:
        for mode, table in (tp.get(variant) or {}).items():
            if isinstance(table, dict) and table.get("available") is False:
                lines.append(f"- {variant} {MODE_TITLES[mode]} unavailable: {table.get('reason')}")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path | None:
    """Throughput vs concurrency as a PNG, only when matplotlib is importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tp = report["throughput"]
    series = {MODE_TITLES[m]: t for m, t in tp["service"].items()}
    series.update({f"{MODE_TITLES[m]} (baseline)": t for m, t in (tp.get("baseline") or {}).items()})
    series["Segment runtime"] = tp["segment"]
    series["HTTP floor"] = tp["raw_http"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, table in series.items():
        runs = _runs(table)
        if runs:
            xs = sorted(runs)
            ax.plot(xs, [runs[x]["events_per_s"] for x in xs], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency (calls in flight)")
    ax.set_ylabel("events / s")
    ax.set_title("Throughput vs concurrency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
