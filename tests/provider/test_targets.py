"""Per-backend (and per-tenant) state in the serving core, over in-process seams: the runner's cache and
single-flight keys, series discovery's per-(backend, seriesQuery) state, and the lastKnown memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapter.cache import LastKnownStore
from adapter.errors import Forbidden, NotFound, Unavailable
from adapter.model import DEFAULT_TARGET, GroupResource, QueryResult, Sample, Selector, Target, Tenant
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.provider.custom import CustomMetricsProvider, policies
from adapter.provider.discovery import Relister
from adapter.provider.external import ExternalMetricsProvider
from adapter.provider.objects import KsmObjectResolver
from adapter.provider.runner import QueryRunner
from adapter.provider.tenancy import Tenancy
from adapter.provider.values import Freshness, Policy
from adapter.rules import SourcedRule, load_rules, parse_rules_text
from adapter.server import compile_rules, tenanted_series

SERIES = 'gpu_util{namespace!="",pod!=""}'
RULES = f"""backends: [{{name: vm, url: 'http://vm:8428'}}]
rules:
- seriesQuery: '{SERIES}'
  resources: {{template: <<.Resource>>}}
  name: {{as: gpu_a}}
  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
- seriesQuery: '{SERIES}'
  resources: {{template: <<.Resource>>}}
  name: {{as: gpu_b}}
  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
  backend: vm
"""
PODS = GroupResource("", "pods")


def namers() -> list[MetricNamer]:
    rf = parse_rules_text(RULES, "rules.yaml")
    return [MetricNamer.compile(SourcedRule(r, "rules.yaml", "rules", i, backend=r.backend or "default"),
                                StaticResourceMapper()) for i, r in enumerate(rf.rules)]


def test_the_same_text_on_two_targets_is_two_queries_never_one_answer() -> None:
    sent: list[tuple[str, Target]] = []

    async def query(promql: str, target: Target = DEFAULT_TARGET) -> QueryResult:
        sent.append((promql, target))
        await asyncio.sleep(0)
        value = {DEFAULT_TARGET.backend: 1.0, "vm": 2.0}[target.backend] + (10 if target.tenant else 0)
        return QueryResult((Sample({}, value, 1.0),), 1.0)

    runner = QueryRunner(query, ttl=60, max_entries=100)
    targets = [DEFAULT_TARGET, Target("vm"), Target("vm", Tenant("a", (("X-Scope-OrgID", "a"),))),
               Target("vm", Tenant("b", (("X-Scope-OrgID", "b"),)))]

    async def main() -> list[float]:
        # concurrently (single-flight) and again (cache): each target its own answer
        first = await asyncio.gather(*(runner.run("sum(up)", target=t) for t in targets))
        again = await asyncio.gather(*(runner.run("sum(up)", target=t) for t in targets))
        return [r.samples[0].value for r in (*first, *again)]

    assert asyncio.run(main()) == [1.0, 2.0, 12.0, 12.0] * 2
    assert sorted((q, t.backend, t.tenant.name if t.tenant else "") for q, t in sent) == [
        ("sum(up)", "default", ""), ("sum(up)", "vm", ""), ("sum(up)", "vm", "a"), ("sum(up)", "vm", "b")]


def test_discovery_state_is_per_backend_for_the_same_series_query() -> None:
    a, b = namers()
    assert a.target is DEFAULT_TARGET and b.target == Target("vm")
    calls: list[str] = []

    async def series(match: str, _age: float, target: Target = DEFAULT_TARGET) -> list[dict[str, str]]:
        calls.append(target.backend)
        if target.backend == "vm":
            raise Unavailable("Prometheus backend 'vm' is unreachable")
        return [{"__name__": "gpu_util", "namespace": "ns", "pod": "p"}]

    relister = Relister([a, b], [], series, 60, 60)
    assert relister.unavailable("gpu_a", PODS) == "series discovery has not completed yet"
    assert relister.unavailable("gpu_b", PODS) == "series discovery has not completed yet (backend 'vm')"
    asyncio.run(relister.update_now())
    assert sorted(calls) == ["default", "vm"]  # one call per (backend, seriesQuery)
    assert {n.name_as: err for n, err in relister.statuses()} == {
        "gpu_a": "", "gpu_b": "Prometheus backend 'vm' is unreachable"}
    assert relister.index.lookup(PODS, True, "gpu_a") is not None
    assert relister.index.lookup(PODS, True, "gpu_b") is None
    assert relister.unavailable("gpu_a", PODS) is None
    assert relister.unavailable("gpu_b", PODS) == (
        "series discovery for rules.yaml: rules[1] has not succeeded yet (Prometheus backend 'vm' is unreachable)")


# --- tenancy on one backend of several ----------------------------------------------------------------

TENANCY = """backends: [{name: mimir, url: 'http://mimir:8080/prometheus'}]
tenancy:
  tenants: {team-a: {}}
  namespaces: {app-a: team-a}
  backends: [mimir]
