"""Tenancy's namespace -> tenant mapping (static map, default, deny, cluster-scoped), its config
validation (errors name file and field), denial accounting, per-tenant discovery and enforcement in
the providers (every query confined to the namespace and sent as its tenant)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapter.errors import ConfigError, Forbidden
from adapter.model import QueryResult, Selector, Target, Tenant
from adapter.naming.resources import StaticResourceMapper
from adapter.provider.tenancy import Tenancy, tenant_series
from adapter.rules import load_rules, parse_rules_text
from adapter.tenancy_config import TenancyConfig
from tests.support.tenantproxy import confined_to


def config(text: str) -> TenancyConfig:
    rf = parse_rules_text(text, "rules.yaml")
    assert rf.tenancy is not None
    return rf.tenancy


BASE = """
tenancy:
  tenants:
    team-a: {}
    team-b: {orgID: b-prod}
    proxied: {header: false, params: {namespace: $namespace}}
  namespaces: {app-a: team-a, app-a2: team-a, app-b: team-b, labelled: proxied}
"""


def test_static_map_sets_the_tenant_header() -> None:
    t = Tenancy(config(BASE), None)
    target = asyncio.run(t.target("app-a"))
    assert target == Target("default", Tenant("team-a", (("X-Scope-OrgID", "team-a"),)))
    assert asyncio.run(t.target("app-b")).tenant == Tenant("team-b", (("X-Scope-OrgID", "b-prod"),))


def test_namespace_placeholder_in_params_is_the_request_namespace() -> None:
    t = Tenancy(config(BASE), None)
    tenant = asyncio.run(t.target("labelled")).tenant
    assert tenant == Tenant("proxied", (), (("namespace", "labelled"),))


def test_header_name_is_configurable() -> None:
    t = Tenancy(config(BASE.replace("tenancy:\n", "tenancy:\n  header: X-Tenant\n")), None)
    assert asyncio.run(t.target("app-a")).tenant == Tenant("team-a", (("X-Tenant", "team-a"),))


def test_unmapped_deny_is_403_counted_and_logged_once_per_namespace_per_5_minutes(
        caplog: pytest.LogCaptureFixture) -> None:
    denied: list[str] = []
    now = [1000.0]
    t = Tenancy(config(BASE), None, on_denied=denied.append, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "adapter.provider.tenancy")
    for _ in range(3):
        with pytest.raises(Forbidden) as e:
            asyncio.run(t.target("elsewhere"))
    assert e.value.code == 403 and e.value.reason == "Forbidden"
    assert "elsewhere" in e.value.message
    assert denied == ["unmapped"] * 3
    assert len([r for r in caplog.records if "denied" in r.getMessage()]) == 1
    now[0] += 299
    with pytest.raises(Forbidden):
        asyncio.run(t.target("elsewhere"))
    assert len([r for r in caplog.records if "denied" in r.getMessage()]) == 1
    now[0] += 2
    with pytest.raises(Forbidden):
        asyncio.run(t.target("elsewhere"))
    assert len([r for r in caplog.records if "denied" in r.getMessage()]) == 2


def test_unmapped_default_tenant() -> None:
    t = Tenancy(config(BASE + "  unmapped: team-a\n"), None)
    assert asyncio.run(t.target("anything")).tenant == Tenant("team-a", (("X-Scope-OrgID", "team-a"),))


def test_cluster_scoped_requests_are_denied_unless_a_tenant_is_named() -> None:
    denied: list[str] = []
    t = Tenancy(config(BASE), None, on_denied=denied.append)
    with pytest.raises(Forbidden):
        asyncio.run(t.target(""))
    assert denied == ["cluster_scoped"]
    t = Tenancy(config(BASE + "  clusterScoped: team-b\n"), None)
    assert asyncio.run(t.target("")).tenant == Tenant("team-b", (("X-Scope-OrgID", "b-prod"),))


def test_backends_not_listed_are_not_tenanted() -> None:
    t = Tenancy(config(BASE + "  backends: [mimir]\n"), None)
    assert asyncio.run(t.target("elsewhere", "default")) == Target("default")
    with pytest.raises(Forbidden):
        asyncio.run(t.target("elsewhere", "mimir"))


@pytest.mark.parametrize(("extra", "error"), [
    ("  unmapped: nobody\n", "rules.yaml: tenancy: Value error, unmapped: 'nobody' is neither 'deny' nor a tenant"),
    ("  clusterScoped: proxied\n", "clusterScoped: tenant 'proxied' uses $namespace"),
    ("  namespaceLabel: t\n  namespaceAnnotation: t\n", "set at most one"),
    ("  header: 'X Bad'\n", "header: 'X Bad' is not a valid HTTP header name"),
    ("  backends: []\n", "backends: an empty list"),
    ("  tenantz: {}\n", "rules.yaml: tenancy.tenantz: unknown field (did you mean tenants?)"),
])
def test_config_errors_name_file_and_field(extra: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_rules_text(BASE + extra, "rules.yaml")
    assert error in str(e.value)


def test_config_errors_inside_a_tenant() -> None:
    with pytest.raises(ConfigError) as e:
        parse_rules_text("tenancy:\n  tenants:\n    a: {params: {query: x}}\n", "rules.yaml")
    assert str(e.value).startswith("rules.yaml: tenancy.tenants.a: Value error, params: 'query' cannot be set")
    with pytest.raises(ConfigError) as e:
        parse_rules_text('tenancy:\n  tenants:\n    a: {orgID: "x\\ny"}\n', "rules.yaml")
    assert "tenancy.tenants.a: Value error, orgID: must be a non-empty header value" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_rules_text("tenancy:\n  tenants:\n    a: {headers: {X-A: \"b\\rc\"}}\n", "rules.yaml")
    assert "headers.X-A: control characters are not allowed" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_rules_text("tenancy:\n  tenants:\n    a: {}\n  namespaces: {x: b}\n", "rules.yaml")
    assert "namespaces.x: unknown tenant 'b'" in str(e.value)


def test_label_mapping_needs_a_cluster() -> None:
    with pytest.raises(ConfigError) as e:
        Tenancy(config(BASE + "  namespaceLabel: tenant\n"), None, "rules.yaml")
    assert str(e.value).startswith("rules.yaml: tenancy.namespaceLabel: needs a Kubernetes API")


def test_load_rules_carries_tenancy(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text(BASE)
    assert load_rules(f).tenancy == config(BASE)


def test_discovery_asks_every_tenant_and_unions_the_shapes() -> None:
    t = Tenancy(config(BASE), None)
    tenants = t.discovery_tenants()
    assert tenants == [Tenant("team-a", (("X-Scope-OrgID", "team-a"),)),
                       Tenant("team-b", (("X-Scope-OrgID", "b-prod"),)),
                       Tenant("proxied", (), (("namespace", "labelled"),))]
    asked: list[Tenant | None] = []

    async def series(match: str, max_age: float, tenant: Tenant | None = None) -> list[dict[str, str]]:
        asked.append(tenant)
        return [{"__name__": "m", "namespace": "", "pod": ""}] if tenant and tenant.name == "team-a" else \
            [{"__name__": "m", "namespace": "", "pod": ""}, {"__name__": "n", "namespace": ""}]
    got = asyncio.run(tenant_series(series, t)("m", 60))
    assert asked == tenants
    assert len(got) == 5 and len({id(s) for s in got}) == 2  # equal shapes share one dict


# --- enforcement in the providers --------------------------------------------------------------------

TEMPLATES = {
    "plain": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    "no_matchers": "sum(<<.Series>>) by (pod)",
    "other_namespace": 'sum(<<.Series>>{namespace="app-b"}) by (pod)',
    "any_namespace": 'sum(<<.Series>>{namespace=~".*",pod!=""}) by (pod)',
    "group_left": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) / on() group_left sum(<<.Series>>)",
    "or": 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) or sum(<<.Series>>{namespace="app-b"}) by (pod)',
    "subquery": "max_over_time(sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)[1m:10s])",
}


def _rules_text() -> str:
    out = [BASE, "rules:"]
    for name, q in TEMPLATES.items():
        out.append(f"""- seriesQuery: 'm{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^m$", as: "{name}"}}
  metricsQuery: '{q}'""")
    out.append("""externalRules:
