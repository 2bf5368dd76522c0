"""Turning query samples into servable values: the data's age, NaN/Inf/overflow, missing-data policy.

The age of a value is now minus the timestamp of the newest raw sample behind it (see
``adapter.naming.shape.age_query``): never the query's evaluation time, which Prometheus stamps on
every element of an instant-query result. The limit is checked whenever a value is about to be
served (fresh query, cache hit, refresh-ahead result, ``lastKnown``), so a cached value ages like
the data it came from.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from adapter.cache import LastKnownStore
from adapter.provider.trace import current as current_trace

log = logging.getLogger(__name__)

# anything larger breaks Quantity.MilliValue() in the HPA (int64 milli-units); DCGM "blank" values sit near 2^63
MAX_ABS_VALUE = 9.2e15
# a withheld object is logged once per reason in this window (and counted every time)
LOG_WINDOW_SECONDS = 300.0
_LOG_MEMORY = 10_000

_MESSAGES = {
    "stale": "not serving a value older than the age limit",
    "no_sample_time": "not serving a value with no raw sample behind it (its age cannot be known)",
    "non_finite": "not serving a non-finite value",
    "out_of_range": "not serving a value out of Quantity range",
}


@dataclass(frozen=True)
class Policy:
    """Per rule: missing-data policy (``error`` = leave out, ``zero``, ``lastKnown``), the age limit
    (``maxAge``, never above ``--max-value-age``) and the cache TTL."""

    missing: str = "error"
    max_age: float = 300.0
    cache_ttl: float | None = None


class Freshness:
    """Decides whether a value may be served, remembers served values for ``lastKnown``, reports ages."""

    def __init__(self, store: LastKnownStore[tuple[str, ...]], max_value_age: float,
                 clock: Callable[[], float], on_age: Callable[[float, int], None] | None = None,
                 on_withheld: Callable[[str, int], None] | None = None) -> None:
        self.store = store
        self.max_value_age = max_value_age
        self.clock = clock
        self._on_age = on_age
        self._on_withheld = on_withheld
        self._logged: OrderedDict[tuple[str, str], float] = OrderedDict()

    def limit(self, policy: Policy) -> float:
        return min(policy.max_age, self.max_value_age)

    def check(self, value: float, data_time: float | None, now: float, limit: float, what: str,
              promql: str) -> bool:
        """True when ``value`` (whose newest raw sample is at ``data_time``) may be served; otherwise
        False, counted, and logged once per object and reason in ``LOG_WINDOW_SECONDS``."""
        if math.isnan(value) or math.isinf(value):
            self.withhold("non_finite", what, {"value": str(value), "promql": promql})
            return False
        if abs(value) > MAX_ABS_VALUE:
            self.withhold("out_of_range", what, {"value": value, "promql": promql})
            return False
        if data_time is None:
            self.withhold("no_sample_time", what, {"promql": promql})
            return False
        age = now - data_time
        if age > limit:
            self.withhold("stale", what, {"age_seconds": round(age, 1), "limit_seconds": limit,
                                          "promql": promql})
            return False
        return True

    def withhold(self, reason: str, what: str, extra: dict[str, object], count: int = 1) -> None:
        if self._on_withheld:
            self._on_withheld(reason, count)
        trace = current_trace()
        if trace is not None:
            trace.withheld(what, reason, extra)
        key = (reason, what)
        now = self.clock()
        last = self._logged.get(key)
        if last is not None and now - last < LOG_WINDOW_SECONDS:
            return
        self._logged[key] = now
        self._logged.move_to_end(key)
        while len(self._logged) > _LOG_MEMORY:
            self._logged.popitem(last=False)
        log.warning(_MESSAGES.get(reason, reason), extra={"object": what, "reason": reason, **extra})

    def observe_ages(self, ts_counts: dict[float, int]) -> None:
        if self._on_age:
            now = self.clock()
            for ts, count in ts_counts.items():
                self._on_age(max(0.0, now - ts), count)

    def last_known(self, key: tuple[str, ...], policy: Policy) -> tuple[float, float] | None:
        return self.store.get(key, self.clock(), self.limit(policy))
