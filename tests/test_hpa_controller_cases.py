"""adapter.hpa against the HPA controller's own test cases (Kubernetes 1.36).

Each row is one test of ``pkg/controller/podautoscaler/replica_calculator_test.go`` or
``horizontal_test.go`` (named in the id), with its inputs and expected results unchanged. The
controller works in milli-units: a ``levels`` entry of 20000 is the quantity 20.
"""

from __future__ import annotations

import math

import pytest

from adapter import hpa
from adapter.hpa import Behavior, Pod, ScalingPolicy, ScalingRules, Tolerances

MAX64 = 2**63 - 1


def m(level: int) -> float:
    """A controller test level (milli-units) as the quantity the adapter serves."""
    return level / 1000


def running(n: int) -> list[Pod]:
    return [Pod(f"test-pod-{i}") for i in range(n)]


# -- replica_calculator_test.go: Pods metrics (calcPlainMetricReplicas) --------------------------------

@pytest.mark.parametrize(("current", "pods", "levels", "target", "tol", "want", "usage"), [
    (3, 3, [20000, 10000, 30000], 15000, None, 4, 20000),
    (3, 3, [50000, 10000, 30000], 15000, None, 6, 30000),  # unready (Ready=False) pods count for custom metrics
    (3, 3, [50000, 15000, 30000], 15000, None, 7, 31666),
    (1, 1, [8600], 4400, None, 2, 8600),
    (5, 5, [12000] * 5, 20000, None, 3, 12000),
    (3, 3, [20000, 21000, 21000], 20000, None, 3, 20666),
    (3, 3, [20000, 21000, 21000], 20000, Tolerances(0.1, 0.01), 4, 20666),
    (5, 3, [20000, 19000, 21000], 20000, None, 5, 20000),
    (2, 3, [10000, 10000], 17000, None, 2, 10000),  # 3 running pods, 1 without a metric (max surge)
], ids=["TestReplicaCalcScaleUpCM", "TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
        "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", "TestReplicaCalcScaleUpCMExternalNoLabels",
        "TestReplicaCalcScaleDownCM", "TestReplicaCalcToleranceCM", "TestReplicaCalcConfigurableToleranceCM",
        "TestPlainMetricReplicaCalcMissingMetricsNoChangeEq", "TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM"])
def test_pods_metric(current: int, pods: int, levels: list[int], target: int, tol: Tolerances | None, want: int,
                     usage: int) -> None:
    names = running(pods)
    values = {p.name: m(v) for p, v in zip(names, levels, strict=False)}
    calc = hpa.pods_metric(current, names, values, m(target), tol or hpa.TOLERANCE)
    assert (calc.replicas, calc.usage) == (want, usage)


# -- replica_calculator_test.go: Object and External metrics -------------------------------------------

