"""Table tests for adapter.hpa, each row worked from the formulas in protocol.md §7."""

from __future__ import annotations

import pytest

from adapter.hpa import (
    Autoscaler,
    NoMetricsError,
    Pod,
    external_average_value_replicas,
    external_value_replicas,
    milli,
    object_average_value_replicas,
    object_value_replicas,
    pods_metric_replicas,
    ready_pod_count,
)


def running(*names: str) -> list[Pod]:
    return [Pod(n) for n in names]


@pytest.mark.parametrize(("current", "pods", "values", "target", "want"), [
    # plain: avg 100 / target 50 -> ratio 2 x 3 ready = 6
    (3, running("a", "b", "c"), {"a": 100, "b": 100, "c": 100}, 50, 6),
    # within tolerance: avg 54 / 50 = 1.08 -> keep
    (3, running("a", "b", "c"), {"a": 54, "b": 54, "c": 54}, 50, 3),
    # just outside: 1.12 -> ceil(1.12 x 3) = 4
    (3, running("a", "b", "c"), {"a": 56, "b": 56, "c": 56}, 50, 4),
    # scale down: avg 10 / 50 = 0.2 -> ceil(0.6) = 1
    (3, running("a", "b", "c"), {"a": 10, "b": 10, "c": 10}, 50, 1),
    # milli-units: 0.7 vs target 0.5 (700m / 500m) -> ratio 1.4 x 2 = ceil(2.8) = 3
    (2, running("a", "b"), {"a": 0.7, "b": 0.7}, 0.5, 3),
    # integer division of the average: (1m + 2m) // 2 = 1m; 1m / 1m = 1 -> keep
    (2, running("a", "b"), {"a": 0.001, "b": 0.002}, 0.001, 2),
    # missing pod on scale-up counts 0: (200+200+0)/3 = 133 -> 1.33 x 3 = 4
    (3, running("a", "b", "c"), {"a": 200, "b": 200}, 100, 4),
    # missing pod on scale-down counts as target: (20+20+100)/3 = 46 -> 0.46 x 3 = ceil(1.38) = 2
    (3, running("a", "b", "c"), {"a": 20, "b": 20}, 100, 2),
    # missing pod flips scale-up within tolerance: (110 + 0)/2 = 55 -> 0.55 -> direction flips -> keep
    (2, running("a", "b"), {"a": 110}, 100, 2),
    # pending (unready) pod on scale-up counts 0: (300 + 0)/2 = 150 -> 1.5 x 2 = 3
    (2, [Pod("a"), Pod("p", phase="Pending")], {"a": 300}, 100, 3),
    # pending pod on scale-down is just dropped: 20 / 100 x 1 ready = 1
    (2, [Pod("a"), Pod("p", phase="Pending")], {"a": 20, "p": 500}, 100, 1),
    # failed and deleted pods are ignored entirely (their values removed)
    (3, [Pod("a"), Pod("f", phase="Failed"), Pod("d", deleted=True)], {"a": 200, "f": 0, "d": 0}, 100, 2),
    # Running-but-NotReady pods count as ready for custom metrics
    (2, [Pod("a"), Pod("b", ready=False)], {"a": 200, "b": 200}, 100, 4),
], ids=["plain-up", "within-tol", "just-outside", "down", "milli", "int-division", "missing-up",
        "missing-down", "missing-flips", "pending-up", "pending-down", "failed-deleted", "notready-counts"])
def test_pods_metric(current: int, pods: list[Pod], values: dict[str, float], target: float, want: int) -> None:
    assert pods_metric_replicas(current, pods, values, target) == want


def test_pods_metric_without_usable_metrics_raises() -> None:
    with pytest.raises(NoMetricsError, match="did not receive metrics"):
        pods_metric_replicas(2, [Pod("a", phase="Pending")], {"a": 5}, 1)
    with pytest.raises(NoMetricsError, match="no pods"):
        pods_metric_replicas(2, [], {}, 1)


