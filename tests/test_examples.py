"""examples/*.yaml: valid autoscaling/v2 HPAs whose metrics exist in a preset, with a cited target."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
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
            "hpa-triton-queue-time.yaml", "hpa-neuron-utilization.yaml"} <= names


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
        assert 1 <= doc["spec"]["minReplicas"] <= doc["spec"]["maxReplicas"]
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
