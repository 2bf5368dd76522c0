"""The README's demo command, run for a short duration: values flow end to end and nothing is left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _demo_processes() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "accel-demo-" in cmd:
            out.append(cmd)
    return out


def test_demo_runs_and_cleans_up() -> None:
    proc = subprocess.run([sys.executable, "-m", "adapter", "demo", "--duration", "20", "--interval", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "adapter ready at https://127.0.0.1:" in out
    for title in ("queue depth", "GPU utilization", "pending requests", "NeuronCore utilization", "TGI"):
        rows = [line for line in out.splitlines() if title in line]
        assert rows, f"no rows for {title}"
        assert any(re.search(r"value=\s*\d+\.\d{3}", r) and "replicas=" in r for r in rows), rows
    assert _demo_processes() == []


def test_demo_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "adapter", "demo", "--interval", "2"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "--- t=" in line or proc.poll() is not None:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert "--- t=" in seen, seen
    assert "stopping" in rest
    assert _demo_processes() == []