@pytest.mark.parametrize(("kind", "current", "ready", "levels", "target", "tol", "want", "usage"), [
    ("object", 3, 3, [20000], 15000, None, 4, 20000),
    ("object-per-pod", 3, 3, [20000], 5000, None, 4, 6667),
    ("object", 3, 1, [50000], 10000, None, 5, 50000),
    ("external", 3, 1, [8600], 4400, None, 2, 8600),
    ("external-per-pod", 3, 3, [8600], 2150, None, 4, 2867),
    ("object-per-pod", 5, 5, [6000], 2000, None, 3, 1200),
    ("object", 5, 5, [12000], 20000, None, 3, 12000),
    ("external", 5, 5, [8600], 14334, None, 3, 8600),
    ("external-per-pod", 5, 5, [8600], 2867, None, 3, 1720),
    ("object", 3, 3, [20666], 20000, None, 3, 20666),
    ("object-per-pod", 4, 4, [20166], 5000, None, 4, 5042),
    ("external", 3, 3, [8600], 8888, None, 3, 8600),
    ("external-per-pod", 3, 3, [8600], 2900, None, 3, 2867),
    ("object", 3, 3, [20666], 20000, Tolerances(0.1, 0.01), 4, 20666),
    ("object-per-pod", 4, 4, [20208], 5000, Tolerances(0.1, 0.01), 5, 5052),
    ("external", 3, 3, [8900], 8800, Tolerances(0.1, 0.01), 4, 8900),
    ("external-per-pod", 3, 3, [8600], 2800, Tolerances(0.1, 0.01), 4, 2867),
    ("external-per-pod", 1, 1, [MAX64], 1, None, hpa.MAX_INT32, MAX64),
    ("external-per-pod", 1, 1, [MAX64], MAX64, None, 1, MAX64),
    ("external", 3, 3, [MAX64 // 2 + 1, MAX64 // 2 + 1], MAX64, None, 3, MAX64),
], ids=["TestReplicaCalcScaleUpCMObject", "TestReplicaCalcScaleUpCMPerPodObject",
        "TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods", "TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods",
        "TestReplicaCalcScaleUpPerPodCMExternal", "TestReplicaCalcScaleDownPerPodCMObject",
        "TestReplicaCalcScaleDownCMObject", "TestReplicaCalcScaleDownCMExternal",
        "TestReplicaCalcScaleDownPerPodCMExternal", "TestReplicaCalcToleranceCMObject",
        "TestReplicaCalcTolerancePerPodCMObject", "TestReplicaCalcToleranceCMExternal",
        "TestReplicaCalcTolerancePerPodCMExternal", "TestReplicaCalcConfigurableToleranceCMObject",
        "TestReplicaCalcConfigurableTolerancePerPodCMObject", "TestReplicaCalcConfigurableToleranceCMExternal",
        "TestReplicaCalcConfigurableTolerancePerPodCMExternal", "TestExternalPerPodMetricReplicaOverflow",
        "TestExternalPerPodMetricUsageOverflow", "TestReplicaCalcExternalMetricUsageOverflow"])
def test_object_and_external(kind: str, current: int, ready: int, levels: list[int], target: int,
                             tol: Tolerances | None, want: int, usage: int) -> None:
    t = tol or hpa.TOLERANCE
    values = [m(v) for v in levels]
    if kind == "object":
        p = hpa.object_value(current, values[0], m(target), ready, t)
    elif kind == "object-per-pod":
        p = hpa.object_average_value(current, values[0], m(target), t)
    elif kind == "external":
        p = hpa.external_value(current, values, m(target), ready, t)
    else:
        p = hpa.external_average_value(current, values, m(target), t)
    assert p.replicas == want
    assert p.usage == usage or (usage == MAX64 and p.usage >= MAX64)


def test_scale_up_from_zero_ignores_tolerance() -> None:
    """TestScaleUpFromZeroIgnoresToleranceCMObject: from 0 replicas, ceil(ratio) even within tolerance."""
    assert hpa.object_value(0, m(1000), m(1000), 0).replicas == 1
    assert hpa.object_value(0, m(1050), m(1000), 0).replicas == 2


# -- horizontal_test.go ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "desired", "lo", "hi", "want", "reason"), [
    (5, 7, 3, 8, 7, "DesiredWithinRange"),
    (3, 1, 2, 8, 2, "TooFewReplicas"),
    (1, 0, 0, 10, 0, "DesiredWithinRange"),
    (20, 1000, 1, 10, 10, "TooManyReplicas"),
    (3, 1000, 1, 2000, 6, "ScaleUpLimit"),
], ids=["within range", "below min", "zero within range", "max below scale-up limit", "scale-up limit"])
def test_convert_desired_replicas_with_rules(current: int, desired: int, lo: int, hi: int, want: int,
                                             reason: str) -> None:
    """TestConvertDesiredReplicasWithRules."""
    assert hpa.convert_with_rules(current, desired, lo, hi)[:2] == (want, reason)


@pytest.mark.parametrize(("history", "desired", "want"), [
    ([], 5, 5),
    ([(-120, 4), (-60, 5)], 3, 5),
    ([(-120, 1), (-60, 2)], 3, 3),
    ([(-600, 10), (-540, 9)], 3, 3),
    ([(-600, 10), (-60, 4), (-120, 5), (-540, 9)], 3, 5),
], ids=["empty log", "stabilize", "no stabilize", "no stabilize - old recommendations",
        "stabilize - old recommendations"])
