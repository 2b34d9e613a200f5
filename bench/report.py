"""From raw measurements to ratios, target verdicts, a markdown table and an optional plot.

Targets are text (PASS / FAIL / N/A), never assertions.
"""

from __future__ import annotations

from pathlib import Path

MODE_TITLES = {"typed": "typed unary", "send": "Send", "batch": "SendBatch", "stream": "SendStream"}
# The standing targets.
SEND_VS_SEGMENT = 2.0
BULK_VS_SEGMENT = 5.0
BULK_VS_RAW = 0.80
ADDED_P50_MS = 0.75
PEAK_RSS_MB = 100.0
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


def _best(table: dict) -> dict | None:
    runs = _runs(table)
    if not runs:
        return None
    c, r = max(runs.items(), key=lambda item: item[1]["events_per_s"])
    return {"events_per_s": r["events_per_s"], "concurrency": c}


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not b["events_per_s"]:
        return None
    return round(a["events_per_s"] / b["events_per_s"], 3)


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
    best = {mode: _best(table) for mode, table in tp["service"].items()}
    best["segment"] = _best(tp["segment"])
    best["raw_http"] = _best(tp["raw_http"])
    if "grpc_floor" in tp:
        best["grpc_floor"] = _best(tp["grpc_floor"])
    bulk_candidates = [(m, best.get(m)) for m in ("batch", "stream") if best.get(m)]
    bulk_mode, bulk = max(bulk_candidates, key=lambda mb: mb[1]["events_per_s"]) if bulk_candidates else (None, None)
    best["bulk"] = {**bulk, "mode": bulk_mode} if bulk else None
    report["best"] = best

    lat = report["latency"]

    def p50(name):
        entry = lat.get(name) or {}
        return entry.get("p50_ms") if entry.get("available", True) else None

    def added(name):
        a, d = p50(name), p50("direct")
        return None if a is None or d is None else round(a - d, 4)

    memory = _memory_summary((report.get("memory") or {}).get("run") or {})
    report["memory"]["summary"] = memory
    if (report.get("memory") or {}).get("run_no_idempotency"):
        report["memory"]["summary_no_idempotency"] = _memory_summary(report["memory"]["run_no_idempotency"])
    flat = memory["flat"]

    ratios = {
        "send_vs_segment": _ratio(best.get("send"), best["segment"]),
        "typed_vs_segment": _ratio(best.get("typed"), best["segment"]),
        "bulk_vs_segment": _ratio(bulk, best["segment"]),
        "bulk_vs_raw_http": _ratio(bulk, best["raw_http"]),
        "send_vs_raw_http": _ratio(best.get("send"), best["raw_http"]),
        "service_added_p50_ms": {"send": added("send"), "typed": added("typed"), "segment": added("segment")},
        "peak_rss_mb": memory["peak_rss_mb"],
    }
    report["ratios"] = ratios
    added_send = ratios["service_added_p50_ms"]["send"]
    report["targets"] = [
        {"name": "unary Send vs Segment runtime", "target": f">= {SEND_VS_SEGMENT:g}x", "value": ratios["send_vs_segment"],
         "status": _verdict(ratios["send_vs_segment"], lambda v: v >= SEND_VS_SEGMENT)},
        {"name": "best of SendBatch/SendStream vs Segment runtime", "target": f">= {BULK_VS_SEGMENT:g}x", "value": ratios["bulk_vs_segment"],
         "status": _verdict(ratios["bulk_vs_segment"], lambda v: v >= BULK_VS_SEGMENT)},
        {"name": "best of SendBatch/SendStream vs raw HTTP ceiling", "target": f">= {BULK_VS_RAW:.0%}", "value": ratios["bulk_vs_raw_http"],
         "status": _verdict(ratios["bulk_vs_raw_http"], lambda v: v >= BULK_VS_RAW)},
        {"name": "service-added p50 (Send)", "target": f"<= {ADDED_P50_MS} ms", "value": added_send,
         "status": _verdict(added_send, lambda v: v <= ADDED_P50_MS)},
        {"name": f"peak RSS through {memory['events']} events", "target": f"<= {PEAK_RSS_MB:g} MB", "value": memory["peak_rss_mb"],
         "status": _verdict(memory["peak_rss_mb"], lambda v: v <= PEAK_RSS_MB)},
        {"name": "RSS flat (first mark vs last mark)", "target": f"growth <= max({FLAT_MB:g} MB, {FLAT_SHARE:.0%})", "value": memory["growth_mb"],
         "status": "N/A" if flat is None else ("PASS" if flat else "FAIL")},
    ]

    # Sanity checks: was the stand-in ever the bottleneck, and did every event reach it?
    standin_cores = []
    undelivered = []
    for label, table in [*((f"service {m}", t) for m, t in tp["service"].items()), ("segment", tp["segment"]), ("raw_http", tp["raw_http"])]:
        for c, r in _runs(table).items():
            cores = (r.get("cpu_cores") or {}).get("standin")
            if cores is not None:
                standin_cores.append((cores, f"{label} c={c}"))
            if "standin_posts" in r and r["standin_posts"] < r.get("total_ok_events", 0):
                undelivered.append(f"{label} c={c}: {r['total_ok_events']} ok events, {r['standin_posts']} POSTs")
    busiest = max(standin_cores) if standin_cores else None
    report["checks"]["standin_max_cores"] = busiest[0] if busiest else None
    report["checks"]["standin_busiest_run"] = busiest[1] if busiest else None
    report["checks"]["standin_saturated"] = busiest[0] > STANDIN_SATURATED_CORES if busiest else None
    report["checks"]["undelivered"] = undelivered


