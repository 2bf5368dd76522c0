"""nvidia-dcgm preset against a real Prometheus scraping the simulator (mixed dcgm layouts)."""

from __future__ import annotations

import pytest

from tests.simulator.stack import Stack, custom_by_namespace, find_rule, render

DCGM_METRICS = [
    "nvidia_gpu_utilization_percent", "nvidia_gpu_utilization_max_percent",
    "nvidia_gpu_engine_active_ratio", "nvidia_gpu_engine_active_max_ratio",
    "nvidia_gpu_tensor_active_ratio", "nvidia_gpu_tensor_active_max_ratio",
    "nvidia_gpu_memory_used_ratio", "nvidia_gpu_memory_used_max_ratio",
    "nvidia_gpu_power_watts", "nvidia_gpu_power_max_watts",
]


def _pod(stack: Stack, ns: str, prefix: str) -> str:
    names = [p.name for p in stack.fleet.topology.pods if p.namespace == ns and p.name.startswith(prefix)]
    assert len(names) >= 1, (ns, prefix)
    return names[0]


@pytest.mark.parametrize("metric", DCGM_METRICS)
def test_every_pod_gets_exactly_its_gpus_value(stack: Stack, metric: str) -> None:
    truth = stack.fleet.truth()
    got = custom_by_namespace(stack, "nvidia-dcgm", metric)
    want = truth.custom[metric]
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    assert not extra and not missing, f"attributed to {extra}, missing {missing}"
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-9, abs=1e-9), key


def test_both_layouts_present_and_attributed(stack: Stack) -> None:
    """ml-serving runs on the "exported" node, chat/training/research on the "direct" one."""
    exported = stack.prom.query('count by (exported_namespace) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{exported_pod!=""})')
    direct = stack.prom.query('count by (namespace) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{exported_pod="",pod!=""})')
    assert {r["metric"]["exported_namespace"] for r in exported} == {"ml-serving"}  # type: ignore[index]
    assert {r["metric"]["namespace"] for r in direct} >= {"chat", "training", "research", "gpu-operator"}  # type: ignore[index]
    got = custom_by_namespace(stack, "nvidia-dcgm", "nvidia_gpu_engine_active_ratio")
    assert {ns for ns, _ in got} == {"ml-serving", "chat", "training", "research"}


def test_exporter_pod_never_gets_a_value(stack: Stack) -> None:
    """The idle GPUs carry the exporter's namespace/pod (exported layout): still nothing for it."""
    exporters = [p.name for p in stack.fleet.topology.pods if p.namespace == "gpu-operator"]
    raw = stack.prom.query('DCGM_FI_DEV_GPU_UTIL{namespace="gpu-operator",exported_pod=""}')
    assert raw, "the simulator should expose the exporter-labelled idle GPU"
    for metric in DCGM_METRICS:
        rule = find_rule("nvidia-dcgm", metric)
        q = render(rule, f'namespace="gpu-operator",pod=~"{"|".join(exporters)}"')
        assert stack.prom.query(q) == [], metric
        assert stack.prom.query(render(rule, 'namespace="gpu-operator"')) == [], metric


def test_pods_without_gpus_are_left_out(stack: Stack) -> None:
    got = custom_by_namespace(stack, "nvidia-dcgm", "nvidia_gpu_utilization_percent")
    pods = stack.fleet.topology.pods
    no_gpu = [p.key for p in pods if not any(r.startswith("nvidia.com/") for r, _, _ in p.requests)]
    assert no_gpu and not set(no_gpu) & set(got)


def test_mig_pods_get_prof_metrics_not_util(stack: Stack) -> None:
    alice = ("research", "notebook-alice-0")
    engine = custom_by_namespace(stack, "nvidia-dcgm", "nvidia_gpu_engine_active_ratio")
    util = custom_by_namespace(stack, "nvidia-dcgm", "nvidia_gpu_utilization_percent")
    assert alice in engine and 0 < engine[alice] < 1
    assert alice not in util  # DCGM_FI_DEV_GPU_UTIL is not reported for MIG instances


def test_multi_gpu_pod_average_and_max(stack: Stack) -> None:
    pod = ("ml-serving", _pod(stack, "ml-serving", "vllm-llama3-70b"))
    gpus = [g for g in stack.fleet.topology.gpus if g.owner is not None and g.owner.key == pod]
    assert len(gpus) == 4
    per_gpu = stack.prom.query(f'DCGM_FI_DEV_GPU_UTIL{{exported_pod="{pod[1]}"}}')
    values = [float(r["value"][1]) for r in per_gpu]  # type: ignore[index]
    assert len(values) == 4 and len(set(values)) > 1
    avg = custom_by_namespace(stack, "nvidia-dcgm", "nvidia_gpu_utilization_percent")[pod]
    mx = custom_by_namespace(stack, "nvidia-dcgm", "nvidia_gpu_utilization_max_percent")[pod]
    assert avg == pytest.approx(sum(values) / 4) and mx == max(values) and mx > avg


def test_selector_subset_only_returns_requested_pods(stack: Stack) -> None:
    pod = _pod(stack, "ml-serving", "vllm-llama3-8b")
    rule = find_rule("nvidia-dcgm", "nvidia_gpu_utilization_percent")
    res = stack.prom.query(render(rule, f'namespace="ml-serving",pod="{pod}"'))
    assert [r["metric"]["pod"] for r in res] == [pod]  # type: ignore[index]
