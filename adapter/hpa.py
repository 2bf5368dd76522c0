"""The HorizontalPodAutoscaler's replica calculation for custom and external metrics.

A pure, typed re-implementation of kube-controller-manager's ``replica_calculator.go`` and
``horizontal.go`` without ``spec.behavior`` (docs: ../shared/docs/protocol.md §7), used by the
demo and by tests to show which replica count an HPA would choose. Quantities are compared in
milli-units as the controller does (``Quantity.MilliValue()``, i.e. rounded up). Time is passed
in (``now`` seconds), never read from a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TOLERANCE = 0.1
DOWNSCALE_STABILIZATION_SECONDS = 300.0
MAX_INT32 = 2**31 - 1


class NoMetricsError(Exception):
    """No usable metric for any targeted pod ("pods might be unready"): the HPA keeps its replicas."""


@dataclass(frozen=True, slots=True)
class Pod:
    """What the HPA reads of a pod matched by the scale target's selector."""

    name: str
    phase: str = "Running"  # Pending | Running | Succeeded | Failed | Unknown
    ready: bool = True
    deleted: bool = False  # has a deletionTimestamp


def milli(value: float) -> int:
    """``resource.Quantity.MilliValue()`` of a float quantity (rounded up; float noise ignored)."""
    return math.ceil(round(value * 1000, 6))


def within_tolerance(ratio: float, tolerance: float = TOLERANCE) -> bool:
    return abs(1.0 - ratio) <= tolerance


def ready_pod_count(pods: Sequence[Pod]) -> int:
    """Pods that are Running and Ready (the count used for Object/External ``value`` targets)."""
    return min(sum(1 for p in pods if p.phase == "Running" and p.ready and not p.deleted), MAX_INT32)


def _usage_ratio(metrics: Mapping[str, int], target: int) -> float:
    current = sum(metrics.values()) // len(metrics)  # integer division, as GetMetricUsageRatio
    return current / target


def pods_metric_replicas(current_replicas: int, pods: Sequence[Pod], values: Mapping[str, float],
                         target_average_value: float, tolerance: float = TOLERANCE) -> int:
    """``Pods`` metric with ``averageValue`` (calcPlainMetricReplicas, resource = custom metric).

    ``values`` maps pod name -> the adapter's value. Deleted/Failed pods are ignored, Pending pods
    are unready, pods without a value are missing (assumed at target on scale-down, 0 on scale-up).
    """
    target = milli(target_average_value)
    metrics = {k: milli(v) for k, v in values.items()}
    ready = 0
    unready: list[str] = []
    missing: list[str] = []
    for p in pods:
        if p.deleted or p.phase == "Failed":
            metrics.pop(p.name, None)
        elif p.phase == "Pending":
            unready.append(p.name)
            metrics.pop(p.name, None)
        elif p.name not in metrics:
            missing.append(p.name)
        else:
            ready += 1
    if not pods:
        raise NoMetricsError("no pods returned by selector while calculating replica count")
    if not metrics:
        raise NoMetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio = _usage_ratio(metrics, target)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if within_tolerance(ratio, tolerance):
            return current_replicas
        return math.ceil(ratio * ready)
    for name in missing:
        metrics[name] = target if ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio = _usage_ratio(metrics, target)
    if within_tolerance(new_ratio, tolerance) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current_replicas
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current_replicas) or (new_ratio > 1.0 and replicas < current_replicas):
        return current_replicas
    return replicas


def _ratio_replicas(current_replicas: int, ratio: float, ready_pods: int, tolerance: float) -> int:
    """getUsageRatioReplicaCount: Object/External ``value`` targets."""
    if current_replicas == 0:
        return math.ceil(ratio)  # scale from zero (HPAScaleToZero)
    if within_tolerance(ratio, tolerance):
        return current_replicas
    return math.ceil(ratio * ready_pods)


def object_value_replicas(current_replicas: int, value: float, target_value: float, ready_pods: int,
                          tolerance: float = TOLERANCE) -> int:
    """``Object`` metric with ``value``: ratio = v / T, scaled by the ready pods."""
    return _ratio_replicas(current_replicas, milli(value) / milli(target_value), ready_pods, tolerance)


