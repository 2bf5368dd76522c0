"""replica_calculator.go: one metric's proposal (Pods, Object, External; value and averageValue).

Milli-units as the controller (``Quantity.MilliValue()``, rounded up); per-direction tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TOLERANCE = 0.1
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1


class NoMetricsError(Exception):
    """No usable metric for any targeted pod ("pods might be unready"): the HPA keeps its replicas."""


@dataclass(frozen=True, slots=True)
class Pod:
    """What the HPA reads of a pod matched by the scale target's selector."""

    name: str
    phase: str = "Running"  # Pending | Running | Succeeded | Failed | Unknown
    ready: bool = True
    deleted: bool = False  # has a deletionTimestamp


@dataclass(frozen=True, slots=True)
class Tolerances:
    """``Tolerances``: the ratio is "within" when ``1 - down <= ratio <= 1 + up``."""

    down: float = TOLERANCE
    up: float = TOLERANCE

    def within(self, ratio: float) -> bool:
        return (1.0 - self.down) <= ratio <= (1.0 + self.up)


Tol = float | Tolerances


def _tol(t: Tol) -> Tolerances:
    return t if isinstance(t, Tolerances) else Tolerances(t, t)


def milli(value: float) -> int:
    """``resource.Quantity.MilliValue()`` of a float quantity (rounded up; float noise ignored)."""
    return math.ceil(round(value * 1000, 6))


def within_tolerance(ratio: float, tolerance: Tol = TOLERANCE) -> bool:
    return _tol(tolerance).within(ratio)


def ready_pod_count(pods: Sequence[Pod]) -> int:
    """Pods that are Running and Ready (the count used for Object/External ``value`` targets)."""
    return min(sum(1 for p in pods if p.phase == "Running" and p.ready and not p.deleted), MAX_INT32)


def _usage_ratio(metrics: Mapping[str, int], target: int) -> tuple[float, int]:
    usage = sum(metrics.values()) // len(metrics)  # integer division, as GetMetricUsageRatio
    return usage / target, usage


@dataclass(frozen=True)
class PodsCalculation:
    """calcPlainMetricReplicas, step by step: what ``explain`` shows beside the result."""

    replicas: int
    usage: int  # average in milli-units (the HPA's status.currentMetrics[].pods.current.averageValue)
    ratio: float
    ready: int
    unready: tuple[str, ...] = ()  # Pending: left out (counted 0 on a scale-up)
    missing: tuple[str, ...] = ()  # no value: at target on a scale-down, 0 on a scale-up
    ignored: tuple[str, ...] = ()  # deleted or Failed: left out entirely
    new_ratio: float | None = None  # the ratio recomputed with missing/unready pods filled in
    rule: str = ""


def pods_metric(current_replicas: int, pods: Sequence[Pod], values: Mapping[str, float],
                target_average_value: float, tolerance: Tol = TOLERANCE) -> PodsCalculation:
    """``Pods`` metric with ``averageValue`` (calcPlainMetricReplicas with resource = "")."""
    tol = _tol(tolerance)
    target = milli(target_average_value)
    metrics = {k: milli(v) for k, v in values.items()}
    if not pods:
        raise NoMetricsError("no pods returned by selector while calculating replica count")
    ready = 0
    unready: list[str] = []
    missing: list[str] = []
    ignored: list[str] = []
    for p in pods:
        if p.deleted or p.phase == "Failed":
            ignored.append(p.name)
        elif p.phase == "Pending":
            unready.append(p.name)
        elif p.name not in metrics:
            missing.append(p.name)
        else:
            ready += 1
    for name in (*ignored, *unready):
        metrics.pop(name, None)
    if not metrics:
        raise NoMetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = _usage_ratio(metrics, target)

    def done(replicas: int, rule: str, new_ratio: float | None = None) -> PodsCalculation:
        return PodsCalculation(replicas, usage, ratio, ready, tuple(unready), tuple(missing), tuple(ignored),
                               new_ratio, rule)

    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if tol.within(ratio):
            return done(current_replicas, "within tolerance")
        return done(math.ceil(ratio * ready), "ceil(ratio x pods with a value)")
    if missing and ratio != 1.0:
        fill = target if ratio < 1.0 else 0
        for name in missing:
            metrics[name] = fill
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio, _ = _usage_ratio(metrics, target)
    if tol.within(new_ratio) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return done(current_replicas, "within tolerance, or the direction flips, once missing/unready pods count",
                    new_ratio)
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current_replicas) or (new_ratio > 1.0 and replicas < current_replicas):
        return done(current_replicas, "the pod count would reverse the direction", new_ratio)
    return done(replicas, "ceil(new ratio x pods counted)", new_ratio)