def _num(v, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}{unit}"


def _x(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _cell(table: dict, c: int) -> str:
    if isinstance(table, dict) and table.get("available") is False:
        return "unavailable"
    r = (table or {}).get(str(c))
    if r is None:
        return "-"
    if r.get("available") is False:
        return "unavailable"
    text = _num(r.get("events_per_s"))
    if r.get("failed_events"):
        text += f" ({r['failed_events']} failed)"
    return text


def markdown(report: dict) -> str:
    best = report.get("best", {})
    ratios = report.get("ratios", {})
    mem = (report.get("memory") or {}).get("summary") or {}
    meta = report["meta"]
    git = meta.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" + uncommitted service/ changes" if git.get("service_dirty") else "")
    lines = [f"# kameleoon-destination benchmark ({meta['profile']} run, {meta['host']['cpus']} CPUs, {meta.get('elapsed_s')} s, {commit})", ""]
    capacity = meta["host"].get("capacity_cores") or {}
    if capacity:
        lines += [f"CPU the machine gave to {meta['host']['cpus']} busy processes: {capacity.get('start')} cores at start, "
                  f"{capacity.get('end')} at the end" + (" (a shared or throttled host: expect noisy numbers)"
                  if min((v for v in capacity.values() if v is not None), default=meta['host']['cpus']) < 0.9 * meta["host"]["cpus"] else "")
                  + ".", ""]
    if report.get("fatal"):
        lines += [f"**The run stopped early: {report['fatal']}**", ""]

    def eps(b):
        return "n/a" if not b else f"{b['events_per_s']:,.0f} ev/s @ c={b['concurrency']}"

    seg, raw, bulk = best.get("segment"), best.get("raw_http"), best.get("bulk")
    lines += ["## Ratios and targets", "", "| metric | value | basis | target | status |", "|---|---|---|---|---|"]
    for t in report.get("targets", []):
        name, value = t["name"], t["value"]
        if "vs Segment" in name and name.startswith("unary"):
            shown, basis = _x(value), f"Send {eps(best.get('send'))} / Segment {eps(seg)}"
        elif "vs Segment" in name:
            shown, basis = _x(value), f"{MODE_TITLES.get((bulk or {}).get('mode'), 'n/a')} {eps(bulk)} / Segment {eps(seg)}"
        elif "raw HTTP" in name:
            shown, basis = ("n/a" if value is None else f"{value:.0%}"), f"{MODE_TITLES.get((bulk or {}).get('mode'), 'n/a')} {eps(bulk)} / raw {eps(raw)}"
        elif "p50" in name:
            lat = report.get("latency", {})
            shown = _num(value, " ms", 3)
            basis = f"Send p50 {_num((lat.get('send') or {}).get('p50_ms'), ' ms', 3)} - direct p50 {_num((lat.get('direct') or {}).get('p50_ms'), ' ms', 3)}"
        elif "peak RSS" in name:
            conc = (((report.get("memory") or {}).get("run") or {}).get("concurrency"))
            shown, basis = _num(value, " MB", 1), f"{MODE_TITLES.get(mem.get('mode'), mem.get('mode'))} c={conc}, fresh service, default config"
        else:
            marks = mem.get("rss_mb_at_events") or {}
            shown = "n/a" if value is None else f"{value:+.1f} MB"
            basis = ", ".join(f"{int(k) / 1000:g}k: {v} MB" if int(k) >= 1000 else f"{k}: {v} MB" for k, v in marks.items()) or "n/a"
        lines.append(f"| {name} | {shown} | {basis} | {t['target']} | {t['status']} |")
    added = ratios.get("service_added_p50_ms") or {}
    alt = (report.get("memory") or {}).get("summary_no_idempotency")
    if alt:
        marks = ", ".join(f"{int(k) / 1000:g}k: {v} MB" if int(k) >= 1000 else f"{k}: {v} MB" for k, v in alt["rss_mb_at_events"].items())
        growth = "n/a" if alt["growth_mb"] is None else f"{alt['growth_mb']:+.1f} MB"
        lines += ["", f"Memory with the idempotency window off (KAMELEOON_IDEMPOTENCY_WINDOW_S=0): peak {_num(alt['peak_rss_mb'], ' MB', 1)}, "
                  f"growth {growth} ({marks}): {'flat' if alt['flat'] else 'NOT flat' if alt['flat'] is False else 'n/a'}. "
                  "Growth that disappears here is the remembered-messageId store, bounded by KAMELEOON_IDEMPOTENCY_MAX_ENTRIES."]
    lines += ["", f"Also: typed unary vs Segment {_x(ratios.get('typed_vs_segment'))}; Send vs raw HTTP "
              f"{'n/a' if ratios.get('send_vs_raw_http') is None else format(ratios['send_vs_raw_http'], '.0%')}; "
              f"typed-added p50 {_num(added.get('typed'), ' ms', 3)}; Segment-added p50 {_num(added.get('segment'), ' ms', 3)}.", ""]

    tp = report["throughput"]
    cs = sorted({int(c) for table in [*tp["service"].values(), tp["segment"], tp["raw_http"]] if isinstance(table, dict)
                 for c in table if str(c).isdigit()})
    service_modes = [m for m in ("typed", "send", "batch", "stream") if m in tp["service"]]
    floor = tp.get("grpc_floor")
    head = ["concurrency", *(MODE_TITLES[m] for m in service_modes), "Segment runtime", "raw HTTP", *(["gRPC floor"] if floor is not None else [])]
    lines += ["## Throughput (events/s)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cs:
        row = [str(c), *(_cell(tp["service"][m], c) for m in service_modes), _cell(tp["segment"], c), _cell(tp["raw_http"], c),
               *([_cell(floor, c)] if floor is not None else [])]
        lines.append("| " + " | ".join(row) + " |")
    batch_size = meta["settings"].get("batch_size")
    lines += ["", f"Concurrency = calls in flight (SendBatch: {batch_size} events per call; SendStream: one stream, "
              "that many requests unanswered)." + (" gRPC floor: unary Send to a grpc.aio server whose handler returns at once."
                                                   if floor is not None else "")]

    lines += ["", "## Latency at concurrency 1 (ms)", "", "| path | p50 | p90 | p99 |", "|---|---|---|---|"]
    names = {"typed": "typed unary (gRPC)", "send": "Send (gRPC)", "direct": "direct aiohttp POST to the stand-in", "segment": "Segment runtime onEvent",
             "grpc_floor": "gRPC floor: Send to an empty grpc.aio handler"}
    for key, title in names.items():
        if key == "grpc_floor" and key not in report.get("latency", {}):
            continue
        r = report.get("latency", {}).get(key) or {}
        if r.get("available") is False:
            lines.append(f"| {title} | unavailable | | |")
        else:
            lines.append(f"| {title} | {_num(r.get('p50_ms'), '', 3)} | {_num(r.get('p90_ms'), '', 3)} | {_num(r.get('p99_ms'), '', 3)} |")

    checks = report.get("checks", {})
    lines += ["", "## Checks", ""]
    cores = checks.get("standin_max_cores")
    lines.append(f"- stand-in busiest at {_num(cores, ' core', 2)} ({checks.get('standin_busiest_run')}): "
                 + ("SATURATED, numbers are capped by the stand-in" if checks.get("standin_saturated") else "not saturated"))
    undelivered = checks.get("undelivered") or []
    lines.append("- every OK event reached the stand-in" if not undelivered else "- events missing at the stand-in: " + "; ".join(undelivered))
    seg_meta = meta.get("segment") or {}
    if not seg_meta.get("available"):
        lines.append(f"- Segment runtime unavailable: {seg_meta.get('reason')}")
    for mode, table in tp["service"].items():
        if isinstance(table, dict) and table.get("available") is False:
            lines.append(f"- {MODE_TITLES[mode]} unavailable: {table.get('reason')}")
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
    series["Segment runtime"] = tp["segment"]
    series["raw HTTP"] = tp["raw_http"]
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
