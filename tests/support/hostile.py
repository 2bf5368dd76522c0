"""Hypothesis strategy: MetricRule ``metricsQuery`` templates written to escape their namespace.

Leaves drop ``<<.LabelMatchers>>``, widen or contradict the namespace (``namespace=~".*"``,
``namespace="team-b"``, ``!=``), or select by ``__name__`` alone; they are combined with ``or``,
``on() group_left``, ``label_replace`` rewriting the namespace label, subqueries and aggregations.
Every template renders valid PromQL (instant vectors throughout)."""

from __future__ import annotations

from hypothesis import strategies as st

LEAVES = (
    "<<.Series>>{<<.LabelMatchers>>}",
    "<<.Series>>",
    '<<.Series>>{namespace=~".*"}',
    '<<.Series>>{namespace="team-b"}',
    '<<.Series>>{<<.LabelMatchers>>,namespace!="team-a"}',
    '{__name__=~".+"}',
    '{__name__=~"team_.*",namespace=~"team-.*"}',
)


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("sum({}) by (<<.GroupBy>>)".format, inner),
        st.builds("({}) or ({})".format, inner, inner),
        st.builds("sum({}) by (<<.GroupBy>>) + on() group_left sum({})".format, inner, inner),
        st.builds('label_replace({}, "namespace", "team-a", "namespace", ".*")'.format, inner),
        st.builds("max_over_time(({})[2m:30s])".format, inner),
    )


def hostile_templates() -> st.SearchStrategy[str]:
    return st.recursive(st.sampled_from(LEAVES), _combine, max_leaves=4)
