"""A MetricRule's rule (confined to its namespace): every query it renders, in every request shape and
with every template, carries ``namespace="team-a"`` on every selector; root-scoped resources and
unconfinable templates are refused when the rule is compiled."""

from __future__ import annotations

import promql_parser as pp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.model import GroupResource, Selector
from adapter.naming.promql import parse
from adapter.naming.query import CLUSTER, NAMES, NAMESPACE, MetricNamer, RuleError
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.shape import plan_queries, selectors
from adapter.naming.validate import validate
from adapter.rules import SourcedRule, parse_metric_rule_spec
from tests.support.hostile import hostile_templates

PODS = GroupResource("", "pods")
OVERRIDES = {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}


def namer(template: str, *, external: bool = False, overrides: dict[str, object] | None = None,
          series_query: str = 'team_queue{pod!=""}') -> MetricNamer:
    rule = {"seriesQuery": series_query, "resources": {"overrides": overrides or OVERRIDES}, "metricsQuery": template}
    lst = "externalRules" if external else "rules"
    spec = parse_metric_rule_spec({lst: [rule]}, "metricrule:team-a/q")
    r = (spec.external_rules if external else spec.rules)[0]
    return validate(MetricNamer.compile(SourcedRule(r, "metricrule:team-a/q", lst, 0, "team-a"),
                                        StaticResourceMapper()))


def confined(query: str) -> bool:
    sels = selectors(parse(query))
    return bool(sels) and all(any((m.name, m.op, m.value) == ("namespace", pp.MatchOp.Equal, "team-a")
                                  for m in s.matchers.matchers) for s in sels)


def test_the_series_query_is_confined() -> None:
    assert namer("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)").series_query == \
        'team_queue{pod!="",namespace="team-a"}'


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(template=hostile_templates(), namespace=st.sampled_from(["team-a", "team-b"]),
       mode=st.sampled_from([NAMES, NAMESPACE, CLUSTER]), external=st.booleans())
def test_every_rendered_query_carries_the_namespace_on_every_selector(
        template: str, namespace: str, mode: str, external: bool) -> None:
    n = namer(template, external=external)
    if external:
        rendered = n.render_external("team_queue", namespace, Selector((), ""))
    else:
        rendered = n.render_custom("team_queue", PODS, namespace, ["a1", "b1"], Selector((), ""), mode=mode)
    assert confined(rendered.query), rendered.query
    plan = plan_queries(rendered.query, rendered.label_matchers, None if external else rendered.group_by)
    assert confined(plan.send), plan.send  # the age query attached to it too
    assert isinstance(parse(plan.send), pp.Expr)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"namespace": {"resource": "namespace"}, "node": {"resource": "node"}}, "resources.overrides.node"),
    ({"namespace": {"resource": "namespace"}, "pv": {"resource": "persistentvolume"}}, "resources.overrides.pv"),
], ids=["node", "persistentvolume"])
def test_root_scoped_resources_are_refused(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(RuleError, match=rf"^metricrule:team-a/q: rules\[0\]\.{field}: .* is not namespaced"):
        namer("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)", overrides=overrides)


def test_custom_rules_must_map_the_namespace_label() -> None:
    with pytest.raises(RuleError, match=r"^metricrule:team-a/q: rules\[0\]\.resources: no label maps to the namespace"):
        namer("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)", overrides={"pod": {"resource": "pod"}})


def test_external_rules_stay_namespaced() -> None:
    spec = parse_metric_rule_spec({"externalRules": [{"seriesQuery": "q", "resources": {"namespaced": False},
                                                      "metricsQuery": "sum(<<.Series>>)"}]}, "metricrule:team-a/q")
    with pytest.raises(RuleError, match=r"externalRules\[0\]\.resources\.namespaced: .* always namespaced"):
        MetricNamer.compile(SourcedRule(spec.external_rules[0], "metricrule:team-a/q", "externalRules", 0, "team-a"),
                            StaticResourceMapper())


def test_a_cluster_rule_is_not_confined() -> None:
    spec = parse_metric_rule_spec({"rules": [{"seriesQuery": "q", "resources": {"overrides": OVERRIDES},
                                              "metricsQuery": "sum(<<.Series>>)"}]}, "r.yaml")
    n = MetricNamer.compile(SourcedRule(spec.rules[0], "r.yaml", "rules", 0), StaticResourceMapper())
    assert n.confined_to is None and n.series_query == "q"
    assert n.render_custom("q", PODS, "team-b", ["x"], Selector((), "")).query == "sum(q)"