@pytest.mark.parametrize(("current", "value", "target", "ready", "want"), [
    (4, 10, 5, 4, 8),      # ratio 2 x 4 ready
    (4, 10, 5, 3, 6),      # uses ready pods, not replicas
    (4, 5.4, 5, 4, 4),     # 1.08 within tolerance
    (4, 1, 5, 4, 1),       # ceil(0.2 x 4)
    (0, 12, 5, 0, 3),      # from zero: ceil(ratio)
])
def test_object_value(current: int, value: float, target: float, ready: int, want: int) -> None:
    assert object_value_replicas(current, value, target, ready) == want


@pytest.mark.parametrize(("status", "value", "target", "want"), [
    (3, 90, 10, 9),        # 90 / (10 x 3) = 3 -> ceil(90 / 10)
    (3, 31, 10, 3),        # 31/30 within tolerance
    (3, 5, 10, 1),         # ceil(0.5)
])
def test_object_average_value(status: int, value: float, target: float, want: int) -> None:
    assert object_average_value_replicas(status, value, target) == want


def test_external_sums_items() -> None:
    # queue depth of two models' items: 30 + 45 = 75 vs target value 25 -> ratio 3 x 2 ready = 6
    assert external_value_replicas(2, [30, 45], 25, ready_pods=2) == 6
    # averageValue 25 per replica: ceil(75 / 25) = 3
    assert external_average_value_replicas(2, [30, 45], 25) == 3
    # within tolerance: 52 / (25 x 2) = 1.04
    assert external_average_value_replicas(2, [52], 25) == 2


def test_milli_rounds_up_like_quantity() -> None:
    assert milli(0.7) == 700 and milli(0.0001) == 1 and milli(70) == 70000


def test_ready_pod_count() -> None:
    pods = [Pod("a"), Pod("b", ready=False), Pod("c", phase="Pending"), Pod("d", deleted=True)]
    assert ready_pod_count(pods) == 1


@pytest.mark.parametrize(("min_r", "max_r", "current", "proposals", "want", "reason"), [
    (1, 10, 2, [9], 4, "ScaleUpLimit"),            # max(2 x 2, 4) = 4
    (1, 10, 3, [9], 6, "ScaleUpLimit"),            # 2 x 3
    (1, 5, 3, [9], 5, "TooManyReplicas"),          # max below the scale-up limit
    (2, 10, 3, [1], 2, "TooFewReplicas"),
    (1, 10, 3, [4, 7, 5], 6, "ScaleUpLimit"),      # max over metrics = 7, limited to 6
    (1, 10, 3, [5, None], 5, "DesiredWithinRange"),  # an invalid metric does not block a scale-up
    (1, 10, 3, [2, None], 3, "InvalidMetricsNoScaleDown"),
    (1, 10, 3, [None], 3, "FailedGetMetrics"),
    (1, 10, 12, [3], 10, "TooManyReplicas"),       # current above max: straight to max
    (2, 10, 0, [3], 0, "ScalingDisabled"),         # scaled to 0 by hand
])
def test_autoscaler_clamps(min_r: int, max_r: int, current: int, proposals: list[int | None], want: int,
                           reason: str) -> None:
    d = Autoscaler(min_replicas=min_r, max_replicas=max_r).decide(0.0, current, proposals)
    assert (d.replicas, d.reason) == (want, reason)


def test_downscale_stabilization_window() -> None:
    hpa = Autoscaler(min_replicas=1, max_replicas=20)
    assert hpa.decide(0.0, 4, [8]).replicas == 8
    # load drops: recommendations of 2 are held at the 5-minute max (8)
    assert hpa.decide(15.0, 8, [2]).replicas == 8
    assert hpa.decide(299.0, 8, [2]).replicas == 8
    # the 8 recorded at t=0 leaves the window after 300 s; the 2s remain
    d = hpa.decide(301.0, 8, [2])
    assert (d.replicas, d.reason) == (2, "DesiredWithinRange")


def test_scale_up_is_immediate() -> None:
    hpa = Autoscaler(min_replicas=1, max_replicas=20)
    hpa.decide(0.0, 2, [2])
    assert hpa.decide(15.0, 2, [3]).replicas == 3
