"""adapter.explain.autoscaler: one HPA sync replayed from JSON (pure; no cluster, no adapter)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.explain.autoscaler import analyse
from adapter.explain.requests import metric_request, selector_string


def explanation(values: dict[str, float | None], reasons: dict[str, str] | None = None) -> dict[str, Any]:
    objs = [{"name": n, "served": v is not None, "value": v, "reason": (reasons or {}).get(n, "")}
            for n, v in values.items()]
    return {"kind": "Explanation", "served": any(v is not None for v in values.values()), "objects": objs,
            "summary": "", "ageLimitSeconds": 300}


def pod(name: str, phase: str = "Running", ready: bool = True, deleted: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleted:
        meta["deletionTimestamp"] = "2026-12-02T05:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def hpa_obj(metrics: list[dict[str, Any]], behavior: dict[str, Any] | None = None, lo: int = 1,
            hi: int = 10) -> dict[str, Any]:
    spec: dict[str, Any] = {"scaleTargetRef": {"kind": "Deployment", "name": "w", "apiVersion": "apps/v1"},
                            "minReplicas": lo, "maxReplicas": hi, "metrics": metrics}
    if behavior is not None:
        spec["behavior"] = behavior
    return {"metadata": {"name": "w", "namespace": "ns"}, "spec": spec, "status": {"desiredReplicas": 3}}


PODS = {"type": "Pods", "pods": {"metric": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
SCALE = {"spec": {"replicas": 3}, "status": {"replicas": 3, "selector": "app=w"}}


def test_pending_pod_counts_zero_on_scale_up() -> None:
    r = analyse(hpa_obj([PODS]), SCALE, [pod("a"), pod("b"), pod("p", phase="Pending")],
                [explanation({"a": 30, "b": 30})], 0.0)
    m = r["metrics"][0]
    # (30 + 30) / 2 = 30 -> ratio 3 with a Pending pod -> it counts 0: 60/3 = 20 -> ratio 2 x 3 = 6
    assert m["calculation"]["replicas"] == 6
    assert any("Pending (unready): p -> counted as 0" in s for s in m["calculation"]["steps"])
    assert r["verdict"] == "would scale 3 → 6: q average 30 > target 10"
    assert r["decision"]["differences"] == ["the HPA's status.desiredReplicas is 3, this calculation gives 6"]


def test_behavior_tolerance_keeps_replicas() -> None:
    exp = explanation({"a": 11.5, "b": 11.5, "c": 11.5})
    pods = [pod("a"), pod("b"), pod("c")]
    assert analyse(hpa_obj([PODS]), SCALE, pods, [exp], 0.0)["decision"]["desiredReplicas"] == 4
    r = analyse(hpa_obj([PODS], {"scaleUp": {"tolerance": "200m"}}), SCALE, pods, [exp], 0.0)
    assert r["decision"]["desiredReplicas"] == 3
    assert r["verdict"] == "would not scale (3 replicas): q average 11.5 > target 10 (within tolerance)"
    assert r["hpa"]["tolerance"] == "down 0.1, up 0.2"


def test_scale_down_limited_by_behavior_policy() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    r = analyse(hpa_obj([PODS], behavior), SCALE, [pod("a"), pod("b"), pod("c")],
                [explanation({"a": 1, "b": 1, "c": 1})], 0.0)
    assert r["decision"]["desiredReplicas"] == 2
    assert any("ScaleDownLimit" in s for s in r["decision"]["steps"])


def test_invalid_metric_blocks_scale_down_only() -> None:
    ext = {"type": "External", "external": {"metric": {"name": "e"}, "target": {"type": "Value", "value": "10"}}}
    r = analyse(hpa_obj([PODS, ext]), SCALE, [pod("a")], [explanation({"a": 1}), "boom"], 0.0)
    assert r["decision"]["desiredReplicas"] is None
    assert r["verdict"].startswith("would not scale down (1 of 2 metrics invalid")


def test_selector_string_is_labels_selector_string() -> None:
    ls = {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "d", "operator": "DoesNotExist"}]}
    assert selector_string(ls) == "a=1,b=2,c in (x,y),!d"


@pytest.mark.parametrize(("spec", "want"), [
    ({"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "web", "apiVersion": "v1"},
                                   "metric": {"name": "rps"}, "target": {"type": "Value", "value": "1"}}},
     "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/services/web/rps"),
    ({"type": "Object", "object": {"describedObject": {"kind": "Namespace", "name": "x", "apiVersion": "v1"},
                                   "metric": {"name": "load"}, "target": {"type": "Value", "value": "1"}}},
     "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/load"),
])
def test_object_metric_paths(spec: dict[str, Any], want: str) -> None:
    assert metric_request("ns", spec, "", {"v1/Service": "services"})[0] == want


def test_stabilized_status_is_named_in_the_difference() -> None:
    obj = hpa_obj([PODS])
    obj["status"] = {"desiredReplicas": 3, "conditions": [
        {"type": "AbleToScale", "status": "True", "reason": "ScaleDownStabilized",
         "message": "recent recommendations were higher than current one, applying the highest recent recommendation"}]}
    r = analyse(obj, SCALE, [pod("a"), pod("b"), pod("c")], [explanation({"a": 1, "b": 1, "c": 1})], 0.0)
    assert r["decision"]["desiredReplicas"] == 1
    assert r["decision"]["differences"] == ["the HPA's status.desiredReplicas is 3, this calculation gives 1 "
                                            "(the controller holds a recent recommendation: ScaleDownStabilized)"]
    assert any("scale-down stabilization" in s for s in r["decision"]["steps"])
