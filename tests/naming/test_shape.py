"""Template shapes decided on the parsed query (promql-parser), and the data-age query built from it."""

from __future__ import annotations

import pytest

from adapter.naming.promql import PromQLError, parse
from adapter.naming.shape import age_query, not_local, outer_grouping, plan_queries, with_ages

P = '__accel_probe__="1"'


@pytest.mark.parametrize(("query", "namespace_wide", "cluster_wide"), [
    ("avg(S{%s}) by (namespace,pod)", True, True),
    ("avg(S{%s}) by (pod)", True, False),
    ("avg without (gpu) (S{%s})", True, True),
    ("avg without (pod) (S{%s})", False, False),
    ("rate(S{%s}[2m])", True, True),
    ("time() - S{%s}", True, True),
    ("clamp_min(S{%s}, 0) * 100", True, True),
    ("histogram_quantile(0.95, sum by (namespace, pod, le) (rate(S{%s}[1m]))) >= 0", True, True),
    ("S{%s} / on (namespace, pod) T{%s}", True, True),
    ("S{%s} / on (pod) group_left (node) T{%s}", True, False),
    ("S{%s} / ignoring (gpu) T{%s}", True, True),
    ("sum by (namespace,pod) (S{%s}) or vector(0)", True, True),
    # mixes objects: rendered per request exactly as prometheus-adapter does
    ("sum(S{%s}) by (namespace,pod) / scalar(sum(S{%s}))", False, False),
    ("S{%s} / on () group_left sum(S{%s})", False, False),
    ("S{%s} / ignoring (pod) T{%s}", False, False),
    ("topk(1, S{%s})", False, False),
    ("topk by (namespace, pod) (1, S{%s})", True, True),
    ("absent(S{%s})", False, False),
    ("S{%s} / sum(S{%s})", False, False),
    ("histogram_quantile(scalar(sum(S{%s})), S{%s})", False, False),
    # data the request does not select is the same whatever was requested: anything goes there
    ("histogram_quantile(scalar(q), S{%s})", True, True),
    ("S{%s} * on (node) group_left () avg by (node) (N)", True, True),
    ("S{%s} and on (node) N", True, True),
    ("avg by (node) (N) * on (node) group_right () S{%s}", True, True),
    ("S{%s} or on (node) N", False, False),
    ("S{%s} * on (node) N", False, False),
    ("N * on (node) group_left () S{%s}", False, False),
    ('label_replace(S{%s}, "pod", "$1", "target", "(.+)")', False, False),
    # relabelled from series the request does not select (dcgm-exporter's exported_pod layout)
    ('avg by (namespace,pod) (label_replace(S{exported_pod!=""}, "pod", "$1", "exported_pod", "(.+)") '
     'and on (namespace, pod) K{%s})', True, True),
], ids=lambda x: x if isinstance(x, str) else None)
def test_locality(query: str, namespace_wide: bool, cluster_wide: bool) -> None:
    expr = parse(query.replace("%s", P))
    assert (not_local(expr, ["pod"], ["__accel_probe__"]) is None) == namespace_wide
    assert (not_local(expr, ["namespace", "pod"], ["__accel_probe__"]) is None) == cluster_wide


def test_age_query_takes_the_selectors_that_carry_the_request_matchers() -> None:
    lm = 'namespace="a",pod=~"x|y"'
    expr = parse(f'sum by (pod) (rate(S{{{lm}}}[2m])) / sum by (pod) (T{{c="1",{lm}}} offset 5m) '
                 '* on (pod) group_left K{job="ksm"}')
    assert age_query(expr, lm, ["pod"]) == (
        'max by (pod) (label_replace(timestamp(S{namespace="a",pod=~"x|y"}), "__accel_age_source__", "0", "", "")'
        ' or label_replace(timestamp(T{c="1",namespace="a",pod=~"x|y"}), "__accel_age_source__", "1", "", ""))')


