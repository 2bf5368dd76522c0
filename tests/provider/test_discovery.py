"""Series discovery over an in-process series function (our own seam): each seriesQuery stands alone,
a failure keeps the rule's last good series, is logged once per change and reported per rule; a metric
whose rule never succeeded answers 503, not 404."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from adapter.cache import LastKnownStore
from adapter.errors import MetricNotFound, NotFound, Unavailable
from adapter.model import DEFAULT_TARGET, GroupResource, QueryResult, Selector, Target
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.provider.custom import CustomMetricsProvider, policies
from adapter.provider.discovery import PENDING, Relister, RuleStatus, _fits_literal_ends
from adapter.provider.external import ExternalMetricsProvider
from adapter.provider.objects import KsmObjectResolver
from adapter.provider.registry import SeriesIndex
from adapter.provider.runner import QueryRunner
from adapter.provider.values import Freshness, Policy
from adapter.rules import SourcedRule, parse_rules_text

RULES = """rules:
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu_utilization"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'DCGM_FI_DEV_FB_USED{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^DCGM_FI_DEV_FB_USED$", as: "gpu_memory_used"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (model)'
"""
GOOD = 'gpu_util{namespace!="",pod!=""}'
FLAKY = 'DCGM_FI_DEV_FB_USED{namespace!="",pod!=""}'
QUEUE = 'queue_depth{namespace!=""}'
PODS = GroupResource("", "pods")


class FakeSeries:
    """Series per seriesQuery; a query mapped to an exception raises it."""

    def __init__(self) -> None:
        self.answers: dict[str, list[dict[str, str]] | Exception] = {
            GOOD: [{"__name__": "gpu_util", "namespace": "a", "pod": "p"}],
            FLAKY: [{"__name__": "DCGM_FI_DEV_FB_USED", "namespace": "a", "pod": "p"}],
            QUEUE: [{"__name__": "queue_depth", "namespace": "a"}],
        }

    async def __call__(self, query: str, _max_age: float, _target: Target = DEFAULT_TARGET) -> list[dict[str, str]]:
        answer = self.answers[query]
        if isinstance(answer, Exception):
            raise answer
        return answer


def make() -> tuple[Relister, FakeSeries, list[RuleStatus]]:
    rf = parse_rules_text(RULES, "rules.yaml")
    mapper = StaticResourceMapper()
    custom = [MetricNamer.compile(SourcedRule(r, "rules.yaml", "rules", i), mapper) for i, r in enumerate(rf.rules)]
    external = [MetricNamer.compile(SourcedRule(r, "rules.yaml", "externalRules", i), mapper)
                for i, r in enumerate(rf.external_rules)]
    fake = FakeSeries()
    seen: list[RuleStatus] = []

    def on_relist(_s: float, _i: SeriesIndex, statuses: RuleStatus) -> None:
        seen.append(statuses)
    return Relister(custom, external, fake, 60, 60, on_relist=on_relist), fake, seen


def errors(statuses: RuleStatus) -> dict[str, str]:
    return {n.where: err for n, err in statuses}


def test_a_failing_series_query_leaves_the_others_indexed_and_is_reported_per_rule() -> None:
    relister, fake, seen = make()
    fake.answers[FLAKY] = Unavailable("Prometheus did not answer in time")
    asyncio.run(relister.update_now())
    assert relister.index.lookup(PODS, True, "gpu_utilization") is not None
    assert relister.index.lookup(PODS, True, "gpu_memory_used") is None
    assert "queue_depth" in relister.index.external
    assert errors(seen[-1]) == {"rules.yaml: rules[0]": "", "rules.yaml: rules[1]": "Prometheus did not answer in time",
                                "rules.yaml: externalRules[0]": ""}
    assert not relister.complete


def test_a_failing_series_query_keeps_its_last_good_series() -> None:
    relister, fake, seen = make()
    asyncio.run(relister.update_now())
    assert relister.complete
    fake.answers[FLAKY] = Unavailable("Prometheus is unreachable")
    fake.answers[GOOD] = [{"__name__": "gpu_util", "namespace": "a", "pod": "p", "gpu": "0"},
                          {"__name__": "gpu_util", "namespace": "b", "pod": "q", "gpu": "1"}]
    index = asyncio.run(relister.update_now())
    assert index.lookup(PODS, True, "gpu_memory_used") is not None  # the last good result, kept
    assert index.series_count == 4  # the good query's new series and the failed one's last series
    assert errors(seen[-1])["rules.yaml: rules[1]"] == "Prometheus is unreachable"
    assert relister.unavailable("gpu_memory_used", PODS) is None  # known: answered (or 503) by its query


def test_a_rule_failure_is_logged_when_it_starts_changes_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    relister, fake, _ = make()
    with caplog.at_level(logging.INFO, logger="adapter.provider.discovery"):
        fake.answers[FLAKY] = Unavailable("Prometheus did not answer in time")
        for _ in range(5):
            asyncio.run(relister.update_now())
        fake.answers[FLAKY] = Unavailable("Prometheus is unreachable")
        for _ in range(5):
            asyncio.run(relister.update_now())
        fake.answers[FLAKY] = [{"__name__": "DCGM_FI_DEV_FB_USED", "namespace": "a", "pod": "p"}]
        for _ in range(5):
            asyncio.run(relister.update_now())
    lines = [(r.levelname, r.getMessage(), getattr(r, "error", "")) for r in caplog.records
             if getattr(r, "rules", "") == "rules.yaml: rules[1]"]
    assert lines == [
        ("WARNING", "series discovery failed; its metrics answer 503 until it succeeds",
         "Prometheus did not answer in time"),
        ("WARNING", "series discovery failed; its metrics answer 503 until it succeeds", "Prometheus is unreachable"),
        ("INFO", "series discovery recovered", ""),
    ]


def test_unavailable_names_the_rule_that_could_produce_the_metric() -> None:
    relister, fake, _ = make()
    assert relister.unavailable("gpu_utilization", PODS) == PENDING  # before the first relist
    fake.answers[FLAKY] = Unavailable("Prometheus is unreachable")
    asyncio.run(relister.update_now())
    assert relister.unavailable("gpu_memory_used", PODS) == (
        "series discovery for rules.yaml: rules[1] has not succeeded yet (Prometheus is unreachable)")
    assert relister.unavailable("gpu_utilization", PODS) is None  # its rule succeeded
    assert relister.unavailable("no_such_metric", PODS) is None  # no rule could name it
    assert relister.unavailable("gpu_memory_used", GroupResource("", "nodes")) is None  # no label for nodes


def providers(relister: Relister) -> tuple[CustomMetricsProvider, ExternalMetricsProvider]:
    async def query(_promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
        raise AssertionError("no query is sent for a metric discovery does not know")

    runner = QueryRunner(query, ttl=0, max_entries=10)
    fresh = Freshness(LastKnownStore(max_entries=10), 300, time.time)
    mapper = StaticResourceMapper()
    return (CustomMetricsProvider(relister, mapper, KsmObjectResolver(runner), runner, fresh, policies(Policy())),
            ExternalMetricsProvider(relister, runner, fresh, policies(Policy())))


def test_a_metric_whose_discovery_never_succeeded_answers_503_not_404() -> None:
    relister, fake, _ = make()
    for q in (GOOD, FLAKY, QUEUE):
        fake.answers[q] = Unavailable("Prometheus is unreachable")
    asyncio.run(relister.update_now())
    custom, external = providers(relister)
    with pytest.raises(Unavailable) as e:
        asyncio.run(custom.get_by_name("pods", "a", "p", "gpu_memory_used", Selector()))
    assert e.value.code == 503
    assert e.value.message == ("the metric gpu_memory_used for pods is unavailable: series discovery for "
                               "rules.yaml: rules[1] has not succeeded yet (Prometheus is unreachable)")
    with pytest.raises(Unavailable, match="the metric queue_depth is unavailable: series discovery for "
                                          r"rules.yaml: externalRules\[0\] has not succeeded yet"):
        asyncio.run(external.get("a", "queue_depth", Selector()))
    with pytest.raises(MetricNotFound):  # no rule names it: still a 404
        asyncio.run(custom.get_by_name("pods", "a", "p", "no_such_metric", Selector()))


def test_an_unknown_metric_is_404_once_every_rule_has_been_discovered() -> None:
    relister, _, _ = make()
    asyncio.run(relister.update_now())
    custom, external = providers(relister)
    with pytest.raises(MetricNotFound):
        asyncio.run(custom.get_by_name("pods", "a", "p", "gpu_memory_used_typo", Selector()))
    with pytest.raises(NotFound):
        asyncio.run(external.get("a", "other_queue", Selector()))


@pytest.mark.parametrize(("name_as", "metric", "could"), [
    ("queue_${1}", "queue_x", True),
    ("queue_${1}", "keda-metric", False),       # the literal prefix every expansion keeps
    ("${1}_per_second", "http_per_second", True),
    ("${1}_per_second", "s0-prometheus-http", False),  # the literal suffix
    ("a${1}b${2}c", "abc", True),
    ("a${1}b${2}c", "xbc", False),
    ("$1_per_second", "anything", True),        # Go's Expand: $1_per_second is the group "1_per_second"
    ("$0", "anything", True),
    ("x$$1", "y", True),                        # an escaped $: not judged
])
def test_a_pattern_name_could_produce_only_what_keeps_its_literal_ends(name_as: str, metric: str,
                                                                       could: bool) -> None:
    assert _fits_literal_ends(name_as, metric) is could


def test_serves_is_what_the_providers_answer_themselves_and_everything_else_may_be_delegated() -> None:
    relister, fake, _ = make()
    custom, external = providers(relister)
    # before any discovery: what a rule may produce is ours (a 503 of ours), never delegated
    assert custom.serves("pods", "a", "gpu_utilization") and external.serves("a", "queue_depth")
    assert not custom.serves("pods", "a", "keda_metric")  # a literal name.as never names it
    assert not custom.serves("widgets", "a", "gpu_utilization")  # a resource we cannot map
    fake.answers[FLAKY] = Unavailable("Prometheus is unreachable")
    asyncio.run(relister.update_now())
    assert custom.serves("pods", "a", "gpu_utilization")  # discovered
    assert custom.serves("pods", "a", "gpu_memory_used")  # its discovery never succeeded: pending, ours
    assert not custom.serves("nodes", "", "gpu_utilization")  # no such metric for nodes
    assert external.serves("b", "queue_depth") and not external.serves("a", "s0-prometheus-http")


def test_a_metricrule_metric_is_ours_in_its_own_namespace_only() -> None:
    from adapter.provider.teamrules import TeamRules
    from tests.provider.test_teamrules import MAPPER, Source, obj, spec

    team = TeamRules(Source([obj("a", "r", spec("team_metric"))]), MAPPER)
    team.judge_now()
    namers = [MetricNamer.compile(r, MAPPER) for r in team.extra_rules() if r.list_name == "rules"]

    async def series(_q: str, _age: float) -> list[dict[str, str]]:
        return [{"__name__": "q", "namespace": "a", "pod": "p"}]

    relister = Relister(namers, [], series, 60, 60)
    custom, _ = providers(relister)
    assert custom.serves("pods", "a", "team_metric") and not custom.serves("pods", "b", "team_metric")  # pending
    asyncio.run(relister.update_now())
    assert custom.serves("pods", "a", "team_metric") and not custom.serves("pods", "b", "team_metric")
