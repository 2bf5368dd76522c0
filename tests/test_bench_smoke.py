"""The benchmark harness runs end to end against the real stack (simulator, Prometheus, adapter).

A few seconds of load on a small fleet; checks that the table has every (scenario, target) row
and that requests were answered. No timing assertions: machines are noisy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import stack

SCENARIOS = ("burst", "closed", "open", "big")
TARGETS = ("cached", "nocache", "direct")


def test_bench_quick_has_all_rows(tmp_path: Path) -> None:
    # a missing dependency fails with what to install: never a silent skip
    assert shutil.which("prometheus") is not None, "prometheus binary not installed: apt-get install -y prometheus"
    reason = stack.adapter_available()
    assert not reason, f"the adapter cannot run: {reason} (pip install -e .[dev])"
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--seconds", "1", "--namespaces", "5",
         "--pods-per-namespace", "40", "--big-pods", "200", "--json", str(out), "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    got = {(r["scenario"], r["target"]) for r in rows}
    assert got == {(s, t) for s in SCENARIOS for t in TARGETS}
    for r in rows:
        assert r["requests"] > 0, r
        assert r["requests"] > r["errors"] or r["target"] == "nocache", r
    header = next(line for line in proc.stdout.splitlines() if line.startswith("scenario"))
    for column in ("req/s", "p50 ms", "p95 ms", "p99 ms", "PromQ/100req", "CPU s/1k req", "peak RSS MB"):
        assert column in header
    assert "ratios" in proc.stdout


def test_soak_smoke_reports_rss_and_errors(tmp_path: Path) -> None:
    """``benchmarks.soak`` end to end for 20 s at a tiny rate: the report has RSS at the mark and at
    the end, and every request shape answers. No memory or timing assertions: that is the soak's job."""
    assert shutil.which("prometheus") is not None, "prometheus binary not installed: apt-get install -y prometheus"
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--minutes", "0.33", "--rate", "5", "--distinct", "20",
         "--namespaces", "5", "--pods-per-namespace", "4", "--json", str(out), "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["probe_errors"] == {}, rep["probe_errors"]  # by-name, by-selector and external all answer
    assert rep["ok"] > 0 and rep["requests"] == rep["ok"] + sum(rep["errors"].values())
    assert rep["rss_mark_mb"] > 0 and rep["rss_end_mb"] > 0
    assert "growth" in proc.stdout and "errors" in proc.stdout
