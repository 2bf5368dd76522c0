"""horizontal.go: from the metrics' proposal to the replicas set (stabilization, limits, ``behavior``).

Time is passed in (``now`` seconds) and the controller's memory (recent recommendations and scale
events) is a plain argument, so a single sync can be replayed from what the HPA's status shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from adapter.hpa.replicas import MAX_INT32, TOLERANCE, Tolerances

DOWNSCALE_STABILIZATION_SECONDS = 300.0


def scale_up_limit(current_replicas: int) -> int:
    """calculateScaleUpLimit (no ``behavior``): max(2 x current, 4)."""
    return max(2 * current_replicas, 4)


def convert_with_rules(current: int, desired: int, min_replicas: int, max_replicas: int) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules: (replicas, ScalingLimited reason, message)."""
    limit = scale_up_limit(current)
    if max_replicas > limit:
        upper, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the " \
                                                   "maximum scale rate"
    else:
        upper, reason, msg = max_replicas, "TooManyReplicas", "the desired replica count is more than the " \
                                                              "maximum replica count"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > upper:
        return upper, reason, msg
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """``HPAScalingRules`` after API defaulting (``stabilization_window_seconds`` None on scale-down:
    the controller's ``--horizontal-pod-autoscaler-downscale-stabilization``, 300 s by default)."""

    stabilization_window_seconds: int | None
    select_policy: str = "Max"  # Max | Min | Disabled
    policies: tuple[ScalingPolicy, ...] = ()
    tolerance: float | None = None