def test_normalize_desired_replicas(history: list[tuple[float, int]], desired: int, want: int) -> None:
    """TestNormalizeDesiredReplicas (5-minute downscale window, no behavior)."""
    assert hpa.stabilize(history, 0.0, desired, 300) == want


@pytest.mark.parametrize(("history", "current", "desired", "up", "down", "want"), [
    ([], 100, 5, 0, 0, 5),
    ([(-120, 4), (-60, 5)], 100, 3, 0, 180, 5),
    ([(-120, 4), (-60, 5)], 1, 7, 300, 0, 4),
    ([(-120, 1), (-60, 2)], 100, 3, 300, 0, 3),
    ([(-120, 4), (-60, 5)], 1, 3, 0, 300, 3),
    ([(-600, 10), (-540, 9)], 100, 3, 0, 0, 3),
    ([(-600, 10), (-540, 9)], 1, 100, 0, 0, 100),
    ([(-600, 10), (-60, 4), (-120, 5), (-540, 9)], 100, 3, 0, 180, 5),
    ([(-6000, 10), (-60, 6), (-120, 5), (-180, 9)], 1, 100, 300, 0, 5),
    ([(-6000, 2), (-180, 3)], 2, 1, 300, 300, 2),
    ([(-6000, 2), (-180, 1)], 2, 3, 300, 300, 2),
], ids=["empty recommendations for scaling down", "simple scale down stabilization",
        "simple scale up stabilization", "no scale down stabilization", "no scale up stabilization",
        "no scale down stabilization, reuse recommendation element",
        "no scale up stabilization, reuse recommendation element",
        "scale down stabilization, reuse one of obsolete recommendation element",
        "scale up stabilization, reuse one of obsolete recommendation element",
        "do not scale up when prenormalized rec goes down", "do not scale down when prenormalized rec goes up"])
def test_normalize_desired_replicas_with_behavior(history: list[tuple[float, int]], current: int, desired: int,
                                                  up: int, down: int, want: int) -> None:
    """TestNormalizeDesiredReplicasWithBehavior."""
    assert hpa.stabilize_with_behaviors(history, 0.0, current, desired, up, down)[0] == want


def rules(pods: int, pods_period: int, percent: int, percent_period: int, window: int) -> ScalingRules:
    """generateScalingRules."""
    pol = []
    if pods:
        pol.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        pol.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, "Max", tuple(pol))


def uniform(changes: list[int], period: int) -> list[tuple[float, int]]:
    """generateEventsUniformDistribution, at now = 0."""
    seg = period / len(changes)
    return [(-(period - seg * (i + 1) + seg / 2), c) for i, c in enumerate(changes)]


E = uniform([1, 5, 9], 120)


