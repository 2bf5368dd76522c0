"""The real adapter process, a real Prometheus: every URL form the HPA, the aggregator and kubectl use."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import Stack

CM1 = "/apis/custom.metrics.k8s.io/v1beta1"
CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"


def wait_metric(stack: Stack, path: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    status, doc = 0, {}
    while time.monotonic() < deadline:
        status, doc, _ = stack.adapter.get(path)
        if status == 200:
            return doc
        time.sleep(0.3)
    raise AssertionError(f"{path}: {status} {doc}")


def direct(stack: Stack, promql: str) -> dict[str, float]:
    return {str(r["metric"].get("pod") or r["metric"].get("node") or ""): float(r["value"][1])  # type: ignore
            for r in stack.prom.query(promql)}


def values(doc: dict[str, object]) -> dict[str, str]:
    return {i["describedObject"]["name"]: i["value"] for i in doc["items"]}  # type: ignore


def test_discovery_documents(stack: Stack) -> None:
    status, doc, ctype = stack.adapter.get("/apis")
    assert status == 200 and ctype == "application/json"
    assert doc["kind"] == "APIGroupList"
    assert [(g["name"], g["preferredVersion"]["version"]) for g in doc["groups"]] == [  # type: ignore
        ("custom.metrics.k8s.io", "v1beta2"), ("external.metrics.k8s.io", "v1beta1"),
        ("explain.accel-metrics.io", "v1alpha1")]
    status, doc, _ = stack.adapter.get("/apis/custom.metrics.k8s.io")
    assert status == 200 and doc["kind"] == "APIGroup"
    doc = wait_metric(stack, CM2)
    names = {r["name"]: r["namespaced"] for r in doc["resources"]}  # type: ignore
    assert names["pods/gpu_utilization"] is True
    assert names["namespaces/gpu_utilization"] is False
    assert names["nodes/node_temp_celsius"] is False
    assert names["pods/http_requests_per_second"] is True
    assert all(r["kind"] == "MetricValueList" and r["verbs"] == ["get"] for r in doc["resources"])  # type: ignore
    status, doc, _ = stack.adapter.get(EM)
    assert {r["name"] for r in doc["resources"]} == {"queue_depth", "cluster_queue_depth"}  # type: ignore


def test_aggregator_accept_header_gets_json(stack: Stack) -> None:
    status, doc, ctype = stack.adapter.get(CM2, headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert status == 200 and ctype == "application/json" and doc["kind"] == "APIResourceList"


@pytest.mark.parametrize("star", ["%2A", "*"])
def test_pods_star_v1beta2_equals_direct_promql(stack: Stack, star: str) -> None:
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/{star}/gpu_utilization")
    assert doc["kind"] == "MetricValueList" and doc["apiVersion"] == "custom.metrics.k8s.io/v1beta2"
    expected = direct(stack, 'avg(gpu_util{namespace="ns1"}) by (pod)')
    assert values(doc) == {"p1": "85", "p2": "33300m", "p3.dotted": "5"}
    assert {k: float(v) for k, v in expected.items()} == {"p1": 85.0, "p2": 33.3, "p3.dotted": 5.0}
    item = doc["items"][0]  # type: ignore[index]
    assert item["metric"] == {"name": "gpu_utilization", "selector": None}
    assert item["describedObject"] == {"kind": "Pod", "namespace": "ns1", "name": "p1", "apiVersion": "/v1"}
    # the timestamp is the sample's (within the last few seconds), not a fixed or future time
    ts = time.strptime(item["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    import calendar
    assert 0 <= time.time() - calendar.timegm(ts) < 30


def test_label_selector_resolved_from_kube_state_metrics(stack: Stack) -> None:
    doc = wait_metric(stack, f"{CM1}/namespaces/ns1/pods/%2A/gpu_utilization?labelSelector=app%3Dllm")
    assert doc["apiVersion"] == "custom.metrics.k8s.io/v1beta1"
    assert values(doc) == {"p1": "85", "p3.dotted": "5"}
    item = doc["items"][0]  # type: ignore[index]
    assert list(item) == ["describedObject", "metricName", "timestamp", "value", "selector"]
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/%2A/gpu_utilization?labelSelector=app+in+%28other%29")
    assert values(doc) == {"p2": "33300m"}
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/%2A/gpu_utilization"
                             "?labelSelector=app.kubernetes.io%2Fname%3Dvllm")
    assert values(doc) == {"p1": "85"}


def test_metric_label_selector(stack: Stack) -> None:
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization?metricLabelSelector=gpu%3D1")
    assert values(doc) == {"p1": "90"}
    assert doc["items"][0]["metric"]["selector"] == {"matchLabels": {"gpu": "1"}}  # type: ignore[index]


def test_named_pod_and_template_rule(stack: Stack) -> None:
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/p2/gpu_utilization")
    assert values(doc) == {"p2": "33300m"}
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/p1/http_requests_per_second")
    assert float(doc["items"][0]["value"]) == 0  # type: ignore[index]  # a constant counter: rate 0


def test_cluster_scoped_node_name_is_matched_literally(stack: Stack) -> None:
    doc = wait_metric(stack, f"{CM2}/nodes/node-1.example/node_temp_celsius")
    assert values(doc) == {"node-1.example": "61"}
    assert doc["items"][0]["describedObject"] == {"kind": "Node", "name": "node-1.example",  # type: ignore
                                                  "apiVersion": "/v1"}


def test_namespace_metric(stack: Stack) -> None:
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/metrics/gpu_utilization")
    assert doc["items"][0]["describedObject"] == {"kind": "Namespace", "name": "ns1", "apiVersion": "/v1"}  # type: ignore
    expected = stack.prom.query('avg(gpu_util{namespace="ns1"})')[0]["value"][1]  # type: ignore[index]
    assert float(doc["items"][0]["value"].rstrip("m")) / 1000 == pytest.approx(float(expected), abs=0.001)  # type: ignore


def test_external_metrics(stack: Stack) -> None:
    doc = wait_metric(stack, f"{EM}/namespaces/ns1/queue_depth?labelSelector=model%3Dllama")
    assert doc["kind"] == "ExternalMetricValueList"
    assert [(i["metricLabels"], i["value"]) for i in doc["items"]] == [({"model": "llama"}, "12")]  # type: ignore
    doc = wait_metric(stack, f"{EM}/namespaces/ns1/queue_depth")
    assert sorted(i["value"] for i in doc["items"]) == ["12", "3"]  # type: ignore
    doc = wait_metric(stack, f"{EM}/namespaces/anything/cluster_queue_depth")  # namespaced: false
    assert [i["value"] for i in doc["items"]] == ["7"]  # type: ignore


def test_nan_is_skipped_not_zero(stack: Stack) -> None:
    doc = wait_metric(stack, f"{CM2}/namespaces/ns1/pods/%2A/nan_metric")
    assert values(doc) == {"p2": "4"}
    status, doc, _ = stack.adapter.get(f"{CM2}/namespaces/ns1/pods/p1/nan_metric")
    assert status == 404 and doc["reason"] == "NotFound"
    assert "non-finite" in stack.adapter.log_text()


@pytest.mark.parametrize(("path", "code", "reason", "message"), [
    (f"{CM2}/namespaces/ns1/pods/%2A/no_such_metric", 404, "NotFound",
     "the server could not find the metric no_such_metric for pods"),
    (f"{CM2}/namespaces/ns1/pods/ghost/gpu_utilization", 404, "NotFound",
     "the server could not find the metric gpu_utilization for pods ghost"),
    (f"{CM2}/namespaces/ns1/pods/%2A/gpu_utilization?labelSelector=app%3Dnobody", 404, "NotFound",
     "the server could not find the metric gpu_utilization for pods with selector app=nobody"),
    (f"{CM2}/namespaces/ns1/pods/%2A/gpu_utilization?labelSelector=a+b", 400, "BadRequest", None),
    (f"{CM2}/namespaces/ns1/pods/%2A/gpu_utilization?metricLabelSelector=%3D%3D", 400, "BadRequest", None),
    (f"{EM}/namespaces/ns1/queue_depth?labelSelector=model+in+", 400, "BadRequest", None),
    (f"{CM2}/namespaces/ns1/foo", 400, "BadRequest", "invalid request path"),
    (f"{CM2}/widgets/w1/gpu_utilization", 404, "NotFound", None),
    ("/apis/custom.metrics.k8s.io/v9", 404, "NotFound", None),
    ("/openapi/v2", 404, "NotFound", None),
    ("/nowhere", 404, "NotFound", None),
])
def test_error_status_bodies(stack: Stack, path: str, code: int, reason: str, message: str | None) -> None:
    wait_metric(stack, f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization")
    status, doc, ctype = stack.adapter.get(path)
    assert status == code and ctype == "application/json"
    assert doc["kind"] == "Status" and doc["apiVersion"] == "v1" and doc["status"] == "Failure"
    assert doc["reason"] == reason and doc["code"] == code and doc["metadata"] == {}
    assert list(doc) [:5] == ["kind", "apiVersion", "metadata", "status", "message"]
    if message:
        assert doc["message"] == message
    assert "Traceback" not in str(doc)


def test_selector_injection_cannot_change_the_query(stack: Stack) -> None:
    # not a valid label value: rejected before it can reach PromQL
    status, _, _ = stack.adapter.get(f"{CM2}/namespaces/ns1/pods/%2A/gpu_utilization"
                                       "?metricLabelSelector=gpu%3Da%22%7D+or+vector(1)+%23")
    assert status == 400
    # a name in the path is quoted: it selects nothing rather than everything
    status, doc, _ = stack.adapter.get(f"{CM2}/namespaces/ns1/pods/p1%22%7D%20or%20vector(1)%20%23/gpu_utilization")
    assert status == 404
    assert doc["reason"] == "NotFound"
    status, doc, _ = stack.adapter.get(f"{EM}/namespaces/ns1%22%7D%20or%20vector(1)%20%23/queue_depth")
    assert status == 404 and doc["reason"] == "NotFound"


def test_health(stack: Stack) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        status, doc, _ = stack.adapter.get(path)
        assert status == 200 and doc == {"_text": "ok"}


def test_own_metrics(stack: Stack) -> None:
    status, doc, _ = stack.adapter.get("/metrics")
    text = str(doc.get("_text"))
    assert status == 200
    assert 'accel_adapter_requests_total{code="200",group="custom.metrics.k8s.io",version="v1beta2"}' in text
    assert "accel_adapter_prometheus_queries_total" in text
