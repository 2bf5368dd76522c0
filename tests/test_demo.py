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


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    plot = tmp_path / "timeline.png"
    proc = subprocess.run([sys.executable, "-m", "adapter", "demo", "--duration", "20", "--interval", "4",
                           "--show-paths", "--plot", str(plot)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "adapter ready at https://127.0.0.1:" in out
    # the first table comes after the first samples: no row without a value, no replicas=0
    assert out.index("first samples after") < out.index("--- t=")
    table = out[out.index("--- t="):]
    assert "replicas=0 " not in table and "value=        -" not in table, table
    for title, metric in (("queue depth", "vllm_requests_waiting"), ("GPU utilization", "nvidia_gpu_utilization"),
                          ("pending requests", "triton_pending_requests"),
                          ("NeuronCore utilization", "neuron_core_utilization_ratio"), ("TGI", "tgi_requests_waiting")):
        rows = [line for line in table.splitlines() if title in line]
        assert rows, f"no rows for {title}"
        assert all(re.search(r"value=\s*\d+\.\d{3}", r) and "replicas=" in r for r in rows), rows
        assert f"metric {metric}" in table
    assert "GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/vllm_requests_waiting" in table
    assert "GET /apis/external.metrics.k8s.io/v1beta1/namespaces/chat/tgi_requests_waiting" in table
    assert f"metric, target and replicas: {plot}" in out, out[-500:]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _demo_processes() == []


def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "adapter", "demo", "--interval", "2", "--plot",
                             str(tmp_path / "ctrl-c.png")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if ("--- t=" in seen and "replicas=" in line) or proc.poll() is not None:
            break  # one row observed: the timeline has a point
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert "--- t=" in seen, seen
    assert "stopping" in rest
    assert (tmp_path / "ctrl-c.png").is_file(), rest  # the timeline is written on Ctrl-C too
    assert _demo_processes() == []
