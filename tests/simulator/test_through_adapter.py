"""Every preset metric through the real adapter process (HTTPS, the HPA's URLs) equals the fleet's
ground truth, which test_dcgm/test_neuron/test_servers also check with independent direct PromQL."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.demo_hpa import parse_quantity
from tests.simulator.stack import Stack, namespaces
from tests.support.adapter import Adapter, adapter

PRESETS = ("nvidia-dcgm", "aws-neuron", "vllm", "triton", "tgi")
GAUGES = [  # exact as soon as Prometheus holds two samples (rates need a full window: test_rates.py)
    "nvidia_gpu_utilization_percent", "nvidia_gpu_utilization_max_percent", "nvidia_gpu_engine_active_ratio",
    "nvidia_gpu_engine_active_max_ratio", "nvidia_gpu_tensor_active_ratio", "nvidia_gpu_tensor_active_max_ratio",
    "nvidia_gpu_memory_used_ratio", "nvidia_gpu_memory_used_max_ratio", "nvidia_gpu_power_watts",
    "nvidia_gpu_power_max_watts", "neuron_core_utilization_ratio", "neuron_device_memory_used_bytes",
    "neuron_execution_latency_p50_seconds", "neuron_execution_latency_p99_seconds",
    "vllm_requests_waiting", "vllm_requests_running", "vllm_kv_cache_usage_ratio",
    "vllm_time_to_first_token_p95_seconds", "vllm_e2e_request_latency_p50_seconds",
    "triton_pending_requests", "triton_queue_time_per_request_microseconds",
    "tgi_requests_waiting", "tgi_requests_running", "tgi_request_duration_p95_seconds",
]
EXTERNAL = ["vllm_requests_waiting", "vllm_kv_cache_usage_ratio", "triton_pending_requests", "tgi_requests_waiting"]
EXTERNAL_KEY = {"vllm": "model_name", "triton": "model", "tgi": "service"}


@pytest.fixture(scope="module")
def ad(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapter]:
    tmp: Path = tmp_path_factory.mktemp("presets-adapter")
    presets = [a for p in PRESETS for a in ("--preset", p)]
    # a short TTL so that a retry below sees a fresh query, not a cached answer from a scrape gap
    with adapter(tmp, stack.prom.url, *presets, "--cache-ttl", "1s") as a:
        yield a


def pods_values(ad: Adapter, ns: str, metric: str, selector: str = "") -> dict[tuple[str, str], float]:
    q = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
    status, doc, _ = ad.get(f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/%2A/{metric}{q}")
    if status == 404:
        return {}
    assert status == 200, doc
    return {(ns, i["describedObject"]["name"]): parse_quantity(i["value"]) for i in doc["items"]}  # type: ignore


def test_discovery_lists_every_preset_metric(ad: Adapter, stack: Stack) -> None:
    status, doc, _ = ad.get("/apis/custom.metrics.k8s.io/v1beta2")
    assert status == 200
    names = {r["name"] for r in doc["resources"]}  # type: ignore[union-attr]
    for metric in GAUGES:
        assert f"pods/{metric}" in names
    _status, doc, _ = ad.get("/apis/external.metrics.k8s.io/v1beta1")
    names = {r["name"] for r in doc["resources"]}  # type: ignore[union-attr]
    assert set(EXTERNAL) <= names


@pytest.mark.parametrize("metric", GAUGES)
def test_pods_metric_equals_ground_truth(ad: Adapter, stack: Stack, metric: str) -> None:
    want = stack.fleet.truth().custom[metric]
    got: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + 15  # bounded: a scrape landing mid-query can hide a series once
    while True:
        got = {}
        for ns in namespaces(stack.fleet):
            got.update(pods_values(ad, ns, metric))
        if set(got) == set(want) or time.monotonic() > deadline:
            break
        time.sleep(1.2)
    # same objects: the exporter pods, pods without accelerators and idle servers are left out, not 0
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-6, abs=1e-3), key


def test_label_selector_from_kube_state_metrics(ad: Adapter, stack: Stack) -> None:
    want = {k: v for k, v in stack.fleet.truth().custom["nvidia_gpu_utilization_percent"].items()
            if k[1].startswith("vllm-llama3-8b-")}
    assert want
    got = pods_values(ad, "ml-serving", "nvidia_gpu_utilization_percent", "app=llama3-8b")
    assert got == {k: pytest.approx(v, abs=1e-3) for k, v in want.items()}


@pytest.mark.parametrize("metric", EXTERNAL)
def test_external_per_model_equals_ground_truth(ad: Adapter, stack: Stack, metric: str) -> None:
    preset = metric.split("_", maxsplit=1)[0]
    label = EXTERNAL_KEY[preset]
    for (ns, model), v in stack.fleet.truth().external[metric].items():
        sel = urllib.parse.quote(f"{label}={model}")
        status, doc, _ = ad.get(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector={sel}")
        assert status == 200, (ns, model, doc)
        total = sum(parse_quantity(i["value"]) for i in doc["items"])  # type: ignore[union-attr]
        assert total == pytest.approx(v, rel=1e-6, abs=1e-3), (ns, model)
