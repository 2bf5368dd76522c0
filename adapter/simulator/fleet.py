"""``Fleet``: a simulated cluster plus its load curve - exposition and ground truth.

Values are pure functions of ``(seed, time)`` (counters also of ``origin``, the moment the
exporters "started"), so a test can ask ``fleet.truth(t)`` for exactly what a preset must return.
"""

from __future__ import annotations

import time

from adapter.simulator.curves import Curve
from adapter.simulator.demo import demo_topology
from adapter.simulator.exposition import Exposition
from adapter.simulator.topology import Pod, Topology, scale_topology
from adapter.simulator.truth import Truth, compute

WARMUP_SECONDS = 3600.0  # counters start as if the servers had been up for an hour


class Fleet:
    def __init__(self, topology: Topology, curve: Curve, seed: int, origin: float) -> None:
        self.topology = topology
        self.curve = curve
        self.seed = seed
        self.origin = origin
        self.epoch = origin - WARMUP_SECONDS
        self._exposition: Exposition | None = None

    @classmethod
    def build(cls, *, seed: int = 1, curve: Curve | None = None, layout: str = "mixed",
              namespaces: int | None = None, pods_per_namespace: int | None = None,
              origin: float | None = None) -> Fleet:
        """The realistic demo fleet, or a synthetic GPU fleet when ``namespaces`` is given.

        ``layout`` selects how dcgm-exporter's pod labels arrive: ``exported`` (ServiceMonitor
        honorLabels false), ``direct`` (honorLabels true) or ``mixed`` (alternating per node).
        """
        if namespaces is not None:
            topo = scale_topology(seed, namespaces, pods_per_namespace or 1, layout)
        else:
            topo = demo_topology(seed, layout)
        return cls(topo, curve or Curve(), seed, time.time() if origin is None else origin)

    # --- time model ---------------------------------------------------------------------------

    def load(self, pod: Pod | None, t: float) -> float:
        return 0.0 if pod is None else self.curve.load(t, pod.phase)

    def elapsed(self, t: float) -> float:
        """Seconds since the counters' zero point."""
        return t - self.epoch

    def load_integral(self, pod: Pod, t: float) -> float:
        """∫ load dt from the counters' zero point to ``t``."""
        return self.curve.integral(self.epoch, t, pod.phase)

    def mean_load(self, pod: Pod, t: float, window: float) -> float:
        return self.curve.mean(t - window, t, pod.phase)

    # --- outputs ------------------------------------------------------------------------------

    def render(self, t: float | None = None) -> str:
        """The ``/metrics`` body at time ``t`` (default: now)."""
        if self._exposition is None:
            self._exposition = Exposition(self)
        return self._exposition.render(time.time() if t is None else t)

    def truth(self, now: float | None = None, window: float = 60.0) -> Truth:
        """Expected value of every preset metric at ``now``; see ``adapter.simulator.truth``."""
        return compute(self, time.time() if now is None else now, window)

    @property
    def series_count(self) -> int:
        return sum(1 for line in self.render(self.origin).splitlines() if line and not line.startswith("#"))


__all__ = ["Fleet", "Truth"]
