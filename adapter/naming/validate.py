"""Load-time PromQL checks of a compiled rule, on Prometheus's grammar (``naming.promql.parse``).

A rule's ``seriesQuery`` must be a series selector (what ``/api/v1/series`` accepts as ``match[]``), and
its ``metricsQuery``, rendered with representative template arguments (the shapes the adapter sends:
per object, per namespace, cluster-wide; external with and without a selector), must parse. A bad
rule then fails start-up and ``check-config`` with the file, the rule and the field, e.g.
``rules.yaml: rules[1].seriesQuery: invalid PromQL: unexpected end of input inside braces``,
instead of failing every relist or every request.
"""

from __future__ import annotations

from collections.abc import Iterator

import promql_parser

from adapter.model import GroupResource
from adapter.naming.promql import PromQLError, parse
from adapter.naming.query import MetricNamer, RuleError
from adapter.naming.resources import CLUSTER_LEVEL, NAMESPACES, NODES
from adapter.naming.templates import Args, TemplateError

NAMES = '"a|b"'  # two object names, as a request for several objects renders them
TEMPLATE_RESOURCES = (NAMESPACES, NODES, GroupResource("", "pods"))


def validate(namer: MetricNamer) -> MetricNamer:
    """``namer`` unchanged, or ``RuleError`` naming the rule and the field."""
    series = series_name(namer.series_query, f"{namer.where}.seriesQuery")
    for what, args in representative_args(namer, series):
        try:
            promql = namer.query.render(args)
        except TemplateError as e:
            raise RuleError(f"{namer.where}.metricsQuery: {e} (rendered {what})") from e
        try:
            parse(promql)
        except PromQLError as e:
            raise RuleError(f"{namer.where}.metricsQuery: invalid PromQL: {e} (rendered {what}: {promql})") from e
        try:
            namer.confine(promql)
        except PromQLError as e:
            raise RuleError(f"{namer.where}.metricsQuery: cannot be confined to namespace {namer.confined_to}: "
                            f"{e} (rendered {what}: {promql})") from e
    return namer


def series_name(series_query: str, where: str) -> str:
    """The metric name a series selector names (``series`` if it names none); ``RuleError`` unless it is
    a plain series selector."""
    try:
        expr = parse(series_query)
    except PromQLError as e:
        raise RuleError(f"{where}: invalid PromQL: {e}") from e
    if not isinstance(expr, promql_parser.VectorSelector) or expr.offset is not None or expr.at is not None:
        raise RuleError(f"{where}: must be a series selector such as 'metric{{label!=\"\"}}' "
                        f"(what /api/v1/series accepts), not {type(expr).__name__}")
    if expr.name:
        return str(expr.name)
    for m in expr.matchers.matchers:
        if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
            return str(m.value)
    return "series"


def _args(series: str, matchers: list[str], values: dict[str, str], group_by: list[str]) -> Args:
    return {"Series": series, "LabelMatchers": ",".join(matchers), "LabelValuesByName": values,
            "GroupBy": ",".join(group_by), "GroupBySlice": group_by}


def representative_args(namer: MetricNamer, series: str) -> Iterator[tuple[str, Args]]:
    """(what, template arguments) for each request shape the rule can be rendered for."""
    ns = namer.converter.label_for(NAMESPACES) or "namespace"
    if namer.sourced.list_name == "externalRules":
        base = [f'{ns}="ns"'] if namer.namespaced_external else []
        values = {ns: "ns"} if namer.namespaced_external else {}
        yield "without a labelSelector", _args(series, base, values, [])
        yield "with a labelSelector", _args(series, [*base, 'app="x"'], values, [])
        return
    labels = dict(namer.converter.overrides)
    if namer.converter.template is not None:  # a template maps every resource: take the usual ones
        for gr in TEMPLATE_RESOURCES:
            label = namer.converter.label_for(gr)
            if label:
                labels.setdefault(label, gr)
    if not labels:
        yield "for the namespace", _args(series, [f'{ns}="ns"'], {ns: "ns"}, [ns])
        return
    for label, gr in labels.items():
        if gr in CLUSTER_LEVEL:
            yield f"for {label}", _args(series, [f"{label}=~{NAMES}"], {label: "a|b"}, [label])
            continue
        yield f"for {label}", _args(series, [f'{ns}="ns"', f"{label}=~{NAMES}"], {ns: "ns", label: "a|b"}, [label])
        yield f"for {label} in every namespace", _args(series, [f'{label}!=""'], {label: ".+"}, [ns, label])
