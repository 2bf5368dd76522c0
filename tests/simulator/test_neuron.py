"""aws-neuron preset: neuron-monitor instance series joined to pods through kube-state-metrics."""

from __future__ import annotations

import pytest

from tests.simulator.stack import Stack, custom_by_namespace, find_rule, render

GAUGES = ["neuron_core_utilization_ratio", "neuron_device_memory_used_bytes",
          "neuron_execution_latency_p50_seconds", "neuron_execution_latency_p99_seconds"]


@pytest.mark.parametrize("metric", GAUGES)
def test_neuron_pods_get_their_nodes_value(stack: Stack, metric: str) -> None:
    want = stack.fleet.truth().custom[metric]
    got = custom_by_namespace(stack, "aws-neuron", metric)
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-9), key


def test_join_selects_exactly_the_neuron_requesting_pods(stack: Stack) -> None:
    got = set(custom_by_namespace(stack, "aws-neuron", "neuron_core_utilization_ratio"))
    assert got == {("neuron-training", "llama-pretrain-0"), ("neuron-training", "llama-pretrain-1"),
                   next(p.key for p in stack.fleet.topology.pods if p.name.startswith("vllm-neuron"))}
    # on the same nodes, but requesting no Neuron resource: the CPU-only pods and neuron-monitor itself
    neuron_nodes = {h.node.name for h in stack.fleet.topology.neuron_nodes}
    bystanders = {p.key for p in stack.fleet.topology.pods if p.node in neuron_nodes} - got
    assert {ns for ns, _ in bystanders} == {"neuron-training", "ml-serving", "kube-system"}
    rule = find_rule("aws-neuron", "neuron_core_utilization_ratio")
    assert stack.prom.query(render(rule, 'namespace="kube-system"')) == []


def test_neuron_series_carry_no_pod_but_the_monitors(stack: Stack) -> None:
    """The raw series name the neuron-monitor pod (scrape target), never the workload."""
    res = stack.prom.query("count by (namespace, pod) (neuroncore_utilization_ratio)")
    assert {r["metric"]["namespace"] for r in res} == {"kube-system"}  # type: ignore[index]


def test_two_pods_on_one_node_share_the_node_value(stack: Stack) -> None:
    got = custom_by_namespace(stack, "aws-neuron", "neuron_core_utilization_ratio")
    assert got[("neuron-training", "llama-pretrain-0")] == got[("neuron-training", "llama-pretrain-1")]
