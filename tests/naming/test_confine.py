"""``confine``: every selector of any query gets the matchers, nothing else changes, and a query that
cannot be proved confined raises instead of going out (tables, then property-based over a PromQL
grammar and over arbitrary text)."""

from __future__ import annotations

import promql_parser as pp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.naming.confine import confine
from adapter.naming.promql import PromQLError, parse

NS = {"namespace": "team-a"}
ADDED = ("namespace", "MatchOp.Equal", "team-a")


def _selectors(query: str) -> list[pp.VectorSelector]:
    out: list[pp.VectorSelector] = []
    pp.walk(parse(query), pre_visit=lambda n: out.append(n) if isinstance(n, pp.VectorSelector) else None)
    return out


def _groups(sel: pp.VectorSelector) -> list[set[tuple[str, str, str]]]:
    ms = sel.matchers
    groups = ms.or_matchers or [ms.matchers]
    return [{(m.name, str(m.op), m.value) for m in g} for g in groups]


def assert_confined(query: str, result: str) -> None:
    before, after = _selectors(query), _selectors(result)
    assert len(before) == len(after)
    for b, a in zip(before, after, strict=True):
        assert b.name == a.name
        assert _groups(a) == [g | {ADDED} for g in _groups(b)]


@pytest.mark.parametrize(("query", "expected"), [
    ("x", 'x{namespace="team-a"}'),
    ("rate(x[5m])", 'rate(x{namespace="team-a"}[5m])'),
    ('sum by (pod)(rate(x{a="1"}[5m] offset 1m @ 100)) / on(pod) group_left(node) kube_pod_info{node!=""}',
     'sum by (pod)(rate(x{a="1",namespace="team-a"}[5m] offset 1m @ 100)) / on(pod) group_left(node) '
     'kube_pod_info{node!="",namespace="team-a"}'),
    ("max_over_time(rate(up[5m])[30m:1m])", 'max_over_time(rate(up{namespace="team-a"}[5m])[30m:1m])'),
    ("x * on(pod) group_left kube_pod_info",
     'x{namespace="team-a"} * on(pod) group_left kube_pod_info{namespace="team-a"}'),
    ('{a="1" or b="2"}', '{a="1" ,namespace="team-a" or b="2",namespace="team-a"}'),
    ('x{a="1",}', 'x{a="1",namespace="team-a"}'),
    ("sum(x) by (pod)", 'sum(x{namespace="team-a"}) by (pod)'),
    ('label_replace(x, "a", "{b}", "b", "(.*)")', 'label_replace(x{namespace="team-a"}, "a", "{b}", "b", "(.*)")'),
    ('x{namespace=~".*"} # a comment: y{\n + y',
     'x{namespace=~".*",namespace="team-a"} # a comment: y{\n + y{namespace="team-a"}'),
    ('{"my.metric"}', '{"my.metric",namespace="team-a"}'),
    ("time() - x offset 5m > bool NaN", 'time() - x{namespace="team-a"} offset 5m > bool NaN'),
    ("vector(1)", "vector(1)"),
])
def test_every_selector_carries_the_matcher(query: str, expected: str) -> None:
    assert confine(query, NS) == expected
    assert_confined(query, expected)


def test_an_existing_matcher_on_the_label_is_kept_so_the_selection_only_narrows() -> None:
    out = confine('x{namespace="team-b"}', NS)
    assert out == 'x{namespace="team-b",namespace="team-a"}'


def test_values_are_escaped_and_label_names_checked() -> None:
    assert confine("x", {"namespace": 'a"}) or vector(1'}) == 'x{namespace="a\\"}) or vector(1"}'
    with pytest.raises(PromQLError):
        confine("x", {'namespace="a"} or y{b': "c"})


def test_a_query_that_does_not_parse_raises() -> None:
    with pytest.raises(PromQLError):
        confine("sum(x", NS)


# a small PromQL grammar: selectors in every position the language has
metric = st.sampled_from(["x", "up", "kube_pod_info", "DCGM_FI_DEV_GPU_UTIL", "a:b:c", "by_x", "sum_x", "on_x"])
value = st.text(alphabet=st.sampled_from(list('ab"\\{}#, \n\'`or')), max_size=6)
label = st.sampled_from(["pod", "namespace", "a", "or", "by", "node"])
op = st.sampled_from(["=", "!=", "=~", "!~"])


@st.composite
def matcher(draw: st.DrawFn) -> str:
    v = draw(value)
    quoted = '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return f"{draw(label)}{draw(op)}{quoted}"


@st.composite
def selector(draw: st.DrawFn) -> str:
    name = draw(metric)
    ms = draw(st.lists(matcher(), max_size=3))
    if not ms and draw(st.booleans()):
        return name
    body = ",".join(ms)
    if draw(st.booleans()):
        body += ","
    if ms and draw(st.booleans()):
        body = f"{body} or {draw(matcher())}"
    return f"{name}{{{body}}}"


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda s: f"rate({s}[5m])", selector()),
        st.builds(lambda e: f"({e})", inner),
        st.builds(lambda e, g: f"sum by ({g}) ({e})", inner, label),
        st.builds(lambda e, g: f"max({e}) without ({g})", inner, label),
        st.builds(lambda a, b, o: f"{a} {o} {b}", inner, inner,
                  st.sampled_from(["+", "/", "and", "or", "unless", "> bool"])),
        st.builds(lambda a, b: f"{a} * on (pod) group_left (node) {b}", inner, inner),
        st.builds(lambda a, b: f"{a} / ignoring(a) group_left {b}", inner, inner),
        st.builds(lambda e: f'label_replace({e}, "dst", "{{x}} or y", "src", "(.*)")', inner),
        st.builds(lambda e: f"max_over_time(({e})[10m:1m])", inner),
        st.builds(lambda e: f"topk(3, {e}) # x{{\n", inner),
        st.builds(lambda e: f"{e} offset 5m" if "offset" not in e else e, selector()),
        st.builds(lambda e: f"histogram_quantile(0.9, {e})", inner),
        st.builds(lambda e: f"scalar({e}) * vector(1)", inner),
    )


queries = st.recursive(selector(), _extend, max_leaves=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries, value)
def test_any_query_of_the_grammar_is_confined(query: str, ns: str) -> None:
    try:
        parse(query)
    except PromQLError:
        return  # the grammar can build a type error (a range vector where an instant one goes)
    result = confine(query, {"namespace": ns})
    before, after = _selectors(query), _selectors(result)
    assert len(before) == len(after) > 0
    added = ("namespace", "MatchOp.Equal", ns)
    for b, a in zip(before, after, strict=True):
        assert _groups(a) == [g | {added} for g in _groups(b)]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40), value)
def test_any_text_either_raises_promql_error_or_comes_out_confined(query: str, ns: str) -> None:
    try:
        result = confine(query, {"namespace": ns})
    except PromQLError:
        return
    added = ("namespace", "MatchOp.Equal", ns)
    for sel in _selectors(result):
        assert all(added in g for g in _groups(sel))
