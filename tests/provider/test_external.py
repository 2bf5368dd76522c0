"""The external provider over an in-process query function: the lastKnown memory is bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapter.cache import LastKnownStore
from adapter.model import DEFAULT_TARGET, QueryResult, Sample, Target
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.selectors import parse_selector
from adapter.provider import external
from adapter.provider.custom import policies
from adapter.provider.discovery import Relister
from adapter.provider.external import ExternalMetricsProvider
from adapter.provider.registry import build_index
from adapter.provider.runner import QueryRunner
from adapter.provider.values import Freshness, Policy
from adapter.rules import SourcedRule, parse_rules_text

RULE = """externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  missingData: lastKnown
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (model)'
"""


def make() -> ExternalMetricsProvider:
    mapper = StaticResourceMapper()
    rf = parse_rules_text(RULE, "t.yaml")
    namer = MetricNamer.compile(SourcedRule(rf.external_rules[0], "t.yaml", "externalRules", 0), mapper)
    relister = Relister([], [namer], None, 60, 60)  # type: ignore[arg-type]
    relister.index = build_index([], [(namer, [{"__name__": "queue_depth", "namespace": "a"}])])

    async def query(promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
        now = time.time()
        values = [Sample({"model": f"llama-{i}", "namespace": "a"}, i, now) for i in range(5)]
        # the attached age query's answer: max by (model) of the raw samples' timestamps
        ages = [Sample({"model": f"llama-{i}", "__accel_age__": "1"}, now - 5, now) for i in range(5)]
        return QueryResult(tuple(values + ages), now)

    runner = QueryRunner(query, ttl=15, max_entries=100_000)
    fresh = Freshness(LastKnownStore(max_entries=100), 300, time.time)
    return ExternalMetricsProvider(relister, runner, fresh, policies(Policy()))


def test_last_known_answers_are_bounded_by_bytes_and_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(external, "LAST_MAX_BYTES", 40_000)
    monkeypatch.setattr(external, "LAST_MAX_ENTRIES", 100)
    provider = make()

    async def go(n: int) -> None:
        for i in range(n):  # n distinct selectors: n remembered answers of 5 items
            assert len(await provider.get("a", "queue_depth", parse_selector(f"model!=x{i}"))) == 5

    asyncio.run(go(200))
    assert 0 < provider._last_bytes <= 40_000
    assert provider._last_bytes == sum(external._last_cost(k, v) for k, v in provider._last.items())
    assert 10 < len(provider._last) < 100
    monkeypatch.setattr(external, "LAST_MAX_BYTES", 1 << 40)
    asyncio.run(go(200))
    assert len(provider._last) == 100
