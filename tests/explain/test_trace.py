"""The serving path records a trace only while one is being made, and only into that request's trace.

Unit level: the real provider, runner, cache and freshness check over a fake query function.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from adapter.cache import LastKnownStore, QueryCache
from adapter.model import DEFAULT_TARGET, QueryResult, ResourceInfo, Sample, Selector, Target
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.selectors import parse_selector
from adapter.provider.custom import CustomMetricsProvider, policies
from adapter.provider.discovery import Relister
from adapter.provider.runner import QueryRunner
from adapter.provider.trace import Trace, current, recording
from adapter.provider.values import Freshness, Policy
from adapter.rules import LoadedRules, SourcedRule, parse_rules_text
from adapter.server import compile_rules

RULE = ("rules:\n- seriesQuery: 'gpu_util{namespace!=\"\",pod!=\"\"}'\n"
        "  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}\n"
        "  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n")


class Names:
    def __init__(self, names: list[str]) -> None:
        self.list = names

    async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> list[str]:
        return self.list

    async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
        return True


async def provider(ttl: float, values: dict[str, float], ages: dict[str, float]
                   ) -> tuple[CustomMetricsProvider, list[str]]:
    rf = parse_rules_text(RULE, "r.yaml")
    mapper = StaticResourceMapper()
    custom, _ = compile_rules(LoadedRules((SourcedRule(rf.rules[0], "r.yaml", "rules", 0),), (), ()), mapper)
    sent: list[str] = []

    async def series(q: str, age: float, _target: Target = DEFAULT_TARGET) -> list[dict[str, str]]:
        return [{"__name__": "gpu_util", "namespace": "ns", "pod": p} for p in values]

    async def query(promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
        sent.append(promql)
        now = time.time()
        out = [Sample({"namespace": "ns", "pod": p}, v, now) for p, v in values.items()]
        out += [Sample({"namespace": "ns", "pod": p, "__accel_age__": "1"}, now - a, now) for p, a in ages.items()]
        return QueryResult(tuple(out), now)

    relister = Relister(custom, [], series, 60, 600)
    await relister.update_now()
    runner = QueryRunner(query, ttl=ttl, max_entries=100)
    fresh = Freshness(LastKnownStore(max_entries=100), 60, time.time)
    return CustomMetricsProvider(relister, mapper, Names(list(values) + ["gone"]), runner, fresh,
                                 policies(Policy(max_age=60))), sent


SEL, NONE = parse_selector("app=x"), parse_selector("")


def test_nothing_is_recorded_when_nobody_asks() -> None:
    async def go() -> None:
        p, _ = await provider(15, {"a": 1.0}, {"a": 1})
        assert current() is None
        await p.get_by_selector("pods", "ns", SEL, "gpu_util", NONE)
        assert current() is None
    asyncio.run(go())


def test_trace_records_rule_plan_cache_and_each_objects_fate() -> None:
    async def go() -> tuple[Trace, Trace]:
        p, sent = await provider(15, {"a": 1.0, "b": float("nan"), "c": 3.0}, {"a": 1, "b": 1, "c": 500})
        with recording(Trace()) as first:
            await p.get_by_selector("pods", "ns", SEL, "gpu_util", NONE)
        with recording(Trace()) as second:
            await p.get_by_selector("pods", "ns", SEL, "gpu_util", NONE)
        assert len(sent) == 1  # the second explanation was answered by the cache, like any request
        return first, second
    first, second = asyncio.run(go())
    assert first.rule == "r.yaml: rules[0]" and first.series == "gpu_util" and first.mode == "cluster"
    assert first.queries[0].cache == "miss" and second.queries[0].cache == "hit"
    assert second.queries[0].ttl == 15 and second.queries[0].cache_age is not None
    objs = second.objects
    assert objs["a"].served and objs["a"].served_value == 1.0
    assert (objs["b"].reason, objs["c"].reason, objs["gone"].reason) == ("non_finite", "stale", "no_series")
    assert objs["c"].detail["limit_seconds"] == 60


def test_a_concurrent_request_does_not_write_into_someone_elses_trace() -> None:
    async def go() -> Trace:
        p, _ = await provider(0, {"a": 1.0, "b": float("nan")}, {"a": 1, "b": 1})

        async def explained() -> Trace:
            with recording(Trace()) as t:
                await asyncio.sleep(0)
                await p.get_by_selector("pods", "ns", SEL, "gpu_util", NONE)
                await asyncio.sleep(0)
            return t

        async def served() -> None:
            for _ in range(5):
                await p.get_by_selector("pods", "ns", SEL, "gpu_util", NONE)
                await asyncio.sleep(0)

        t, _ = await asyncio.gather(explained(), served())
        return t
    t = asyncio.run(go())
    assert len(t.queries) == 1
    assert set(t.objects) == {"a", "b", "gone"}


@pytest.mark.parametrize("ttl", [0.0, 10.0])
def test_cache_entry_info(ttl: float) -> None:
    now = [100.0]
    cache: QueryCache[str, int] = QueryCache(ttl=10, max_entries=10, clock=lambda: now[0])

    async def go() -> None:
        async def load() -> int:
            assert cache.loading("k")
            return 1
        await cache.get_or_load("k", load, ttl)
    asyncio.run(go())
    now[0] = 104.0
    assert cache.entry_info("k") == ((4.0, 10.0) if ttl else None)
    assert not cache.loading("k")
