"""Smoke test of the benchmark harness: ``python -m bench --quick`` runs and writes a report.

No timing assertions: only that the harness works end to end. Without Node or
tools/oracle/node_modules the Segment yardstick is reported as unavailable.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_a_report(tmp_path):
    out = tmp_path / "bench-out"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "## Ratios and targets" in done.stdout

    report = json.loads((out / "report.json").read_text())
    for key in ("meta", "throughput", "best", "latency", "memory", "ratios", "targets", "checks"):
        assert key in report, key
    assert "fatal" not in report
    assert set(report["throughput"]) == {"service", "segment", "raw_http", "grpc_floor", "one_process_floor"}
    assert set(report["throughput"]["service"]) == {"typed", "send", "batch", "stream"}
    for key in ("per_mode", "floors_cpu_us_per_event", "bulk_vs_http_floor", "send_vs_floors", "p50_ms", "peak_rss_mb"):
        assert key in report["ratios"], key
    # CPU per event of every mode and of both floors, the unit of every target.
    assert all(report["ratios"]["per_mode"][mode]["service"]["cpu_us_per_event"] > 0 for mode in report["throughput"]["service"])
    assert report["ratios"]["floors_cpu_us_per_event"]["http"] > 0
    assert report["ratios"]["floors_cpu_us_per_event"]["grpc"] > 0
    assert report["checks"]["floor_headers_match_service"] is True, "the HTTP floor sends the service's header lines"
    assert report["slow"]["runs"]["100"]["events_per_s"] > 0
    assert {t["status"] for t in report["targets"]} <= {"PASS", "FAIL", "N/A"}

    # The typed path and the raw HTTP ceiling need nothing but this repository.
    assert report["best"]["typed"]["events_per_s"] > 0
    assert report["best"]["raw_http"]["events_per_s"] > 0
    assert report["latency"]["direct"]["p50_ms"] > 0
    assert report["memory"]["summary"]["peak_rss_mb"] > 0
    assert report["checks"]["undelivered"] == []
    segment = report["meta"]["segment"]
    assert segment["available"] or segment["reason"]
