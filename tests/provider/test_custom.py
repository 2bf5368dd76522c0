"""The provider over an in-process query function (our own seam): memo lifetime and cluster-wide mapping."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
import weakref

import pytest

from adapter.cache import LastKnownStore
from adapter.model import DEFAULT_TARGET, QueryResult, Sample, Selector, Target
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.selectors import parse_selector
from adapter.provider import custom
from adapter.provider.custom import CustomMetricsProvider, policies
from adapter.provider.discovery import Relister
from adapter.provider.objects import KsmObjectResolver
from adapter.provider.registry import build_index
from adapter.provider.runner import QueryRunner
from adapter.provider.values import Freshness, Policy
from adapter.rules import SourcedRule, parse_rules_text

RULE = """rules:
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, pods: int = 3) -> tuple[CustomMetricsProvider, list[str]]:
    sent: list[str] = []
    mapper = StaticResourceMapper()
    rf = parse_rules_text(RULE, "t.yaml")
    namer = MetricNamer.compile(SourcedRule(rf.rules[0], "t.yaml", "rules", 0), mapper)
    relister = Relister([namer], [], None, 60, 60)  # type: ignore[arg-type]
    relister.index = build_index([(namer, [{"__name__": "gpu_util", "namespace": "a", "pod": "p"}])], [])

    async def query(promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
        sent.append(promql)
        now = time.time()
        if "kube_pod_labels" in promql:
            return QueryResult(tuple(Sample({"namespace": ns, "pod": f"p{i}", "label_app": "x"}, 1, now)
                                     for ns in ("a", "b") for i in range(3)), now)
        values = [Sample({"namespace": ns, "pod": f"p{i}"}, 10 * i + (ns == "b"), now)
                  for ns in ("a", "b") for i in range(pods)]
        # the age elements Prometheus answers for the attached age query: newest raw sample 5 s ago
        ages = [Sample({"namespace": ns, "pod": f"p{i}", "__accel_age__": "1"}, now - 5, now)
                for ns in ("a", "b") for i in range(pods)] if "__accel_age__" in promql else []
        return QueryResult(tuple(values + ages), now)

    runner = QueryRunner(query, ttl=15, max_entries=100, clock=clock)
    fresh = Freshness(LastKnownStore(max_entries=100), 300, time.time)
    return CustomMetricsProvider(relister, mapper, KsmObjectResolver(runner), runner, fresh,
                                 policies(Policy())), sent


def test_one_cluster_wide_query_answers_every_namespace_and_memo_follows_the_result() -> None:
    clock = Clock()
    provider, sent = make(clock)
    sel = parse_selector("app=x")

    async def scenario() -> None:
        a = await provider.get_by_selector("pods", "a", sel, "gpu", Selector())
        b = await provider.get_by_selector("pods", "b", sel, "gpu", Selector())
        assert [(v.described.name, v.value) for v in a] == [("p0", 0), ("p1", 10), ("p2", 20)]
        assert [(v.described.name, v.value) for v in b] == [("p0", 1), ("p1", 11), ("p2", 21)]
        assert sent == ['kube_pod_labels{namespace!="",pod!=""}',
                        '(avg(gpu_util{pod!=""}) by (namespace,pod)) or label_replace(max by (namespace,pod) '
                        '(timestamp(gpu_util{pod!=""})), "__accel_age__", "1", "", "")']
        again = await provider.get_by_selector("pods", "a", sel, "gpu", Selector())
        assert again is a  # same request over the same result: the memoized list
        # the cache drops the result: the memo entry goes with it, nothing keeps it alive
        clock.now += 100
        provider.runner.cache.clear()
        for _ in range(3):  # let the loop drop its finished futures
            await asyncio.sleep(0)
        gc.collect()
        assert len(provider._memo) == 0
        assert len(provider._index) == 0
        fresh = await provider.get_by_selector("pods", "a", sel, "gpu", Selector())
        assert fresh is not a and [v.value for v in fresh] == [0, 10, 20]

    asyncio.run(scenario())


def test_described_object_memo_is_keyed_by_group_and_kind() -> None:
    """A Knative Service after a core Service of the same name came back with apiVersion "/v1"."""
    from adapter.model import GroupResource, ResourceInfo
    provider, _ = make(Clock())
    core = ResourceInfo(GroupResource("", "services"), "Service", "service", "v1", True)
    knative = ResourceInfo(GroupResource("serving.knative.dev", "services"), "Service", "service", "v1", True)
    assert provider._ref(core, "ns", "web").api_version == "/v1"
    assert provider._ref(knative, "ns", "web").api_version == "serving.knative.dev/v1"


def _by_name(provider: CustomMetricsProvider, pods: range) -> None:
    async def go() -> None:
        for i in pods:
            await provider.get_by_name("pods", "a", f"p{i}", "gpu", Selector())
    asyncio.run(go())


def test_memo_is_bounded_by_its_estimated_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custom, "MEMO_MAX_BYTES", 40_000)
    provider, _ = make(Clock(), pods=500)
    _by_name(provider, range(500))  # 500 request shapes over one result
    assert 0 < provider._memo_bytes <= 40_000
    assert provider._memo_bytes == sum(custom._memo_cost(k, e[1]) for k, e in provider._memo.items())
    assert 20 < len(provider._memo) < 500


def test_memo_caps_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custom, "MEMO_MAX_ENTRIES", 100)
    provider, _ = make(Clock(), pods=500)
    _by_name(provider, range(500))
    assert len(provider._memo) == 100


def test_memo_estimate_covers_what_entries_really_hold() -> None:
    """tracemalloc: what the memo entries keep alive is within their counted bytes."""
    provider, _ = make(Clock(), pods=400)
    _by_name(provider, range(400))  # query, index and ObjectRefs in place; then only the memo
    provider._memo.clear()
    provider._memo_bytes = 0
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _by_name(provider, range(400))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(provider._memo) == 400
    assert held <= provider._memo_bytes, (held, provider._memo_bytes)


def test_evicted_memo_entries_leave_nothing_behind_while_the_result_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    """No weakref.finalize per entry: an evicted entry takes its callback with it."""
    monkeypatch.setattr(custom, "MEMO_MAX_ENTRIES", 10)
    provider, _ = make(Clock(), pods=100)
    _by_name(provider, range(100))
    registered = len(weakref.finalize._registry)  # type: ignore[attr-defined]
    for _ in range(5):
        _by_name(provider, range(100))
    assert len(weakref.finalize._registry) <= registered  # type: ignore[attr-defined]
    assert len(provider._memo) == 10


def test_object_ref_memo_is_capped() -> None:
    provider, _ = make(Clock())
    info = provider.mapper.resolve("pods")
    for i in range(custom.REFS_MAX + 5000):
        provider._ref(info, "a", f"p{i}")
    assert len(provider._refs) <= custom.REFS_MAX