@pytest.mark.parametrize(("up_ev", "down_ev", "lo", "hi", "up", "down", "current", "desired", "want", "reason"), [
    ([], [], 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ([], [], 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ([], [], 0, 10, None, None, 1, 0, 0, "DesiredWithinRange"),
    ([], [], 1, 10, None, None, 20, 1000, 10, "TooManyReplicas"),
    ([], [], 100, 150, None, None, 100, 1000, 150, "TooManyReplicas"),
    ([], [], 1, 2000, rules(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit"),
    ([], [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ([], [], 1, 1000, rules(100, 60, 100, 60, 0), None, 10, 500, 110, "ScaleUpLimit"),
    ([], [], 1, 1000, rules(2, 60, 100, 60, 0), None, 10, 500, 20, "ScaleUpLimit"),
    ([], [], 1, 1000, rules(100, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ([], [], 1, 1000, rules(10000, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ([], [], 1, 1000, rules(30, 60, 0, 0, 0), None, 10, 50, 40, "ScaleUpLimit"),
    ([], [], 1, 1000, rules(0, 0, 200, 60, 0), None, 10, 50, 30, "ScaleUpLimit"),
    ([], [], 1, 1000, None, rules(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit"),
    ([], [], 1, 1000, None, rules(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit"),
    ([], [], 1, 1000, None, rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ([], [], 5, 1000, None, rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ([], [], 1, 1000, None, rules(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit"),
    ([], [], 1, 1000, None, rules(0, 0, 50, 60, 300), 10, 5, 5, "DesiredWithinRange"),
    (E, [], 1, 200, rules(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas"),
    (E, [], 1, 200, rules(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas"),
    (E, [], 1, 1000, rules(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit"),
    (E, [], 1, 1000, rules(150, 120, 0, 0, 0), None, 100, 500, 235, "ScaleUpLimit"),
    (E, [], 1, 1000, rules(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit"),
    (uniform([4], 120), uniform([2], 120), 1, 1000, rules(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit"),
    ([], E, 1, 1000, None, None, 10, 5, 5, "DesiredWithinRange"),
], ids=["within range", "below min", "min 0", "max below scale-up limit", "more than max",
        "scale-up limit with user policies", "scaleUp with default behavior",
        "pods policy larger than percent policy", "percent policy larger than pods policy",
        "max with large pod policy", "max with large percent policy", "pod policy limitation",
        "percent policy limitation", "scaleDown percent larger than pod", "scaleDown pod larger than percent",
        "scaleDown min with large pod policy", "scaleDown min with large percent policy",
        "scaleDown pod policy limitation", "scaleDown percent policy limitation",
        "max with large pod policy and events", "max with large percent policy and events",
        "currentReplicas limitation with a lot of recent scale up events", "pod policy and previous scale up events",
        "percent policy and previous scale up events", "percent policy and previous scale up and down events",
        "scaleDown with default policy and previous events"])
def test_scaling_with_rules(up_ev: list[tuple[float, int]], down_ev: list[tuple[float, int]], lo: int, hi: int,
                            up: ScalingRules | None, down: ScalingRules | None, current: int, desired: int,
                            want: int, reason: str) -> None:
    """TestScalingWithRules (convertDesiredReplicasWithBehaviorRate; nil rules get the API defaults)."""
    behavior = Behavior(up or hpa.DEFAULT_SCALE_UP, down or hpa.DEFAULT_SCALE_DOWN)
    got = hpa.convert_with_behavior_rate(current, desired, lo, hi, behavior, up_ev, down_ev, 0.0)
    assert got[:2] == (want, reason)


def test_scale_limits_with_min_select_policy() -> None:
    """TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors."""
    r = ScalingRules(300, "Min", (ScalingPolicy("Pods", 2, 60), ScalingPolicy("Percent", 50, 60)))
    assert hpa.scale_up_limit_with_rules(1, [], [], r) == 2
    assert hpa.scale_down_limit_with_rules(5, [], [], r) == 3


def test_behavior_from_spec_applies_api_defaults_and_tolerance() -> None:
    b = hpa.behavior_from_spec({"scaleDown": {"stabilizationWindowSeconds": 0, "tolerance": "50m"}})
    assert b is not None
    assert b.scale_up == hpa.DEFAULT_SCALE_UP
    assert b.scale_down.stabilization_window_seconds == 0
    assert b.scale_down.policies == hpa.DEFAULT_SCALE_DOWN.policies
    assert b.tolerances() == Tolerances(down=0.05, up=0.1)
    assert hpa.behavior_from_spec(None) is None
    assert math.isclose(hpa.parse_quantity("1500m"), 1.5)


@pytest.mark.parametrize(("spec", "proposals", "want"), [
    (3, [("a", 5, ""), ("b", 7, "")], (7, "b", 0)),
    (3, [("a", 5, ""), ("b", None, "boom")], (5, "a", 1)),  # an invalid metric does not block a scale-up
    (3, [("a", 2, ""), ("b", None, "boom")], (None, "", 1)),  # ... but blocks a scale-down
    (3, [("a", None, "boom")], (None, "", 1)),
], ids=["max", "invalid-up", "invalid-down", "all-invalid"])
def test_replicas_for_metrics(spec: int, proposals: list[tuple[str, int | None, str]],
                              want: tuple[int | None, str, int]) -> None:
    """computeReplicasForMetrics (horizontal.go), as TestScaleUpOneMetricInvalid / TestScaleDownOneMetricInvalid."""
    d = hpa.replicas_for_metrics(spec, proposals)
    assert (d.replicas, d.metric, d.invalid) == want
