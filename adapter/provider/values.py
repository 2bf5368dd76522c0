"""Turning query samples into servable values: NaN/Inf/overflow/staleness filtering and missing-data policy."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from adapter.cache import LastKnownStore
from adapter.model import Sample

log = logging.getLogger(__name__)

# anything larger breaks Quantity.MilliValue() in the HPA (int64 milli-units); DCGM "blank" values sit near 2^63
MAX_ABS_VALUE = 9.2e15


@dataclass(frozen=True)
class Policy:
    """Missing-data policy of one rule: ``error`` (leave out), ``zero``, or ``lastKnown`` up to ``max_age``."""

    missing: str = "error"
    max_age: float = 300.0
    cache_ttl: float | None = None


def usable(sample: Sample, now: float, max_value_age: float, what: str, promql: str) -> bool:
    """False (and a log line saying why) for NaN, +-Inf, out-of-range or too old values."""
    v = sample.value
    if math.isnan(v) or math.isinf(v):
        log.warning("skipping a non-finite value", extra={"object": what, "value": str(v), "promql": promql})
        return False
    if abs(v) > MAX_ABS_VALUE:
        log.warning("skipping a value out of Quantity range", extra={"object": what, "value": v, "promql": promql})
        return False
    age = now - sample.timestamp
    if age > max_value_age:
        log.warning("skipping a stale value", extra={"object": what, "age_seconds": round(age, 1),
                                                     "promql": promql})
        return False
    return True


class Freshness:
    """Remembers served values for ``lastKnown`` and reports the age of every value served."""

    def __init__(self, store: LastKnownStore[tuple[str, ...]], max_value_age: float,
                 clock: Callable[[], float], on_age: Callable[[float, int], None] | None = None) -> None:
        self.store = store
        self.max_value_age = max_value_age
        self.clock = clock
        self._on_age = on_age

    def observe_ages(self, ts_counts: dict[float, int]) -> None:
        if self._on_age:
            now = self.clock()
            for ts, count in ts_counts.items():
                self._on_age(max(0.0, now - ts), count)

    def last_known(self, key: tuple[str, ...], policy: Policy) -> tuple[float, float] | None:
        return self.store.get(key, self.clock(), min(policy.max_age, self.max_value_age))