def test_age_query_of_one_selector_and_of_a_histogram() -> None:
    lm = 'namespace="a",pod="x"'
    expr = parse(f'histogram_quantile(0.9, sum(rate(H_bucket{{{lm}}}[1m])) by (le, pod))')
    assert age_query(expr, lm, ["pod"]) == 'max by (pod) (timestamp(H_bucket{namespace="a",pod="x"}))'
    assert age_query(parse('sum(q{})'), "", []) == "max (timestamp(q{}))"


def test_values_escaped_in_the_age_query() -> None:
    lm = 'namespace="a\\"b"'
    assert age_query(parse(f'S{{{lm}}}'), lm, ["pod"]) == 'max by (pod) (timestamp(S{namespace="a\\"b"}))'
    parse(age_query(parse(f'S{{{lm}}}'), lm, ["pod"]) or "")


def test_combined_query_parses_and_scalar_values_go_apart() -> None:
    plan = plan_queries('sum(S{namespace="a"}) by (model)', 'namespace="a"', None)
    assert plan.combined and plan.age_group == ("model",)
    parse(plan.send)
    assert outer_grouping(parse("(sum by (model) (x))")) == ("model",)
    scalar = plan_queries('scalar(sum(S{namespace="a"}))', 'namespace="a"', None)
    assert not scalar.combined and scalar.age == 'max (timestamp(S{namespace="a"}))'
    assert with_ages("1", parse("1"), "x") is None


def test_unparsable_query_is_refused() -> None:
    with pytest.raises(PromQLError):
        plan_queries('S{pod!=""', "", ["pod"])


def test_template_without_label_matchers_has_no_age() -> None:
    assert plan_queries("sum(S) by (pod)", 'namespace="a"', ["pod"]).age is None


# prometheus-adapter's published rules (its Helm chart's default rules and docs/walkthrough.md)
PUBLISHED = [
    'sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[5m])) by (<<.GroupBy>>)',
    'sum(<<.Series>>{<<.LabelMatchers>>,container!="POD"}) by (<<.GroupBy>>)',
    "sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)",
    "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
    "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
]


@pytest.mark.parametrize("template", PUBLISHED)
def test_published_sample_rules_keep_the_cluster_wide_query(template: str) -> None:
    from adapter.model import GroupResource
    from adapter.naming.query import MetricNamer
    from adapter.naming.resources import StaticResourceMapper
    from adapter.rules import SourcedRule, parse_rules_text
    rf = parse_rules_text("rules:\n- seriesQuery: 'x{namespace!=\"\",pod!=\"\"}'\n"
                          "  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}\n"
                          f"  metricsQuery: '{template}'\n", "t.yaml")
    namer = MetricNamer.compile(SourcedRule(rf.rules[0], "t.yaml", "rules", 0), StaticResourceMapper())
    assert namer.wide_reason(GroupResource("", "pods"), cluster=True) is None


def test_every_preset_custom_rule_keeps_the_cluster_wide_query() -> None:
    from adapter.model import GroupResource
    from adapter.naming.query import MetricNamer
    from adapter.naming.resources import StaticResourceMapper
    from adapter.rules import available_presets, load_rules
    rules = load_rules(None, tuple(available_presets()))
    assert len(rules.rules) >= 30
    for sourced in rules.rules:
        namer = MetricNamer.compile(sourced, StaticResourceMapper())
        assert namer.wide_reason(GroupResource("", "pods"), cluster=True) is None, sourced.where


def test_age_selectors_of_a_label_values_by_name_template() -> None:
    """prometheus-adapter's documented pattern puts the request's values in its own matchers."""
    lm = 'namespace="ns1",pod="p1"'
    expr = parse('sum(X{namespace="ns1",pod=~"p1"}) by (pod) / sum(Y{job="j"}) by (pod)')
    assert age_query(expr, lm, ["pod"]) == 'max by (pod) (timestamp(X{namespace="ns1",pod=~"p1"}))'
    several = 'namespace="ns1",pod=~"a\\\\.b|c"'
    expr = parse('sum(X{namespace="ns1",pod=~"a.b|c"}) by (pod) / sum(X{namespace="ns2",pod=~"a.b|c"}) by (pod)')
    assert age_query(expr, several, ["pod"]) == 'max by (pod) (timestamp(X{namespace="ns1",pod=~"a.b|c"}))'
