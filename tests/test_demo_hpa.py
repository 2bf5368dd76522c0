"""The demo's HPA view: starts at the Deployment's replicas, keeps them when the metric cannot be read,
and names the metric and API path of every row."""

from __future__ import annotations

from adapter.demo import WORKLOADS
from adapter.demo_hpa import HpaState, Workload
from adapter.simulator.demo import demo_topology

W = Workload("vLLM llama3-8b: queue depth", "pods", "ml-serving", "vllm_requests_waiting", "app=llama3-8b",
             target=5.0, min_replicas=1, max_replicas=10, replicas=3)
EXT = Workload("TGI: queue", "external", "chat", "tgi_requests_waiting", "", target=8.0, min_replicas=1,
               max_replicas=8, average=True, replicas=2)


def _pods(*values: str) -> dict[str, object]:
    return {"items": [{"describedObject": {"name": f"p{i}"}, "value": v} for i, v in enumerate(values)]}


def test_starts_at_the_deployment_replicas() -> None:
    assert HpaState(W).replicas == 3


def test_unreadable_metric_keeps_replicas_like_the_controller() -> None:
    st = HpaState(W)
    st.observe(404, {"message": 'the server could not find the metric "vllm_requests_waiting"'}, 0.0)
    assert st.replicas == 3 and st.current is None
    assert st.reason == "FailedGetMetrics"
    assert "keeping 3 replicas" in st.render()
    st.observe(200, _pods("10", "10", "10"), 5.0)  # twice the target: scales up
    assert st.replicas == 6
    st.observe(503, {"message": "Prometheus is unavailable"}, 10.0)
    assert st.replicas == 6  # never drops to 0 on an error
    assert [p.replicas for p in st.history] == [3, 6, 6]
    assert [p.value for p in st.history] == [None, 10.0, None]


def test_empty_answer_keeps_replicas() -> None:
    st = HpaState(EXT)
    st.observe(200, {"items": []}, 0.0)
    assert st.replicas == 2 and "no values" in st.render()


def test_row_names_metric_target_and_path() -> None:
    st = HpaState(W)
    st.observe(200, _pods("4", "5", "6"), 0.0)
    row = st.render()
    assert "Pods metric vllm_requests_waiting (averageValue 5, selector app=llama3-8b)" in row
    assert "GET" not in row
    assert ("GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/ml-serving/pods/%2A/vllm_requests_waiting"
            "?labelSelector=app%3Dllama3-8b") in st.render(show_path=True)
    assert EXT.path() == "/apis/external.metrics.k8s.io/v1beta1/namespaces/chat/tgi_requests_waiting"
    assert EXT.spec() == "External metric tgi_requests_waiting (averageValue 8)"


def test_workloads_match_the_simulated_hpas_and_deployments() -> None:
    """The demo drives the same HPAs the simulator reports through kube-state-metrics (the dashboard)."""
    topo = demo_topology(1)
    hpas = {(h.namespace, m.name): (h, m) for h in topo.hpas for m in h.metrics}
    for w in WORKLOADS:
        h, m = hpas[(w.namespace, w.metric)]
        assert (m.kind, m.target, h.min_replicas, h.max_replicas) == (w.metric_type, w.target, w.min_replicas,
                                                                      w.max_replicas), w.title
        pods = [p for p in topo.pods if p.namespace == h.namespace and p.deployment == h.deployment]
        assert len(pods) == w.replicas, w.title
