"""The explain API group served by the real adapter process over HTTPS, with a real Prometheus.

The HPA's request and the explanation of it run through the same serving path: after the HPA's
query the explanation is answered from the same cache entry (and says so, with its age and TTL).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapter.api.requestinfo import request_info, sar_attributes
from tests.explain.rules import RULES
from tests.support.adapter import Adapter, adapter
from tests.support.stack import exporter_and_prometheus, get_ok

EXPLAIN = "/apis/explain.accel-metrics.io/v1alpha1"
CM = "/apis/custom.metrics.k8s.io/v1beta2"


SERIES: list[dict[str, object]] = [
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": "llm", "pod": "vllm-0"}, "value": 12},
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": "llm", "pod": "vllm-1"}, "value": "NaN"},
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": "llm", "pod": "web-0"}, "value": 3},
    {"name": "kube_pod_labels", "labels": {"namespace": "llm", "pod": "vllm-0", "label_app": "vllm"}, "value": 1},
    {"name": "kube_pod_labels", "labels": {"namespace": "llm", "pod": "vllm-1", "label_app": "vllm"}, "value": 1},
    {"name": "kube_pod_labels", "labels": {"namespace": "llm", "pod": "web-0", "label_app": "web"}, "value": 1},
    {"name": "queue_depth", "labels": {"namespace": "llm", "model": "llama"}, "value": 7},
]


@pytest.fixture(scope="module")
def ad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapter]:
    tmp = tmp_path_factory.mktemp("explain-api")
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    with exporter_and_prometheus(tmp, SERIES, wait_for="kube_pod_labels", min_results=3) as (_, prom):
        prom.wait_for("vllm_num_requests_waiting", min_results=3)
        with adapter(tmp, prom.url, "--config", str(rules), "--cache-ttl", "30s") as a:
            get_ok(a, f"{CM}/namespaces/llm/pods/vllm-0/vllm_requests_waiting")
            yield a


def test_explains_what_the_hpa_was_served_from_the_same_cache_entry(ad: Adapter) -> None:
    q = "?labelSelector=app%3Dvllm"
    hpa = get_ok(ad, f"{CM}/namespaces/llm/pods/%2A/vllm_requests_waiting{q}")
    assert [i["describedObject"]["name"] for i in hpa["items"]] == ["vllm-0"]  # type: ignore[index,union-attr]
    status, doc, ctype = ad.get(f"{EXPLAIN}/namespaces/llm/pods/%2A/vllm_requests_waiting{q}")
    assert status == 200 and ctype.startswith("application/json")
    assert doc["kind"] == "Explanation"
    assert doc["request"] == {  # type: ignore[comparison-overlap]
        "api": "custom.metrics.k8s.io",
        "path": "/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/%2A/vllm_requests_waiting"
                "?labelSelector=app%3Dvllm",
        "namespace": "llm", "resource": "pods", "name": "*", "metric": "vllm_requests_waiting",
        "labelSelector": "app=vllm", "metricLabelSelector": ""}
    (q0,) = doc["queries"]  # type: ignore[misc]
    cache: dict[str, Any] = q0["cache"]
    assert cache["state"] == "hit" and cache["ttlSeconds"] == 30 and 0 <= cache["ageSeconds"] < 30
    assert doc["scope"] == "cluster"  # one query for every pod of every namespace, split per object
    objs = {o["name"]: o for o in doc["objects"]}  # type: ignore[union-attr]
    assert objs["vllm-0"]["served"] and objs["vllm-0"]["value"] == 12
    assert objs["vllm-1"]["reason"] == "non_finite"
    assert "web-0" in doc["notSelected"]  # type: ignore[operator]
    assert doc["served"] is True


def test_unknown_metric_is_explained_not_404(ad: Adapter) -> None:
    status, doc, _ = ad.get(f"{EXPLAIN}/namespaces/llm/pods/%2A/vllm_request_waiting")
    assert status == 200
    assert doc["served"] is False and doc["error"]["code"] == 404  # type: ignore[index]
    assert "similar metrics: vllm_requests_waiting" in doc["diagnosis"][0]  # type: ignore[index]


def test_external_explanation(ad: Adapter) -> None:
    doc = get_ok(ad, f"{EXPLAIN}/namespaces/llm/externalmetrics/queue_depth?labelSelector=model%3Dllama")
    assert doc["request"]["path"] == ("/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/queue_depth"  # type: ignore[index]
                                      "?labelSelector=model%3Dllama")
    assert doc["objects"][0]["value"] == 7  # type: ignore[index]


def test_discovery_and_bad_selector(ad: Adapter) -> None:
    doc = get_ok(ad, EXPLAIN)
    assert doc["groupVersion"] == "explain.accel-metrics.io/v1alpha1"
    names = [r["name"] for r in doc["resources"]]  # type: ignore[union-attr]
    assert "pods/vllm_requests_waiting" in names and "externalmetrics/queue_depth" in names
    assert get_ok(ad, "/apis/explain.accel-metrics.io")["preferredVersion"] == {
        "groupVersion": "explain.accel-metrics.io/v1alpha1", "version": "v1alpha1"}
    groups = get_ok(ad, "/apis")["groups"]  # listed beside the metrics APIs, as the aggregator expects
    assert [g["name"] for g in groups] == [  # type: ignore[union-attr,index]
        "custom.metrics.k8s.io", "external.metrics.k8s.io", "explain.accel-metrics.io"]
    status, doc, _ = ad.get(f"{EXPLAIN}/namespaces/llm/pods/%2A/vllm_requests_waiting?labelSelector=a%3D%3D%3Db")
    assert status == 400 and doc["kind"] == "Status"


def test_authorization_attributes_are_the_explain_group() -> None:
    """What the SubjectAccessReview asks for an explanation: the chart's ClusterRole grants exactly this."""
    info = request_info("GET", f"{EXPLAIN}/namespaces/llm/pods/%2A/vllm_requests_waiting", "labelSelector=app%3Dv")
    assert sar_attributes(info) == {"resourceAttributes": {
        "namespace": "llm", "verb": "get", "group": "explain.accel-metrics.io", "version": "v1alpha1",
        "resource": "pods", "subresource": "vllm_requests_waiting", "name": "*"}}
    info = request_info("GET", f"{EXPLAIN}/namespaces/llm/externalmetrics/queue_depth")
    assert sar_attributes(info)["resourceAttributes"] == {  # type: ignore[comparison-overlap]
        "namespace": "llm", "verb": "get", "group": "explain.accel-metrics.io", "version": "v1alpha1",
        "resource": "externalmetrics", "name": "queue_depth"}


def test_serving_path_unchanged_for_the_hpa(ad: Adapter) -> None:
    """The HPA's answer does not change because explanations were made in between."""
    path = f"{CM}/namespaces/llm/pods/%2A/vllm_requests_waiting?labelSelector=app%3Dvllm"
    before = get_ok(ad, path)
    ad.get(f"{EXPLAIN}/namespaces/llm/pods/%2A/vllm_requests_waiting?labelSelector=app%3Dvllm")
    after = get_ok(ad, path)
    assert before["items"] == after["items"]
