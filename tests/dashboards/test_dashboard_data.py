"""Every dashboard panel returns data from a real Prometheus scraping the simulator (exporters and
kube-state-metrics, HPA series included) and the adapter's own /metrics (HTTPS), while HPA-like
requests go to the adapter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dashboards.queries import ALL, ONE_HPA, load, queries, variable_queries
from tests.support.adapter import Adapter, adapter
from tests.support.procs import free_port, python_module, running, wait_http
from tests.support.prometheus import Prometheus, prometheus

PATHS = (  # what HPAs on the simulated fleet ask for, plus one unknown metric (a 404)
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/vllm_requests_waiting",
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/nvidia_gpu_utilization_percent",
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/chat/tgi_requests_waiting",
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/no_such_metric",
)


@dataclass
class Env:
    prom: Prometheus
    adapter: Adapter


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("dashboard")
    sim_port, adapter_port = free_port(), free_port()
    own = {"job_name": "accel-metrics-adapter", "scheme": "https", "tls_config": {"insecure_skip_verify": True},
           "static_configs": [{"targets": [f"127.0.0.1:{adapter_port}"]}]}
    sim = python_module("adapter.simulator", "--port", str(sim_port), "--seed", "3", "--curve", "wave",
                        "--period", "20s")
    with running(sim, tmp / "simulator.log") as proc:
        wait_http(f"http://127.0.0.1:{sim_port}/-/ready", timeout=30, proc=proc)
        with prometheus(tmp, [f"127.0.0.1:{sim_port}"], extra_scrape_configs=(own,)) as prom, \
                adapter(tmp, prom.url, "--preset", "nvidia-dcgm", "--preset", "vllm", "--preset", "tgi",
                        "--cache-ttl", "2s", port=adapter_port) as ad:
            prom.wait_for("vllm:num_requests_waiting", timeout=30)
            prom.wait_for('up{job="accel-metrics-adapter"} == 1', timeout=30)
            # HPA-like traffic for ~12 s (every path twice per round: cache hits too), so the
            # request, query and value-age histograms have rates in a 1m window
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                for path in PATHS * 2:
                    ad.get(path)
                time.sleep(0.5)
            prom.wait_for("accel_adapter_value_age_seconds_count > 0", timeout=15)
            time.sleep(2.5)  # two more scrapes after the traffic
            yield Env(prom, ad)


def _answers(prom: Prometheus, expr: str) -> int:
    return len(prom.query(expr))


@pytest.mark.parametrize("values", [ALL, ONE_HPA], ids=["all", "one-hpa"])
def test_every_variable_lists_values(env: Env, values: dict[str, str]) -> None:
    for name, selector, label in variable_queries(load(), values):
        got = env.prom.query(f"count by ({label}) ({selector})")
        assert got and all(r["metric"].get(label) for r in got), (name, selector)  # type: ignore[union-attr]


def test_every_panel_returns_data(env: Env) -> None:
    empty_panels, empty_targets = set(), []
    per_panel: dict[str, int] = {}
    for q in queries(load(), ALL):
        n = _answers(env.prom, q.expr)
        per_panel[q.panel] = per_panel.get(q.panel, 0) + n
        if n == 0 and not q.only_when_it_happens:
            empty_targets.append(f"{q.panel} {q.ref}: {q.expr}")
    empty_panels = {p for p, n in per_panel.items() if n == 0}
    assert not empty_panels, empty_panels
    assert not empty_targets, "\n".join(empty_targets)


def test_hpa_panels_for_one_hpa(env: Env) -> None:
    for q in queries(load(), ONE_HPA):
        if "horizontalpodautoscaler" not in q.expr:
            continue
        got = env.prom.query(q.expr)
        assert got, (q.panel, q.expr)
        assert {r["metric"].get("horizontalpodautoscaler", "vllm-llama3-8b") for r in got} == {"vllm-llama3-8b"}  # type: ignore[union-attr]


def test_request_panel_shows_the_404(env: Env) -> None:
    got = env.prom.query('sum by (code) (accel_adapter_requests_total{group="custom.metrics.k8s.io"})')
    codes = {r["metric"]["code"] for r in got}  # type: ignore[index]
    assert {"200", "404"} <= codes, codes