def _per_pod_replicas(status_replicas: int, usage: int, target: int, tolerance: float) -> int:
    ratio = usage / (target * status_replicas) if status_replicas else math.inf
    if within_tolerance(ratio, tolerance):
        return status_replicas
    return min(math.ceil(usage / target), MAX_INT32)


def object_average_value_replicas(status_replicas: int, value: float, target_average_value: float,
                                  tolerance: float = TOLERANCE) -> int:
    """``Object`` metric with ``averageValue``: ``ceil(v / T)`` unless v / (T x replicas) is within tolerance."""
    return _per_pod_replicas(status_replicas, milli(value), milli(target_average_value), tolerance)


def external_value_replicas(current_replicas: int, values: Sequence[float], target_value: float,
                            ready_pods: int, tolerance: float = TOLERANCE) -> int:
    """``External`` metric with ``value``: the items are summed, then as Object ``value``."""
    usage = sum(milli(v) for v in values)
    return _ratio_replicas(current_replicas, usage / milli(target_value), ready_pods, tolerance)


def external_average_value_replicas(status_replicas: int, values: Sequence[float], target_average_value: float,
                                    tolerance: float = TOLERANCE) -> int:
    """``External`` metric with ``averageValue``: summed items, then as Object ``averageValue``."""
    return _per_pod_replicas(status_replicas, sum(milli(v) for v in values), milli(target_average_value), tolerance)


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int  # what the HPA sets
    proposed: int  # the metrics' proposal before stabilization and clamping
    reason: str  # condition reason: DesiredWithinRange, ScaleUpLimit, TooManyReplicas, TooFewReplicas, ...


@dataclass
class Autoscaler:
    """One HPA without ``spec.behavior``: max over metrics, 5-minute downscale stabilization,
    clamp to [min, max] and to the scale-up limit ``max(2 x current, 4)`` per sync."""

    min_replicas: int = 1
    max_replicas: int = 10
    downscale_stabilization: float = DOWNSCALE_STABILIZATION_SECONDS
    _history: list[tuple[float, int]] = field(default_factory=list)

    def decide(self, now: float, current_replicas: int, proposals: Sequence[int | None]) -> Decision:
        """``proposals``: one replica count per metric, ``None`` for a metric that could not be computed."""
        if current_replicas == 0 and self.min_replicas != 0:
            return Decision(0, 0, "ScalingDisabled")
        if current_replicas > self.max_replicas:
            return Decision(self.max_replicas, current_replicas, "TooManyReplicas")
        if current_replicas < self.min_replicas:
            return Decision(self.min_replicas, current_replicas, "TooFewReplicas")
        valid = [p for p in proposals if p is not None]
        if not valid:
            return Decision(current_replicas, current_replicas, "FailedGetMetrics")
        proposed = max(valid)
        if len(valid) < len(proposals) and proposed < current_replicas:
            return Decision(current_replicas, proposed, "InvalidMetricsNoScaleDown")
        stabilized = self._stabilize(now, proposed)
        limit = max(2 * current_replicas, 4)
        upper, upper_reason = ((limit, "ScaleUpLimit") if self.max_replicas > limit
                               else (self.max_replicas, "TooManyReplicas"))
        if stabilized < self.min_replicas:
            return Decision(self.min_replicas, proposed, "TooFewReplicas")
        if stabilized > upper:
            return Decision(upper, proposed, upper_reason)
        reason = "ScaleDownStabilized" if stabilized != proposed else "DesiredWithinRange"
        return Decision(stabilized, proposed, reason)

    def _stabilize(self, now: float, proposed: int) -> int:
        """stabilizeRecommendation: the max recommendation within the window, recording this one."""
        cutoff = now - self.downscale_stabilization
        best = proposed
        old_index = None
        for i, (ts, rec) in enumerate(self._history):
            if ts < cutoff:
                old_index = i
            elif rec > best:
                best = rec
        if old_index is not None:
            self._history[old_index] = (now, proposed)
        else:
            self._history.append((now, proposed))
        return best
