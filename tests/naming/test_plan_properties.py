"""Property-based: whatever the request's names, namespace and metricLabelSelector, every query sent
(value + attached age query) parses, and the age query selects exactly the series the value query's
request matchers select (the same values, escaped)."""

from __future__ import annotations

import promql_parser as pp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.model import GroupResource, Requirement, Selector
from adapter.naming.promql import parse
from adapter.naming.query import CLUSTER, NAMES, NAMESPACE, MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.shape import AGE_LABEL, plan_queries, selectors
from adapter.rules import SourcedRule, parse_rules_text

PODS = GroupResource("", "pods")
TEMPLATES = [
    "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>) / scalar(sum(<<.Series>>{<<.LabelMatchers>>}))",
    'histogram_quantile(0.9, sum by (le, <<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>,x!="y"}[1m])))',
]

# any text, including quotes, backslashes, braces and newlines: the naming layer must hold even for
# input the edge would refuse
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
label_key = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z")


def _namer(template: str) -> MetricNamer:
    rf = parse_rules_text("rules:\n- seriesQuery: 'x'\n  resources: {overrides: {namespace: {resource: namespace}, "
                          "pod: {resource: pod}}}\n  metricsQuery: |-\n    " + template + "\n", "p.yaml")
    return MetricNamer.compile(SourcedRule(rf.rules[0], "p.yaml", "rules", 0), StaticResourceMapper())


NAMERS = [_namer(t) for t in TEMPLATES]


def _matchers(sel: pp.VectorSelector) -> set[tuple[str, str, str]]:
    return {(m.name, str(m.op), m.value) for m in sel.matchers.matchers}


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.integers(0, len(TEMPLATES) - 1), namespace=text, names=st.lists(text, min_size=1, max_size=4),
       sel=st.lists(st.tuples(label_key, st.sampled_from(["=", "!=", "in", "notin", "exists", "!"]),
                              st.lists(text, min_size=1, max_size=3)), max_size=3),
       mode=st.sampled_from([NAMES, NAMESPACE, CLUSTER]))
def test_every_query_sent_parses_and_the_age_query_selects_the_same_series(
        template: int, namespace: str, names: list[str], sel: list[tuple[str, str, list[str]]], mode: str) -> None:
    reqs = tuple(Requirement(k, op, () if op in ("exists", "!") else tuple(sorted(set(v))))
                 for k, op, v in sel if k not in ("namespace", "pod"))
    selector = Selector(reqs, "x")
    rendered = NAMERS[template].render_custom("x", PODS, namespace, names, selector, mode=mode)
    plan = plan_queries(rendered.query, rendered.label_matchers, rendered.group_by)
    sent = parse(plan.send)
    assert plan.age is not None and plan.combined
    # the value query is the first operand, untouched
    value_sels = selectors(parse(plan.value))
    request = parse("{" + rendered.label_matchers + "}")
    assert isinstance(request, pp.VectorSelector)
    wanted = _matchers(request)
    age_sels = [s for s in selectors(sent)][len(value_sels):]
    assert age_sels, plan.send
    for s in age_sels:
        assert wanted <= _matchers(s)
    # the namespace and object names reach the query as the literal values asked for
    if mode != CLUSTER:
        assert ("namespace", "MatchOp.Equal", namespace) in wanted
    if mode == NAMES and len(names) == 1:
        assert ("pod", "MatchOp.Equal", names[0]) in wanted
    assert AGE_LABEL in plan.send