- seriesQuery: 'm{namespace!="",pod!=""}'
  resources: {namespaced: false}
  name: {matches: "^m$", as: "ext_all"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'""")
    return "\n".join(out) + "\n"


def _providers(tmp_path: Path) -> tuple[object, object, list[tuple[str, Target | None]]]:
    from adapter.cache import LastKnownStore
    from adapter.provider.custom import CustomMetricsProvider, policies
    from adapter.provider.discovery import Relister
    from adapter.provider.external import ExternalMetricsProvider
    from adapter.provider.objects import KsmObjectResolver
    from adapter.provider.runner import QueryRunner
    from adapter.provider.values import Freshness, Policy
    from adapter.server import compile_rules

    f = tmp_path / "rules.yaml"
    f.write_text(_rules_text())
    rules = load_rules(f)
    assert rules.tenancy is not None
    custom_namers, external_namers = compile_rules(rules, StaticResourceMapper())
    tenancy = Tenancy(rules.tenancy, None)
    sent: list[tuple[str, Target | None]] = []

    async def query(promql: str, target: Target | None = None) -> QueryResult:
        sent.append((promql, target))
        return QueryResult((), 1000.0)

    async def series(match: str, max_age: float, tenant: Tenant | None = None) -> list[dict[str, str]]:
        return [{"__name__": "m", "namespace": "", "pod": ""}]

    relister = Relister(custom_namers, external_namers, tenant_series(series, tenancy), 60, 60)
    asyncio.run(relister.update_now())
    runner = QueryRunner(query, ttl=30, max_entries=100)
    freshness = Freshness(LastKnownStore(max_entries=10), 300, lambda: 1000.0)
    policy_for = policies(Policy(missing="error", max_age=300))
    resolver = KsmObjectResolver(runner, tenancy)
    custom = CustomMetricsProvider(relister, StaticResourceMapper(), resolver, runner, freshness, policy_for,
                                   tenancy)
    external = ExternalMetricsProvider(relister, runner, freshness, policy_for, tenancy)
    return custom, external, sent


def _confined(sent: Sequence[tuple[str, Target | None]], namespace: str, tenant: str) -> None:
    assert sent
    for promql, target in sent:
        assert target is not None and target.tenant is not None and target.tenant.name == tenant, promql
        assert confined_to(promql, "namespace", namespace), promql


@pytest.mark.parametrize("metric", list(TEMPLATES))
def test_every_template_is_confined_and_tenanted(tmp_path: Path, metric: str) -> None:
    from adapter.errors import NotFound
    custom, _external, sent = _providers(tmp_path)
    for call in (lambda: custom.get_by_name("pods", "app-a", "p1", metric, Selector()),  # type: ignore[attr-defined]
                 lambda: custom.get_by_selector("pods", "app-a", Selector(), metric, Selector()),  # type: ignore[attr-defined]
                 lambda: custom.get_by_selector("pods", "app-a", _sel("app", "x"), metric,  # type: ignore[attr-defined]
                                                _sel("namespace", "app-b"))):
        with pytest.raises(NotFound):  # the fake backend answers no samples
            asyncio.run(call())
    _confined(sent, "app-a", "team-a")


def test_external_metrics_are_confined_even_for_a_non_namespaced_rule(tmp_path: Path) -> None:
    from adapter.errors import NotFound
    _, external, sent = _providers(tmp_path)
    with pytest.raises(NotFound):
        asyncio.run(external.get("app-b", "ext_all", Selector()))  # type: ignore[attr-defined]
    _confined(sent, "app-b", "team-b")


def test_denied_before_the_metric_is_even_looked_up(tmp_path: Path) -> None:
    custom, external, sent = _providers(tmp_path)
    with pytest.raises(Forbidden):
        asyncio.run(custom.get_by_name("pods", "nowhere", "p1", "no-such-metric", Selector()))  # type: ignore[attr-defined]
    with pytest.raises(Forbidden):
        asyncio.run(external.get("nowhere", "no-such-metric", Selector()))  # type: ignore[attr-defined]
    with pytest.raises(Forbidden):  # a cluster-scoped object
        asyncio.run(custom.get_by_name("nodes", "", "n1", "plain", Selector()))  # type: ignore[attr-defined]
    assert sent == []


def _sel(key: str, value: str) -> Selector:
    from adapter.model import Requirement
    return Selector((Requirement(key, "=", (value,)),), f"{key}={value}")


@pytest.mark.parametrize("metric", ["plain", "no_matchers", "or"])
def test_one_namespace_object_goes_as_its_tenant(tmp_path: Path, metric: str) -> None:
    """``namespaces/<ns>/metrics/<metric>``: root-scoped, but one namespace: its tenant, confined to it."""
    from adapter.errors import NotFound
    custom, _, sent = _providers(tmp_path)
    with pytest.raises(NotFound):
        asyncio.run(custom.get_by_name("namespaces", "", "app-b", metric, Selector()))  # type: ignore[attr-defined]
    _confined(sent, "app-b", "team-b")
    with pytest.raises(Forbidden):  # every namespace at once would span tenants
        asyncio.run(custom.get_by_selector("namespaces", "", Selector(), metric, Selector()))  # type: ignore[attr-defined]


def test_a_rules_reload_keeps_the_tenancy_block(tmp_path: Path) -> None:
    """The reload path (``RuleSource.read``) rebuilds LoadedRules: tenancy must survive it, or a reload
    would silently turn enforcement off."""
    from adapter.reload import RuleSource
    f = tmp_path / "rules.yaml"
    f.write_text(_rules_text())
    _, rules = RuleSource(f, ()).read()
    assert rules.tenancy == config(BASE)


def test_a_plan_that_cannot_be_proved_confined_is_a_500_never_sent(tmp_path: Path) -> None:
    from adapter.errors import InternalError
    from adapter.model import GroupResource
    from adapter.naming.query import MetricNamer
    from adapter.provider.plans import Plans
    from adapter.rules import SourcedRule
    rf = parse_rules_text(_rules_text(), "rules.yaml")
    namer = MetricNamer.compile(SourcedRule(rf.rules[0], "rules.yaml", "rules", 0), StaticResourceMapper())
    rendered = namer.render_custom("m", GroupResource("", "pods"), "app-a", ["p1"], Selector())
    plan = Plans().get(namer, rendered, confined={"namespace": "app-a"})
    assert confined_to(plan.send, "namespace", "app-a") and plan.age is not None
    assert confined_to(plan.age, "namespace", "app-a")
    with pytest.raises(InternalError) as e:  # confine refuses (here: not a label name): never sent
        Plans().get(namer, rendered, confined={"name-space": "app-a"})
    assert e.value.code == 500


def test_discovery_fails_whole_when_a_tenant_fails() -> None:
    """One tenant's /api/v1/series failing fails that seriesQuery's discovery (the relister then keeps
    its last good series): a partial union would drop the failing tenant's metrics."""
    from adapter.errors import Unavailable
    t = Tenancy(config(BASE), None)

    async def series(match: str, max_age: float, tenant: Tenant | None = None) -> list[dict[str, str]]:
        if tenant is not None and tenant.name == "team-b":
            raise Unavailable("Prometheus is unreachable")
        return [{"__name__": "m", "namespace": "", "pod": ""}]
    with pytest.raises(Unavailable):
        asyncio.run(tenant_series(series, t)("m", 60))
