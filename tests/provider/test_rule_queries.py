"""Per-rule query metrics: every value query sent for a rule is counted and timed by its source and rule;
cache hits are not queries; failures count as errors; the served adapter exposes them."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from adapter.errors import Unavailable
from adapter.model import DEFAULT_TARGET, QueryResult, Target
from adapter.naming.shape import plan_queries
from adapter.observability import Metrics
from adapter.provider.runner import QueryRunner

RULE = ("preset:vllm", "rules[8]")


def _runner(metrics: Metrics, fail: bool = False, ttl: float = 30.0) -> QueryRunner:
    async def query(promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
        if fail:
            raise Unavailable("prometheus is down")
        return QueryResult((), 1.0)
    return QueryRunner(query, ttl=ttl, max_entries=10, on_rule_query=metrics.observe_rule_query)


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_sent_queries_are_counted_per_rule_and_hits_are_not() -> None:
    metrics = Metrics(CollectorRegistry())
    runner = _runner(metrics)
    plan = plan_queries('sum by (pod) (up{namespace="a"})', 'namespace="a"', ["pod"])
    for _ in range(3):
        asyncio.run(runner.run_plan(plan, rule=RULE))
    labels = {"source": "preset:vllm", "rule": "rules[8]"}
    assert _value(metrics, "accel_adapter_rule_queries_total", outcome="success", **labels) == 1
    assert _value(metrics, "accel_adapter_rule_query_duration_seconds_count", **labels) == 1
    asyncio.run(runner.run_plan(plan_queries("up", "", None)))  # no rule given: not counted
    assert _value(metrics, "accel_adapter_rule_query_duration_seconds_count", **labels) == 1


def test_failed_queries_count_as_errors() -> None:
    metrics = Metrics(CollectorRegistry())
    runner = _runner(metrics, fail=True)
    with pytest.raises(Unavailable):
        asyncio.run(runner.run_plan(plan_queries("up", "", None), rule=RULE))
    assert _value(metrics, "accel_adapter_rule_queries_total", source="preset:vllm", rule="rules[8]",
                  outcome="error") == 1


def test_namer_label_names_the_preset_and_the_rule() -> None:
    from adapter.naming.query import MetricNamer
    from adapter.naming.resources import StaticResourceMapper
    from adapter.rules import load_rules

    loaded = load_rules(None, ("tgi",))
    namer = MetricNamer.compile(loaded.external_rules[1], StaticResourceMapper())
    assert namer.rule_label == ("preset:tgi", "externalRules[1]")
