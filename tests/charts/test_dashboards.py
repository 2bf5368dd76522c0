"""dashboards.enabled renders the Grafana dashboard as a ConfigMap the Grafana sidecar picks up."""

from __future__ import annotations

import json

from .tools import CHART, NAMESPACE, RELEASE, ROOT, helm, render, run

NAME = f"{RELEASE}-dashboards"


def _dashboards(*sets: str) -> list[dict[str, object]]:
    return [o for o in render(sets=sets) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == NAME]


def test_off_by_default() -> None:
    assert _dashboards() == []


def test_configmap_carries_the_dashboard_and_the_sidecar_label() -> None:
    [cm] = _dashboards("dashboards.enabled=true")
    meta = cm["metadata"]
    assert meta["namespace"] == NAMESPACE  # type: ignore[index]
    assert meta["labels"]["grafana_dashboard"] == "1"  # type: ignore[index]
    assert meta["labels"]["app.kubernetes.io/name"] == "accel-metrics-adapter"  # type: ignore[index]
    body = cm["data"]["accel-metrics-adapter.json"]  # type: ignore[index]
    assert json.loads(body) == json.loads((ROOT / "dashboards" / "accel-metrics-adapter.json").read_text())
    assert "{{horizontalpodautoscaler}}" in body  # Grafana's legend templates are not Helm templates


def test_namespace_labels_annotations_configurable() -> None:
    [cm] = _dashboards("dashboards.enabled=true", "dashboards.namespace=monitoring",
                       "dashboards.labels.grafana_dashboard=null", "dashboards.labels.team-dash=yes",
                       "dashboards.annotations.grafana_folder=GPU")
    meta = cm["metadata"]
    assert meta["namespace"] == "monitoring"  # type: ignore[index]
    assert "grafana_dashboard" not in meta["labels"] and meta["labels"]["team-dash"] == "yes"  # type: ignore[index]
    assert meta["annotations"] == {"grafana_folder": "GPU"}  # type: ignore[index]


def test_schema_rejects_unknown_dashboard_keys() -> None:
    r = run([helm(), "template", RELEASE, str(CHART), "--set", "dashboards.enabeld=true"])
    assert r.returncode != 0 and "enabeld" in r.stderr
