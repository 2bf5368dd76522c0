"""examples/*.yaml: valid autoscaling/v2 HPAs whose metrics exist in a preset, with a cited target."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.naming.resources import StaticResourceMapper
from adapter.ports import MetricRuleObject
from adapter.provider.teamrules import judge
from tests.charts.crdschema import conforms

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if not p.name.startswith("metricrule-"))
METRICRULE_EXAMPLES = sorted((ROOT / "examples").glob("metricrule-*.yaml"))
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def preset_metrics() -> dict[str, set[str]]:
    """api ('custom' | 'external') -> metric names defined by the shipped presets."""
    out: dict[str, set[str]] = {"custom": set(), "external": set()}
    for f in (ROOT / "adapter" / "presets").glob("*.yaml"):
        doc = yaml.safe_load(f.read_text())
        out["custom"] |= {r["name"]["as"] for r in doc.get("rules") or []}
        out["external"] |= {r["name"]["as"] for r in doc.get("externalRules") or []}
    return out


def hpa_metrics(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, metric name, target) of each metric of an HPA."""
    out = []
    for m in doc["spec"]["metrics"]:
        kind = m["type"]
        src = m[{"Pods": "pods", "Object": "object", "External": "external"}[kind]]
        out.append((kind, src["metric"]["name"], src["target"]))
    return out


def test_there_are_examples_for_each_use_case() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"hpa-gpu-utilization.yaml", "hpa-vllm-queue-pods.yaml", "hpa-vllm-queue-external.yaml",
            "hpa-triton-queue-time.yaml", "hpa-neuron-utilization.yaml", "hpa-vllm-demand-slo.yaml",
            "hpa-llm-d-scale-from-zero.yaml", "hpa-wva-desired-replicas.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example(path: Path) -> None:
    text = path.read_text()
    assert "metrics-catalog.md" in text, "cite where the target value comes from"
    defined = preset_metrics()
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == "autoscaling/v2" and doc["kind"] == "HorizontalPodAutoscaler"
        assert doc["spec"]["scaleTargetRef"]["name"]
        assert 0 <= doc["spec"]["minReplicas"] <= doc["spec"]["maxReplicas"]
        if doc["spec"]["minReplicas"] == 0:  # HPAScaleToZero: the API requires an Object or External metric
            assert all(m["type"] in ("Object", "External") for m in doc["spec"]["metrics"]), path.name
            assert "HPAScaleToZero" in text
        for kind, name, target in hpa_metrics(doc):
            api = "external" if kind == "External" else "custom"
            assert name in defined[api], f"{name} is not a {api} metric of any preset"
            # API validation (protocol.md §7.2): Pods -> averageValue only; External -> one of value/averageValue
            if kind == "Pods":
                assert target["type"] == "AverageValue" and set(target) == {"type", "averageValue"}
            else:
                assert target["type"] in ("Value", "AverageValue")
                key = "value" if target["type"] == "Value" else "averageValue"
                assert set(target) == {"type", key}
            value = target.get("value", target.get("averageValue"))
            assert isinstance(value, str) and QUANTITY.match(value), value
            selector = (doc["spec"]["metrics"][0].get("external") or {}).get("metric", {}).get("selector", {})
            for v in selector.get("matchLabels", {}).values():
                assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", v), f"invalid label value {v!r}"


def test_behavior_policies_and_tolerance_are_well_formed() -> None:
    """The demand + SLO example: two metrics, per-direction tolerance and the scale policies (autoscaling/v2)."""
    doc = yaml.safe_load((ROOT / "examples" / "hpa-vllm-demand-slo.yaml").read_text())
    assert [m["type"] for m in doc["spec"]["metrics"]] == ["Pods", "External"]
    for direction in ("scaleUp", "scaleDown"):
        rules = doc["spec"]["behavior"][direction]
        assert 0 < rules["tolerance"] < 1
        assert rules["selectPolicy"] in ("Max", "Min", "Disabled")
        assert 0 <= rules["stabilizationWindowSeconds"] <= 3600
        for p in rules["policies"]:
            assert p["type"] in ("Pods", "Percent") and p["value"] > 0 and 0 < p["periodSeconds"] <= 1800


def test_there_is_a_metricrule_example() -> None:
    assert [p.name for p in METRICRULE_EXAMPLES] == ["metricrule-team-queue.yaml"]


@pytest.mark.parametrize("path", METRICRULE_EXAMPLES, ids=[p.name for p in METRICRULE_EXAMPLES])
def test_metricrule_example(path: Path) -> None:
    """A MetricRule the CRD's schema and the adapter accept, and HPAs of its namespace on its metrics."""
    text = path.read_text()
    assert "metrics-catalog.md" in text, "cite where the target value comes from"
    docs = [d for d in yaml.safe_load_all(text) if d]
    crd = yaml.safe_load((ROOT / "charts" / "accel-metrics-adapter" / "crds" / "metricrules.accel-metrics.io.yaml")
                         .read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [d for d in docs if d["kind"] == "MetricRule"]
    assert rules
    served: dict[str, set[str]] = {}
    for doc in rules:
        assert doc["apiVersion"] == "accel-metrics.io/v1alpha1"
        assert conforms(doc, schema) == []
        meta = doc["metadata"]
        verdict = judge(MetricRuleObject(meta["namespace"], meta["name"], 1, doc["spec"], {}), StaticResourceMapper())
        assert verdict.error == "" and verdict.rules
        served.setdefault(meta["namespace"], set()).update(r.rule.name.as_ for r in verdict.rules)
    for doc in docs:
        if doc["kind"] == "HorizontalPodAutoscaler":
            ns = doc["metadata"]["namespace"]
            assert {name for _, name, _ in hpa_metrics(doc)} <= served.get(ns, set()), "metrics of its namespace"