rules:
- seriesQuery: 'm{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {as: on_default}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'm{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {as: on_mimir}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  backend: mimir
externalRules:
- seriesQuery: 'm{namespace!="",pod!=""}'
  name: {as: ext_mimir}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
  backend: mimir
"""


def test_tenancy_applies_on_its_backends_only_and_discovery_asks_each_backend_as_it(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(TENANCY)
    rules = load_rules(cfg)
    assert rules.tenancy is not None
    custom_namers, external_namers = compile_rules(rules, StaticResourceMapper())
    tenancy = Tenancy(rules.tenancy, None)
    sent: list[Target] = []
    asked: list[tuple[str, str]] = []

    async def query(promql: str, target: Target = DEFAULT_TARGET) -> QueryResult:
        sent.append(target)
        return QueryResult((), 1000.0)

    class Fake:  # what tenanted_series needs of Backends: by_name -> .series(match, max_age, tenant)
        def __init__(self, name: str) -> None:
            self.name = name

        async def series(self, match: str, max_age: float, tenant: Tenant | None = None) -> list[dict[str, str]]:
            asked.append((self.name, tenant.name if tenant else ""))
            return [{"__name__": "m", "namespace": "", "pod": ""}]

    class FakeBackends:
        by_name = {"default": Fake("default"), "mimir": Fake("mimir")}

    series = tenanted_series(FakeBackends(), tenancy)  # type: ignore[arg-type]
    relister = Relister(custom_namers, external_namers, series, 60, 60)
    asyncio.run(relister.update_now())
    assert sorted(asked) == [("default", ""), ("mimir", "team-a")]
    runner = QueryRunner(query, ttl=30, max_entries=100)
    freshness = Freshness(LastKnownStore(max_entries=10), 300, lambda: 1000.0)
    policy_for = policies(Policy(missing="error", max_age=300))
    custom = CustomMetricsProvider(relister, StaticResourceMapper(), KsmObjectResolver(runner, tenancy), runner,
                                   freshness, policy_for, tenancy)
    external = ExternalMetricsProvider(relister, runner, freshness, policy_for, tenancy)
    for call in (lambda: custom.get_by_name("pods", "app-a", "p1", "on_mimir", Selector()),
                 lambda: custom.get_by_name("pods", "app-a", "p1", "on_default", Selector()),
                 lambda: external.get("app-a", "ext_mimir", Selector())):
        with pytest.raises(NotFound):  # the fake backend answers no samples
            asyncio.run(call())
    by_backend = {t.backend: t.tenant.name if t.tenant else "" for t in sent}
    assert by_backend == {"mimir": "team-a", "default": ""}
    # a namespace without a tenant is denied before any metric is looked up, whatever its backend
    for denied in (lambda: custom.get_by_name("pods", "nowhere", "p1", "on_default", Selector()),
                   lambda: custom.get_by_name("pods", "nowhere", "p1", "no-such-metric", Selector()),
                   lambda: external.get("nowhere", "no-such-metric", Selector())):
        with pytest.raises(Forbidden):
            asyncio.run(denied())
