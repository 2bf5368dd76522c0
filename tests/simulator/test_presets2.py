"""Presets 2.0 on the simulated fleet: composite saturation (vllm, tgi, triton, sglang, nim), SGLang and NIM
signals, vLLM's old KV-cache name, llm-d's gateway queue and WVA's desired replicas (served while the model
has zero pods), each by direct PromQL and through the real adapter, against the ground truth; and params."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from adapter.demo_hpa import parse_quantity
from tests.simulator.stack import Stack, by_label, custom_by_namespace, find_rule, namespaces, render
from tests.support.adapter import Adapter, adapter

CUSTOM = [  # (preset, metric): gauges and ratios of rates, exact with a flat load curve
    ("vllm", "vllm_saturation_ratio"), ("tgi", "tgi_saturation_ratio"), ("triton", "triton_saturation_ratio"),
    ("sglang", "sglang_requests_waiting"), ("sglang", "sglang_requests_running"),
    ("sglang", "sglang_token_usage_ratio"), ("sglang", "sglang_time_to_first_token_p95_seconds"),
    ("sglang", "sglang_e2e_request_latency_p95_seconds"), ("sglang", "sglang_saturation_ratio"),
    ("nim", "nim_requests_waiting"), ("nim", "nim_requests_running"), ("nim", "nim_kv_cache_usage_ratio"),
    ("nim", "nim_time_to_first_token_p95_seconds"), ("nim", "nim_e2e_request_latency_p95_seconds"),
    ("nim", "nim_saturation_ratio"),
]
EXTERNAL = [
    ("vllm", "vllm_saturation_ratio"), ("tgi", "tgi_saturation_ratio"), ("triton", "triton_saturation_ratio"),
    ("sglang", "sglang_requests_waiting"), ("sglang", "sglang_token_usage_ratio"),
    ("sglang", "sglang_saturation_ratio"), ("nim", "nim_requests_waiting"), ("nim", "nim_kv_cache_usage_ratio"),
    ("nim", "nim_time_to_first_token_p95_seconds"), ("nim", "nim_saturation_ratio"),
    ("llm-d", "llmd_gateway_queue_requests"), ("llm-d", "wva_desired_replicas"),
]
KEY = {"vllm": "model_name", "triton": "model", "tgi": "service", "sglang": "model_name", "nim": "model_name",
       "llmd_gateway_queue_requests": "target_model_name", "wva_desired_replicas": "variant_name"}
NS_LABEL = {"wva_desired_replicas": "exported_namespace"}
PRESETS = ("vllm", "tgi", "triton", "sglang", "nim", "llm-d")
K = TypeVar("K")


def _ids(params: list[tuple[str, str]]) -> list[str]:
    return [m for _, m in params]


def _key(preset: str, metric: str) -> str:
    return KEY.get(metric, KEY.get(preset, ""))


@pytest.fixture(scope="module")
def ad(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapter]:
    tmp: Path = tmp_path_factory.mktemp("presets2-adapter")
    with adapter(tmp, stack.prom.url, *(a for p in PRESETS for a in ("--preset", p)), "--cache-ttl", "1s") as a:
        yield a


def _external(ad: Adapter, ns: str, metric: str, label: str, selector: str = "",
              strict: bool = True) -> dict[str, float] | None:
    q = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
    status, doc, _ = ad.get(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}{q}")
    if status == 404 or (status != 200 and not strict):
        return None
    assert status == 200, doc
    items = doc["items"]
    assert isinstance(items, list)
    out = {str(i["metricLabels"].get(label, "")): parse_quantity(i["value"]) for i in items}
    assert len(out) == len(items), items
    return out


@pytest.mark.parametrize(("preset", "metric"), CUSTOM, ids=_ids(CUSTOM))
def test_per_pod_direct_promql(stack: Stack, preset: str, metric: str) -> None:
    want = stack.fleet.truth().custom[metric]
    assert want, f"no ground truth for {metric}"
    got = custom_by_namespace(stack, preset, metric)
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-6), key


@pytest.mark.parametrize(("preset", "metric"), EXTERNAL, ids=_ids(EXTERNAL))
def test_per_model_direct_promql(stack: Stack, preset: str, metric: str) -> None:
    want = stack.fleet.truth().external[metric]
    assert want, f"no ground truth for {metric}"
    rule = find_rule(preset, metric, external=True)
    label, ns_label = _key(preset, metric), NS_LABEL.get(metric, "namespace")
    for (ns, model), v in want.items():
        res = stack.prom.query(render(rule, f'{ns_label}="{ns}",{label}="{model}"', group_by=""))
        assert by_label(res, label) == {model: pytest.approx(v, rel=1e-6)}, (ns, model)


def _pods(ad: Adapter, stack: Stack, metric: str) -> dict[tuple[str, str], float]:
    got: dict[tuple[str, str], float] = {}
    for ns in namespaces(stack.fleet):
        status, doc, _ = ad.get(f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/%2A/{metric}")
        if status == 404:
            continue
        assert status == 200, doc
        got.update({(ns, i["describedObject"]["name"]): parse_quantity(i["value"])  # type: ignore[index]
                    for i in doc["items"]})  # type: ignore[union-attr]
    return got


def _until_same_keys(read: Callable[[], dict[K, float]], want: dict[K, float]) -> dict[K, float]:
    """Bounded retry (15 s): a scrape landing mid-query can hide a series once (as test_through_adapter)."""
    deadline = time.monotonic() + 15
    while True:
        got = read()
        if set(got) == set(want) or time.monotonic() > deadline:
            return got
        time.sleep(1.2)


@pytest.mark.parametrize(("preset", "metric"), CUSTOM, ids=_ids(CUSTOM))
def test_per_pod_through_the_adapter(ad: Adapter, stack: Stack, preset: str, metric: str) -> None:
    want = stack.fleet.truth().custom[metric]
    got = _until_same_keys(lambda: _pods(ad, stack, metric), want)
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-6, abs=1e-3), key


@pytest.mark.parametrize(("preset", "metric"), EXTERNAL, ids=_ids(EXTERNAL))
def test_per_model_through_the_adapter(ad: Adapter, stack: Stack, preset: str, metric: str) -> None:
    want = stack.fleet.truth().external[metric]
    by_ns: dict[str, dict[str, float]] = {}
    for (ns, model), v in want.items():
        by_ns.setdefault(ns, {})[model] = v
    label = _key(preset, metric)
    for ns, models in by_ns.items():
        got = _until_same_keys(lambda ns=ns: _external(ad, ns, metric, label, strict=False) or {}, models)
        assert got == {m: pytest.approx(v, rel=1e-6, abs=1e-3) for m, v in models.items()}, ns


def test_vllm_old_kv_cache_name_is_matched(stack: Stack, ad: Adapter) -> None:
    """The Neuron vLLM exports vllm:gpu_cache_usage_perc (before 0.9); the others vllm:kv_cache_usage_perc."""
    names = {r["metric"]["__name__"] for r in stack.prom.query('{__name__=~"vllm:(kv|gpu)_cache_usage_perc"}')}  # type: ignore[index]
    assert names == {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}
    old = [p for p in stack.fleet.topology.servers if p.legacy_names]
    assert old
    want = stack.fleet.truth().custom["vllm_kv_cache_usage_ratio"]
    status, doc, _ = ad.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/"
                            "vllm_kv_cache_usage_ratio")
    assert status == 200
    got = {i["describedObject"]["name"]: parse_quantity(i["value"]) for i in doc["items"]}  # type: ignore[union-attr,index]
    for s in old:
        assert got[s.pod.name] == pytest.approx(want[s.pod.key], abs=1e-3)


def test_scale_to_zero_model_is_served_while_it_has_no_pods(stack: Stack, ad: Adapter) -> None:
    """HPAScaleToZero: a model whose Deployment is at zero pods keeps its External metrics (the demand is
    queued at the gateway, and WVA asks for a replica), so an HPA with minReplicas 0 can scale it up."""
    topo = stack.fleet.topology
    cold = [d for d in topo.demand if not any(p.deployment == d.deployment for p in topo.pods)]
    assert cold, "the simulated fleet has a model at zero pods"
    truth = stack.fleet.truth().external
    for d in cold:
        queued = _external(ad, d.namespace, "llmd_gateway_queue_requests", "target_model_name",
                           f"inference_pool={d.pool}")
        assert queued == {d.model: pytest.approx(truth["llmd_gateway_queue_requests"][(d.namespace, d.model)])}
        assert queued[d.model] > 0
        wanted = _external(ad, d.namespace, "wva_desired_replicas", "variant_name", f"variant_name={d.deployment}")
        assert wanted == {d.deployment: truth["wva_desired_replicas"][(d.namespace, d.deployment)]}
        assert wanted[d.deployment] >= 1
    # and no pod metric exists for it: nothing to average over, which is why these are External
    status, doc, _ = ad.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/vllm_requests_waiting"
                            "?labelSelector=app%3Dvllm-granite-8b")
    assert status in (200, 404)
    assert status == 404 or doc["items"] == []


def test_both_gateway_metric_names_count_once(stack: Stack) -> None:
    rule = find_rule("llm-d", "llmd_gateway_queue_requests", external=True)
    both = stack.prom.query(render(rule, 'namespace="ml-serving"', group_by=""))
    one = stack.prom.query('sum by (target_model_name) (llm_d_epp_flow_control_queue_size{namespace="ml-serving"})')
    assert by_label(both, "target_model_name") == by_label(one, "target_model_name")


@pytest.fixture(scope="module")
def ad_params(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapter]:
    tmp: Path = tmp_path_factory.mktemp("presets2-params")
    cfg = tmp / "rules.yaml"
    cfg.write_text("presets:\n- {name: vllm, params: {queuePerReplica: 2, kvCacheTarget: 0.5}}\n- tgi\n")
    with adapter(tmp, stack.prom.url, "--config", str(cfg), "--cache-ttl", "1s") as a:
        yield a


def test_params_change_the_saturation(stack: Stack, ad_params: Adapter) -> None:
    truth = stack.fleet.truth().custom
    status, doc, _ = ad_params.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/"
                                   "vllm_saturation_ratio")
    assert status == 200, doc
    got = {("ml-serving", i["describedObject"]["name"]): parse_quantity(i["value"])  # type: ignore[index]
           for i in doc["items"]}  # type: ignore[union-attr]
    assert got
    for key, v in got.items():
        want = max(truth["vllm_requests_waiting"][key] / 2, truth["vllm_kv_cache_usage_ratio"][key] / 0.5)
        assert v == pytest.approx(want, abs=1e-3), key
        assert v != pytest.approx(truth["vllm_saturation_ratio"][key], abs=1e-3) or want == truth[
            "vllm_saturation_ratio"][key]
