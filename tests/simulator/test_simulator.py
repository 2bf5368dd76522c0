"""The simulator itself: curves, histograms, exposition format, label layouts, CLI, speed."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapter.simulator import Curve, Fleet
from adapter.simulator.curves import SHAPES
from adapter.simulator.histograms import VLLM_E2E_BUCKETS, LogNormal, MixtureHistogram
from tests.support.procs import free_port, python_module, running, wait_http


@pytest.mark.parametrize("shape", SHAPES)
def test_curve_integral_matches_numeric(shape: str) -> None:
    c = Curve(shape, period=120.0, base=0.1, amplitude=0.8)
    t0, t1, n = 1_700_000_013.0, 1_700_000_313.0, 30_000
    dt = (t1 - t0) / n
    numeric = sum(c.load(t0 + (i + 0.5) * dt, 0.3) for i in range(n)) * dt
    assert c.integral(t0, t1, 0.3) == pytest.approx(numeric, rel=1e-4)
    assert all(0.1 <= c.load(t0 + i, 0.3) <= 0.9 + 1e-12 for i in range(300))


def test_curve_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="shape"):
        Curve("square")
    with pytest.raises(ValueError, match="base"):
        Curve("wave", base=0.5, amplitude=0.6)


def test_histogram_quantile_emulation_lies_in_the_true_bucket() -> None:
    h = MixtureHistogram(VLLM_E2E_BUCKETS, LogNormal(2.0, 0.4), LogNormal(12.0, 0.5))
    for w in (0.0, 0.3, 0.9):
        for q in (0.5, 0.95):
            exact = h.quantile(q, w)
            assert h.cdf(exact, w) == pytest.approx(q, abs=1e-9)
            lo, hi = h.bucket_bounds(exact)
            assert lo <= h.histogram_quantile(q, w) <= hi


def test_values_are_deterministic_and_follow_the_curve() -> None:
    a = Fleet.build(seed=3, curve=Curve("ramp", period=100.0), origin=1000.0)
    b = Fleet.build(seed=3, curve=Curve("ramp", period=100.0), origin=1000.0)
    assert a.render(1234.5) == b.render(1234.5)
    low, high = a.truth(1200.0), a.truth(1250.0)  # ramp: load 0.2 at the period start, 0.8 at its middle
    key = next(iter(low.custom["vllm_requests_running"]))
    phase_free = [k for k in low.custom["vllm_requests_running"] if "llama3-8b" in k[1]]
    assert phase_free and low.custom["vllm_requests_running"][phase_free[0]] < \
        high.custom["vllm_requests_running"][phase_free[0]]
    assert key in high.custom["vllm_requests_running"]
    assert Fleet.build(seed=4, origin=1000.0).render(1234.5) != a.render(1234.5)


def _families(text: str) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:  # the Python parser adds _total to counters: key by the family name too
            out.setdefault(s.name, []).append(s.labels)
            if s.name == fam.name + "_total":
                out.setdefault(fam.name, []).append(s.labels)
    return out


def test_exposition_parses_and_has_every_exporter() -> None:
    fams = _families(Fleet.build(seed=1).render(2e9))
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "neuroncore_utilization_ratio",
                 "execution_errors_total", "vllm:num_requests_waiting", "vllm:time_to_first_token_seconds_bucket",
                 "nv_inference_queue_duration_us", "tgi_queue_size", "kube_pod_labels", "kube_node_info",
                 "kube_pod_container_resource_requests", "kube_pod_info"):
        assert fams.get(name), name
    resources = {lb["resource"] for lb in fams["kube_pod_container_resource_requests"]}
    assert {"nvidia_com_gpu", "nvidia_com_mig_3g_40gb", "aws_amazon_com_neuron", "aws_amazon_com_neuroncore",
            "aws_amazon_com_neurondevice", "cpu", "memory"} <= resources
    assert any("label_app_kubernetes_io_name" in lb for lb in fams["kube_pod_labels"])
    assert all(lb["provider_id"].startswith("aws:///us-west-2") for lb in fams["kube_node_info"])


@pytest.mark.parametrize("layout", ["exported", "direct"])
def test_dcgm_layouts(layout: str) -> None:
    util = _families(Fleet.build(seed=1, layout=layout).render(2e9))["DCGM_FI_DEV_GPU_UTIL"]
    idle = [lb for lb in util if not lb.get("exported_pod") and lb.get("namespace") in ("", "gpu-operator")]
    assert len(idle) == 3  # one idle GPU per GPU node (gpu-a, gpu-b, gpu-c)
    if layout == "exported":
        assert all(lb["namespace"] == "gpu-operator" for lb in util)
        assert sum(1 for lb in util if lb.get("exported_pod")) == len(util) - 3
    else:
        assert not any("exported_pod" in lb for lb in util)
        assert all(lb["pod"] == "" for lb in idle)  # dropped by Prometheus: the GPU has no pod at all


def test_scale_mode_renders_2000_pods() -> None:
    # how fast it renders is the benchmarks' business (no timed assertions in tests)
    fleet = Fleet.build(seed=1, namespaces=50, pods_per_namespace=40)
    assert len([p for p in fleet.topology.pods if p.namespace.startswith("bench-")]) == 2000
    first = fleet.render()  # formats label strings once
    text = fleet.render()
    assert text.count("\nDCGM_FI_DEV_GPU_UTIL{") == 2000
    assert first.count("\nDCGM_FI_DEV_GPU_UTIL{") == 2000


def test_cli_prints_listening_line_and_serves() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "adapter.simulator", "--port", "0", "--curve", "spike",
                             "--period", "2m"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # flushed at start; bounded by the process itself
        assert line.startswith("simulator listening on http://127.0.0.1:") and line.endswith("/metrics")
        with urllib.request.urlopen(line.split(" on ")[1], timeout=5) as r:
            assert b"DCGM_FI_DEV_GPU_UTIL" in r.read()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_truth_endpoint_and_health(tmp_path: Path) -> None:
    port = free_port()
    with running(python_module("adapter.simulator", "--port", str(port)), tmp_path / "sim.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=20, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/truth", timeout=5) as r:
            body = r.read().decode()
        assert '"nvidia_gpu_utilization_percent"' in body and '"external"' in body


def test_cli_rejects_bad_flags() -> None:
    res = subprocess.run([sys.executable, "-m", "adapter.simulator", "--period", "soon"], capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 2 and "--period" in res.stderr
