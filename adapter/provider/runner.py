"""Runs PromQL for the providers: result cache with TTL, single-flight, and the data's age with each value.

A value query goes out with its age query attached (``adapter.naming.shape.QueryPlan``); the answer
is split here into the values and the per-object times of the newest raw samples, and cached as one
result, so every cache hit still knows how old its data is.

Every query is parsed (Prometheus's grammar) before it is sent: one that does not parse is a bug in
a rule or in the adapter, never sent, logged at error level naming the rule, and answered 500 (plans
are parsed when they are built, ``adapter.provider.plans``; plain queries here).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from adapter.cache import QueryCache
from adapter.errors import InternalError
from adapter.model import DEFAULT_TARGET, QueryResult, Sample, Target
from adapter.naming.promql import PromQLError, parse
from adapter.naming.shape import AGE_LABEL, QueryPlan
from adapter.provider.trace import QueryTrace, Trace
from adapter.provider.trace import current as current_trace

log = logging.getLogger(__name__)

# ``query(promql)``, and ``query(promql, target)`` for any other target than the default
QueryFn = Callable[..., Awaitable[QueryResult]]
RuleLabel = tuple[str, str]  # (source, rule): ("preset:vllm", "rules[8]")
OnRuleQuery = Callable[[str, str, str, float], None]  # source, rule, outcome, seconds


# what a parsed result holds (tracemalloc over decoded Prometheus answers): per sample the Sample,
# its two floats and its labels dict; per label the value string and the dict slot (names are
# shared within one answer, counted anyway); within 10% above the real size for 2 to 10 labels
RESULT_BYTES = 300  # the result and its tuples; 100 more where the interpreter's free lists are empty
SAMPLE_BYTES = 280
LABEL_BYTES = 60
# one cache entry beyond its result: the OrderedDict slot and link, the entry record, the heap record
ENTRY_BYTES = 350


def _size_of(result: QueryResult) -> int:
    return RESULT_BYTES + sum(SAMPLE_BYTES + sum(LABEL_BYTES + len(k) + len(v) for k, v in s.labels.items())
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
        self.cache: QueryCache[str | tuple[str, Target], QueryResult] = QueryCache(
            ttl=ttl, max_entries=max_entries, on_event=on_event, size_of=_size_of, max_bytes=max_bytes,
            refresh_ahead=0.2, entry_bytes=ENTRY_BYTES,
            **kwargs)

    @property
    def caching(self) -> bool:
        return self.ttl > 0

    async def run(self, promql: str, ttl: float | None = None, where: str = "",
                  target: Target = DEFAULT_TARGET) -> QueryResult:
        """The result of ``promql`` (``where``: the rule that built it, for the log)."""
        key = _key(promql, target)
        return await self.cache.get_or_load(key, lambda: self._checked(promql, where, target), ttl)

    async def run_plan(self, plan: QueryPlan, ttl: float | None = None, rule: RuleLabel | None = None,
                       target: Target = DEFAULT_TARGET) -> QueryResult:
        """The value query of ``plan`` with the data's age (``QueryResult.ages``); a query actually sent
        (not answered by the cache) is reported per ``rule`` to ``on_rule_query``. ``target`` is part
        of the cache and single-flight key: no answer is shared across backends or tenants."""
        trace = current_trace()
        if plan.combined or plan.age is None:
            key = _key(plan.send, target)

            def load() -> Awaitable[QueryResult]:
                return self._timed(rule, self._load_combined(plan.send, target))
        else:
            key = _key("\x00ages\x00" + plan.value, target)

            def load() -> Awaitable[QueryResult]:
                return self._timed(rule, self._load_apart(plan, target))
        if trace is not None:
            return await self._traced(trace, plan, key, load, ttl)
        return await self.cache.get_or_load(key, load, ttl)

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

    async def _traced(self, trace: Trace, plan: QueryPlan, key: str | tuple[str, Target],
                      loader: Callable[[], Awaitable[QueryResult]], ttl: float | None) -> QueryResult:
        """``run_plan`` while explaining: the same cache lookup, noting where the answer came from."""
        entry = self.cache.entry_info(key)
        eff_ttl = self.ttl if ttl is None else ttl
        state = "off" if eff_ttl <= 0 else "hit" if entry is not None else \
            "coalesced" if self.cache.loading(key) else "miss"
        q = QueryTrace(plan.send, plan.value, plan.age, state, entry[0] if entry else None,
                       entry[1] if entry else eff_ttl)
        if not plan.combined and plan.age is not None:
            q.promql = plan.value + "\n" + plan.age  # sent as two queries
        trace.sent(q)
        result = await self.cache.get_or_load(key, loader, ttl)
        trace.answered(result)
        return result

    async def query_uncached(self, promql: str, target: Target = DEFAULT_TARGET) -> QueryResult:
        """One query straight to the backend (explanations: the raw samples behind a value)."""
        return await self._send(promql, target)

    def _send(self, promql: str, target: Target) -> Awaitable[QueryResult]:
        return self._query(promql) if _default(target) else self._query(promql, target)

    async def _load_combined(self, promql: str, target: Target) -> QueryResult:
        return split_ages(await self._send(promql, target))

    async def _load_apart(self, plan: QueryPlan, target: Target) -> QueryResult:
        assert plan.age is not None
        value, age = await asyncio.gather(self._send(plan.value, target), self._send(plan.age, target))
        return QueryResult(value.samples, value.evaluated_at, age.samples)

    async def _checked(self, promql: str, where: str, target: Target) -> QueryResult:
        try:
            parse(promql)
        except PromQLError as e:
            log.error("built a query that does not parse; not sent", extra={
                "rule": where or "(adapter)", "promql": promql, "error": str(e)})
            raise InternalError("Internal error occurred: unable to fetch metrics",
                                details={"causes": [{"message": "unable to fetch metrics"}]}) from e
        return await self._send(promql, target)


def _key(promql: str, target: Target) -> str | tuple[str, Target]:
    """The cache key: the query text alone for the default target (as before), else with its target."""
    if not _default(target):
        return (promql, target)
    return sys.intern(promql) if len(promql) < 512 else promql


def _default(target: Target) -> bool:
    return target is DEFAULT_TARGET or target == DEFAULT_TARGET