DEFAULT_SCALE_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(None, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN

    def tolerances(self, default: float = TOLERANCE) -> Tolerances:
        """tolerancesForHpa (with HPAConfigurableTolerance on, as in 1.36's defaults)."""
        down, up = self.scale_down.tolerance, self.scale_up.tolerance
        return Tolerances(default if down is None else down, default if up is None else up)


def behavior_from_spec(spec: Mapping[str, object] | None) -> Behavior | None:
    """``spec.behavior`` JSON -> Behavior with the API's defaulting (SetDefaults_HorizontalPodAutoscalerBehavior)."""
    if spec is None:
        return None

    def rules(doc: object, default: ScalingRules) -> ScalingRules:
        if not isinstance(doc, Mapping):
            return default
        pols = doc.get("policies")
        policies = default.policies if pols is None else tuple(
            ScalingPolicy(str(p["type"]), int(p["value"]), int(p["periodSeconds"])) for p in pols)
        window = doc.get("stabilizationWindowSeconds")
        tol = doc.get("tolerance")
        return ScalingRules(default.stabilization_window_seconds if window is None else int(window),
                            str(doc.get("selectPolicy") or default.select_policy), policies,
                            None if tol is None else parse_quantity(str(tol)))

    return Behavior(rules(spec.get("scaleUp"), DEFAULT_SCALE_UP), rules(spec.get("scaleDown"), DEFAULT_SCALE_DOWN))


_SUFFIXES = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


def parse_quantity(text: str) -> float:
    """A Kubernetes Quantity string (``500m``, ``1.5k``, ``2Gi``, ``1e3``) as a float."""
    text = text.strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return float(text)


Recommendation = tuple[float, int]  # (time, replicas)
ScaleEvent = tuple[float, int]  # (time, replica change)


def stabilize(history: Sequence[Recommendation], now: float, desired: int,
              window: float = DOWNSCALE_STABILIZATION_SECONDS) -> int:
    """stabilizeRecommendation (no ``behavior``): the max of ``desired`` and the recommendations in the window."""
    cutoff = now - window
    return max([desired, *(r for t, r in history if t >= cutoff)])


def stabilize_with_behaviors(history: Sequence[Recommendation], now: float, current: int, desired: int,
                             up_window: float, down_window: float) -> tuple[int, str, str]:
    """stabilizeRecommendationWithBehaviors: bounded below by the min of the recommendations in the
    scale-up window and above by the max in the scale-down window, starting from ``current``."""
    up = down = desired
    for t, r in history:
        if t > now - up_window:
            up = min(up, r)
        if t > now - down_window:
            down = max(down, r)
    rec = min(max(current, up), down)
    if desired >= current:
        return rec, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the " \
                                         "lowest recent recommendation"
    return rec, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the " \
                                       "highest recent recommendation"


def _changed(period: int, events: Sequence[ScaleEvent], now: float) -> int:
    return sum(change for t, change in events if t > now - period)


def scale_up_limit_with_rules(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
                              rules: ScalingRules, now: float = 0.0) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    if rules.select_policy == "Disabled":
        return current
    pick, result = (min, MAX_INT32) if rules.select_policy == "Min" else (max, -MAX_INT32 - 1)
    for p in rules.policies:
        start = current - _changed(p.period_seconds, up_events, now) + _changed(p.period_seconds, down_events, now)
        proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
        result = pick(result, proposed)
    return result


def scale_down_limit_with_rules(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
                                rules: ScalingRules, now: float = 0.0) -> int:
    """calculateScaleDownLimitWithBehaviors."""
    if rules.select_policy == "Disabled":
        return current
    pick, result = (max, -MAX_INT32 - 1) if rules.select_policy == "Min" else (min, MAX_INT32)
    for p in rules.policies:
        start = current - _changed(p.period_seconds, up_events, now) + _changed(p.period_seconds, down_events, now)
        proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
        result = pick(result, proposed)
    return result


def convert_with_behavior_rate(current: int, desired: int, min_replicas: int, max_replicas: int,
                               behavior: Behavior, up_events: Sequence[ScaleEvent] = (),
                               down_events: Sequence[ScaleEvent] = (), now: float = 0.0) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate: (replicas, ScalingLimited reason, message)."""
    if desired > current:
        limit = max(scale_up_limit_with_rules(current, up_events, down_events, behavior.scale_up, now), current)
        if max_replicas > limit:
            upper, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than " \
                                                       "the maximum scale rate"
        else:
            upper, reason, msg = max_replicas, "TooManyReplicas", "the desired replica count is more than the " \
                                                                  "maximum replica count"
        if desired > upper:
            return upper, reason, msg
    elif desired < current:
        limit = min(scale_down_limit_with_rules(current, up_events, down_events, behavior.scale_down, now), current)
        if min_replicas < limit:
            lower, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than " \
                                                         "the maximum scale rate"
        else:
            lower, reason, msg = min_replicas, "TooFewReplicas", "the desired replica count is less than the " \
                                                                 "minimum replica count"
        if desired < lower:
            return lower, reason, msg
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


@dataclass(frozen=True)
class Normalized:
    replicas: int
    stabilized: int
    able_reason: str  # AbleToScale: ReadyForNewScale | ScaleUpStabilized | ScaleDownStabilized
    limited_reason: str  # ScalingLimited: DesiredWithinRange | ScaleUpLimit | ...
    limited: bool
    message: str


def normalize(current: int, proposal: int, min_replicas: int, max_replicas: int, behavior: Behavior | None,
              history: Sequence[Recommendation] = (), now: float = 0.0,
              downscale_window: float = DOWNSCALE_STABILIZATION_SECONDS,
              up_events: Sequence[ScaleEvent] = (), down_events: Sequence[ScaleEvent] = ()) -> Normalized:
    """normalizeDesiredReplicas / normalizeDesiredReplicasWithBehaviors for one sync."""
    if behavior is None:
        stabilized = stabilize(history, now, proposal, downscale_window)
        able = "ScaleDownStabilized" if stabilized != proposal else "ReadyForNewScale"
        replicas, reason, msg = convert_with_rules(current, stabilized, min_replicas, max_replicas)
    else:
        down = behavior.scale_down.stabilization_window_seconds
        stabilized, able, _ = stabilize_with_behaviors(
            history, now, current, proposal, behavior.scale_up.stabilization_window_seconds or 0,
            downscale_window if down is None else down)
        if stabilized == proposal:
            able = "ReadyForNewScale"
        replicas, reason, msg = convert_with_behavior_rate(current, stabilized, min_replicas, max_replicas,
                                                           behavior, up_events, down_events, now)
    return Normalized(replicas, stabilized, able, reason, replicas != stabilized, msg)


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int  # what the HPA sets
    proposed: int  # the metrics' proposal before stabilization and clamping
    reason: str  # condition reason: DesiredWithinRange, ScaleUpLimit, TooManyReplicas, TooFewReplicas, ...


@dataclass
class Autoscaler:
    """One HPA without ``spec.behavior`` over time (the demo): max over metrics, 5-minute downscale
    stabilization, clamp to [min, max] and to the scale-up limit ``max(2 x current, 4)`` per sync."""

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
        replicas, reason, _ = convert_with_rules(current_replicas, stabilized, self.min_replicas, self.max_replicas)
        if reason == "DesiredWithinRange" and stabilized != proposed:
            reason = "ScaleDownStabilized"
        return Decision(replicas, proposed, reason)

    def _stabilize(self, now: float, proposed: int) -> int:
        """stabilizeRecommendation: the max recommendation within the window, recording this one."""
        best = stabilize([(t, r) for t, r in self._history], now, proposed, self.downscale_stabilization)
        cutoff = now - self.downscale_stabilization
        old = next((i for i, (t, _) in reversed(list(enumerate(self._history))) if t < cutoff), None)
        if old is not None:
            self._history[old] = (now, proposed)
        else:
            self._history.append((now, proposed))
        return best


@dataclass(frozen=True)
class MetricsDecision:
    """computeReplicasForMetrics: the max over the metrics' proposals."""

    replicas: int | None  # None: this sync changes nothing (every metric invalid, or some invalid and it would
    #                       scale down); the HPA sets ScalingActive=False with the first error
    metric: str  # the metric that gave the maximum ("pods metric X", "external metric Y(...)")
    invalid: int
    first_error: str = ""


def replicas_for_metrics(spec_replicas: int, proposals: Sequence[tuple[str, int | None, str]]) -> MetricsDecision:
    """``proposals``: (metric description, replicas or None when invalid, error) per metric, in spec order."""
    replicas, metric, invalid, first = 0, "", 0, ""
    for name, proposal, error in proposals:
        if proposal is None:
            if not invalid:
                first = error
            invalid += 1
            continue
        if replicas == 0 or proposal > replicas:
            replicas, metric = proposal, name
    if invalid >= len(proposals) or (invalid and replicas < spec_replicas):
        return MetricsDecision(None, "", invalid, first)
    return MetricsDecision(replicas, metric, invalid, first)
