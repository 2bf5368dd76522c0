"""kube-state-metrics' HorizontalPodAutoscaler series for the simulated HPAs (dynamic: every scrape).

Names and labels as kube-state-metrics v2 documents them (``docs/metrics/workload/
horizontalpodautoscaler-metrics.md``): ``horizontalpodautoscaler`` and ``namespace`` on every
series; ``metric_name`` and ``metric_target_type`` on ``..._spec_target_metric`` (the target) and
``..._status_target_metric`` (the current value the controller read); ``condition``/``status`` on
``..._status_condition``. The current value is the ground truth of the metric (what the adapter
serves); desired replicas follow the controller's rule ``ceil(current * value / target)``, largest
over the metrics, clamped to min/max (no tolerance or stabilization: a simulation, not the controller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean

from adapter.simulator import labels as L
from adapter.simulator.topology import Hpa, HpaMetric, Topology
from adapter.simulator.truth import Truth


@dataclass(frozen=True)
class HpaStatus:
    current_replicas: int
    desired_replicas: int
    values: tuple[float | None, ...]  # per metric: the current (average) value, None when unreadable
    limited: bool  # the proposal was clamped to min/max replicas


def _value(m: HpaMetric, hpa: Hpa, pods: list[tuple[str, str]], truth: Truth) -> float | None:
    if m.kind == "Pods":
        vals = [truth.custom[m.name][k] for k in pods if k in truth.custom[m.name]]
        return fmean(vals) if vals else None
    total = truth.external[m.name].get((hpa.namespace, m.external_key))
    if total is None or m.target_type != "average":
        return total
    return total / max(1, len(pods))


def status(topo: Topology, hpa: Hpa, truth: Truth) -> HpaStatus:
    pods = [p.key for p in topo.pods if p.namespace == hpa.namespace and p.deployment == hpa.deployment]
    current = len(pods)
    values = tuple(_value(m, hpa, pods, truth) for m in hpa.metrics)
    proposals = [math.ceil(current * v / m.target - 1e-9) for m, v in zip(hpa.metrics, values, strict=True)
                 if v is not None]
    wanted = max(proposals) if proposals else current  # no readable metric: keep the replicas
    desired = min(hpa.max_replicas, max(hpa.min_replicas, wanted))
    return HpaStatus(current, desired, values, desired != wanted)


def render_hpas(topo: Topology, truth: Truth) -> list[str]:
    if topo.ksm is None or not topo.hpas:
        return []
    own = L.ksm(topo.ksm)
    rows = [(h, status(topo, h, truth), [("horizontalpodautoscaler", h.name), ("namespace", h.namespace)])
            for h in topo.hpas]
    out: list[str] = []

    def series(name: str, help_text: str, lines: list[tuple[L.Labels, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{L.fmt([*pairs, *own])} {v!r}" for pairs, v in lines)

    series("kube_horizontalpodautoscaler_info", "Information about this autoscaler.",
           [([*k, ("scaletargetref_api_version", "apps/v1"), ("scaletargetref_kind", "Deployment"),
              ("scaletargetref_name", h.deployment)], 1.0) for h, _, k in rows])
    series("kube_horizontalpodautoscaler_spec_min_replicas", "Lower limit for the number of pods.",
           [(k, float(h.min_replicas)) for h, _, k in rows])
    series("kube_horizontalpodautoscaler_spec_max_replicas", "Upper limit for the number of pods.",
           [(k, float(h.max_replicas)) for h, _, k in rows])
    series("kube_horizontalpodautoscaler_spec_target_metric", "The metric specifications used by this autoscaler.",
           [([*k, ("metric_name", m.name), ("metric_target_type", m.target_type)], m.target)
            for h, _, k in rows for m in h.metrics])
    series("kube_horizontalpodautoscaler_status_target_metric", "The current metric status used by this autoscaler.",
           [([*k, ("metric_name", m.name), ("metric_target_type", m.target_type)], v)
            for h, st, k in rows for m, v in zip(h.metrics, st.values, strict=True) if v is not None])
    series("kube_horizontalpodautoscaler_status_current_replicas", "Current number of replicas of pods.",
           [(k, float(st.current_replicas)) for _, st, k in rows])
    series("kube_horizontalpodautoscaler_status_desired_replicas", "Desired number of replicas of pods.",
           [(k, float(st.desired_replicas)) for _, st, k in rows])
    conditions: list[tuple[L.Labels, float]] = []
    for _, st, k in rows:
        state = {"AbleToScale": True, "ScalingActive": any(v is not None for v in st.values),
                 "ScalingLimited": st.limited}
        for cond, ok in state.items():
            for s in ("true", "false", "unknown"):
                conditions.append(([*k, ("condition", cond), ("status", s)], float(s == ("true" if ok else "false"))))
    series("kube_horizontalpodautoscaler_status_condition", "The condition of this autoscaler.", conditions)
    return out
