"""Runs PromQL for the providers: result cache with TTL, single-flight, and the data's age with each value.

A value query goes out with its age query attached (``adapter.naming.shape.QueryPlan``); the answer
is split here into the values and the per-object times of the newest raw samples, and cached as one
result, so every cache hit still knows how old its data is.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from adapter.cache import QueryCache
from adapter.model import QueryResult, Sample
from adapter.naming.shape import AGE_LABEL, QueryPlan

QueryFn = Callable[[str], Awaitable[QueryResult]]
RuleLabel = tuple[str, str]  # (source, rule): ("preset:vllm", "rules[8]")
OnRuleQuery = Callable[[str, str, str, float], None]  # source, rule, outcome, seconds


def _size_of(result: QueryResult) -> int:
    # a rough but monotone estimate: per-sample overhead plus label text
    return 200 + sum(120 + sum(len(k) + len(v) + 100 for k, v in s.labels.items())
                     for s in (*result.samples, *result.ages))


def split_ages(result: QueryResult) -> QueryResult:
    """Values and age elements (tagged ``__accel_age__``) of a combined answer, apart."""
    values: list[Sample] = []
    ages: list[Sample] = []
    for s in result.samples:
        if AGE_LABEL in s.labels:
            ages.append(Sample({k: v for k, v in s.labels.items() if k != AGE_LABEL}, s.value, s.timestamp))
        else:
            values.append(s)
    return QueryResult(tuple(values), result.evaluated_at, tuple(ages))


class QueryRunner:
    """``run(promql)`` -> QueryResult, shared by identical concurrent requests and cached for the TTL.

    A hit in the last 20% of an entry's TTL reloads it in the background (refresh-ahead), so the
    HPA's steady request pattern never waits for an expired entry. With ``ttl == 0`` nothing is
    stored (prometheus-adapter's behaviour: one query per request), but identical requests in
    flight at the same moment still share one query.
    """

    def __init__(self, query: QueryFn, *, ttl: float, max_entries: int,
                 on_event: Callable[[str], None] | None = None,
                 clock: Callable[[], float] | None = None, max_bytes: int = 64 * 1024 * 1024,
                 on_rule_query: OnRuleQuery | None = None) -> None:
        self._query = query
        self._on_rule_query = on_rule_query
        self.ttl = ttl
        kwargs = {"clock": clock} if clock is not None else {}
        self.cache: QueryCache[str, QueryResult] = QueryCache(
            ttl=ttl, max_entries=max_entries, on_event=on_event, size_of=_size_of, max_bytes=max_bytes,
            refresh_ahead=0.2,
            **kwargs)

    @property
    def caching(self) -> bool:
        return self.ttl > 0

    async def run(self, promql: str, ttl: float | None = None) -> QueryResult:
        key = sys.intern(promql) if len(promql) < 512 else promql
        return await self.cache.get_or_load(key, lambda: self._query(promql), ttl)

    async def run_plan(self, plan: QueryPlan, ttl: float | None = None, rule: RuleLabel | None = None
                       ) -> QueryResult:
        """The value query of ``plan`` with the data's age (``QueryResult.ages``); a query actually sent
        (not answered by the cache) is reported per ``rule`` to ``on_rule_query``."""
        if plan.combined or plan.age is None:
            key = sys.intern(plan.send) if len(plan.send) < 512 else plan.send
            return await self.cache.get_or_load(key, lambda: self._timed(rule, self._load_combined(plan.send)), ttl)
        return await self.cache.get_or_load("\x00ages\x00" + plan.value,
                                            lambda: self._timed(rule, self._load_apart(plan)), ttl)

    async def _timed(self, rule: RuleLabel | None, load: Awaitable[QueryResult]) -> QueryResult:
        if rule is None or self._on_rule_query is None:
            return await load
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await load
            outcome = "success"
            return result
        finally:
            self._on_rule_query(rule[0], rule[1], outcome, time.perf_counter() - start)

    async def _load_combined(self, promql: str) -> QueryResult:
        return split_ages(await self._query(promql))

    async def _load_apart(self, plan: QueryPlan) -> QueryResult:
        assert plan.age is not None
        value, age = await asyncio.gather(self._query(plan.value), self._query(plan.age))
        return QueryResult(value.samples, value.evaluated_at, age.samples)
