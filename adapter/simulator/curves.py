"""Load curves: a load level in [0, 1] as a pure function of wall-clock time.

Every curve is ``base + amplitude * shape(x)`` with ``x = t / period + phase`` and ``shape`` in
[0, 1]; ``flat`` ignores time (its level is ``0.3 + 0.6 * phase``, so workloads still differ).
Each shape has a closed-form integral, so counters (``∫ rate dt``) and windowed averages are
exact functions of time: the simulator and the tests compute the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHAPES = ("flat", "ramp", "spike", "wave")
SPIKE_START = 0.5  # spike occupies [0.5, 0.65) of every period
SPIKE_WIDTH = 0.15


def _flat(phase: float) -> float:
    """``flat`` is constant in time; the phase still sets the level so workloads differ."""
    return 0.3 + 0.6 * (phase - math.floor(phase))


def _shape(name: str, x: float) -> float:
    f = x - math.floor(x)
    if name == "ramp":  # triangle: up over the first half of the period, down over the second
        return 2 * f if f < 0.5 else 2 - 2 * f
    if name == "spike":
        return 1.0 if SPIKE_START <= f < SPIKE_START + SPIKE_WIDTH else 0.0
    return (1 - math.cos(2 * math.pi * f)) / 2  # wave


def _shape_integral(name: str, x: float) -> float:
    """∫_0^x shape(u) du, in periods."""
    n = math.floor(x)
    f = x - n
    if name == "ramp":
        part = f * f if f < 0.5 else 2 * f - f * f - 0.5
        return 0.5 * n + part
    if name == "spike":
        return SPIKE_WIDTH * n + min(max(f - SPIKE_START, 0.0), SPIKE_WIDTH)
    return x / 2 - math.sin(2 * math.pi * x) / (4 * math.pi)


@dataclass(frozen=True, slots=True)
class Curve:
    """A periodic load curve. ``load`` is in [base, base + amplitude] ⊆ [0, 1]."""

    shape: str = "wave"
    period: float = 300.0
    base: float = 0.2
    amplitude: float = 0.6

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"curve: unknown shape {self.shape!r} (one of {', '.join(SHAPES)})")
        if self.period <= 0:
            raise ValueError("curve: period must be > 0")
        if self.base < 0 or self.amplitude < 0 or self.base + self.amplitude > 1:
            raise ValueError("curve: need 0 <= base, 0 <= amplitude, base + amplitude <= 1")

    def load(self, t: float, phase: float = 0.0) -> float:
        if self.shape == "flat":
            return self.base + self.amplitude * _flat(phase)
        return self.base + self.amplitude * _shape(self.shape, t / self.period + phase)

    def integral(self, t0: float, t1: float, phase: float = 0.0) -> float:
        """∫_{t0}^{t1} load(t) dt (seconds x load)."""
        if self.shape == "flat":
            return (self.base + self.amplitude * _flat(phase)) * (t1 - t0)
        p = self.period
        s1 = _shape_integral(self.shape, t1 / p + phase)
        s0 = _shape_integral(self.shape, t0 / p + phase)
        return self.base * (t1 - t0) + self.amplitude * p * (s1 - s0)

    def mean(self, t0: float, t1: float, phase: float = 0.0) -> float:
        """Average load over [t0, t1] (the instantaneous load when the window is empty)."""
        if t1 <= t0:
            return self.load(t1, phase)
        return self.integral(t0, t1, phase) / (t1 - t0)
