"""Smoke test of the queued-delivery bench: ``python -m bench --queued --quick`` runs and writes its report.

No timing assertions: only that it measured each phase and every accepted event was drained.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_queued_bench_writes_a_report(tmp_path):
    out = tmp_path / "bench-out"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--queued", "--quick", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "queued.json").read_text())
    for phase in ("sync_batch", "queued_batch", "queued_send", "drain"):
        assert report[phase]["events_per_s"] > 0, phase
        assert report[phase].get("failed_calls", 0) == 0, phase
    assert report["drain"]["events"] >= report["backlog"] >= 1000 + 100
    assert set(report["targets"].values()) <= {"PASS", "FAIL"}
    assert "drain of a" in done.stdout