def pods_metric_replicas(current_replicas: int, pods: Sequence[Pod], values: Mapping[str, float],
                         target_average_value: float, tolerance: Tol = TOLERANCE) -> int:
    return pods_metric(current_replicas, pods, values, target_average_value, tolerance).replicas


@dataclass(frozen=True)
class Proposal:
    """One Object/External metric's proposal: replicas, the usage the HPA reports, the ratio."""

    replicas: int
    usage: int  # milli-units, as status.currentMetrics shows it
    ratio: float
    rule: str = ""


def _ratio_replicas(current_replicas: int, ratio: float, ready_pods: int | None, tol: Tolerances
                    ) -> tuple[int, str]:
    """getUsageRatioReplicaCount: Object/External ``value`` targets (``ready_pods`` None: no pods)."""
    if current_replicas == 0:
        return math.ceil(ratio), "from zero: ceil(ratio)"  # HPAScaleToZero
    if tol.within(ratio):
        return current_replicas, "within tolerance"
    if ready_pods is None:
        raise NoMetricsError("no pods returned by selector while calculating replica count")
    want = ratio * ready_pods
    return (MAX_INT32 if want > MAX_INT32 else math.ceil(want)), "ceil(ratio x ready pods)"


def object_value(current_replicas: int, value: float, target_value: float, ready_pods: int | None,
                 tolerance: Tol = TOLERANCE) -> Proposal:
    """``Object`` metric with ``value``: ratio = v / T, scaled by the ready pods."""
    usage = milli(value)
    ratio = usage / milli(target_value)
    replicas, rule = _ratio_replicas(current_replicas, ratio, ready_pods, _tol(tolerance))
    return Proposal(replicas, usage, ratio, rule)


def object_value_replicas(current_replicas: int, value: float, target_value: float, ready_pods: int,
                          tolerance: Tol = TOLERANCE) -> int:
    return object_value(current_replicas, value, target_value, ready_pods, tolerance).replicas


def _per_pod(status_replicas: int, usage: int, target: int, tol: Tolerances) -> Proposal:
    """GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas."""
    ratio = usage / (target * status_replicas) if status_replicas else math.inf
    replicas, rule = status_replicas, "within tolerance"
    if not tol.within(ratio):
        want = math.ceil(usage / target)
        replicas, rule = (MAX_INT32 if want > MAX_INT32 else want), "ceil(value / target)"
    average = MAX_INT64 if usage >= MAX_INT64 else (math.ceil(usage / status_replicas) if status_replicas else usage)
    return Proposal(replicas, average, ratio, rule)


def object_average_value(status_replicas: int, value: float, target_average_value: float,
                         tolerance: Tol = TOLERANCE) -> Proposal:
    return _per_pod(status_replicas, milli(value), milli(target_average_value), _tol(tolerance))


def object_average_value_replicas(status_replicas: int, value: float, target_average_value: float,
                                  tolerance: Tol = TOLERANCE) -> int:
    """``Object`` metric with ``averageValue``: ``ceil(v / T)`` unless v / (T x replicas) is within tolerance."""
    return object_average_value(status_replicas, value, target_average_value, tolerance).replicas


def _sum(values: Sequence[float]) -> int:
    total = 0
    for v in values:
        total += milli(v)
        if total >= MAX_INT64:
            return MAX_INT64
    return total


def external_value(current_replicas: int, values: Sequence[float], target_value: float, ready_pods: int | None,
                   tolerance: Tol = TOLERANCE) -> Proposal:
    """``External`` metric with ``value``: the items are summed, then as Object ``value``."""
    usage = _sum(values)
    ratio = usage / milli(target_value)
    replicas, rule = _ratio_replicas(current_replicas, ratio, ready_pods, _tol(tolerance))
    return Proposal(replicas, usage, ratio, rule)


def external_value_replicas(current_replicas: int, values: Sequence[float], target_value: float,
                            ready_pods: int, tolerance: Tol = TOLERANCE) -> int:
    return external_value(current_replicas, values, target_value, ready_pods, tolerance).replicas


def external_average_value(status_replicas: int, values: Sequence[float], target_average_value: float,
                           tolerance: Tol = TOLERANCE) -> Proposal:
    """``External`` metric with ``averageValue``: summed items, then as Object ``averageValue``."""
    return _per_pod(status_replicas, _sum(values), milli(target_average_value), _tol(tolerance))


def external_average_value_replicas(status_replicas: int, values: Sequence[float], target_average_value: float,
                                    tolerance: Tol = TOLERANCE) -> int:
    return external_average_value(status_replicas, values, target_average_value, tolerance).replicas
