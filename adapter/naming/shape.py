"""What a rendered ``metricsQuery`` computes, decided on its parsed form (Prometheus's grammar).

Two questions, both answered on the AST from ``promql-parser``, never on the query text:

``not_local(expr, required)``
    Is the query *local* in the ``required`` labels, i.e. is every output element with given values
    of those labels computed only from input series carrying the same values? Only then does a
    wider selection (every pod of the namespace, or of the cluster) give each object exactly the value
    prometheus-adapter's per-request rendering (``namespace="ns",pod=~"a|b"``) gives it, so one
    wide query can answer every request. The rules, checked at every node:

    * aggregations group ``by`` a superset of ``required`` (or ``without`` none of them); no
      aggregation without a grouping, since it mixes objects;
    * binary operations between two vectors match on labels that include ``required`` (the default
      matching on all labels does; ``on()`` without them or ``ignoring(pod)`` does not);
    * functions work per series (``rate``, ``avg_over_time``, ``histogram_quantile`` with a constant
      quantile, ``clamp_min`` ...); ``scalar()``, ``absent()``, ``absent_over_time()`` and unknown
      functions are refused;
    * ``label_replace``/``label_join`` may write an object label only over series that the request's
      label matchers do not select (the dcgm-exporter ``exported_pod`` relabelling), because over
      selected series the rewritten object would depend on which objects were requested.

    Everything else (``/ scalar(sum(...))``, ``on() group_left``, ``topk`` without ``by``, ``absent``)
    is rendered per request exactly as prometheus-adapter renders it.

``age_query(expr, label_matchers, group_by)``
    The query that gives, per object, the timestamp of the newest raw sample behind its value:
    ``max by (<group_by>) (timestamp(<selector>))`` over every selector of the value query that
    carries the request's label matchers (``<<.LabelMatchers>>``), with its own matchers and without
    ``offset``/``@``. ``timestamp()`` of a raw selector is the sample's own time; of a function result
    (``rate``, ``histogram_quantile``, an aggregation) it would be the evaluation time, which is why
    the selectors are taken out of the value query rather than wrapping it.

``with_ages(value_query, expr, age)``
    One query for both: ``(<value>) or label_replace(<age>, "__accel_age__", "1", "", "")``. The age
    elements carry ``__accel_age__`` so they can be told apart and never collide with a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import promql_parser as pp

from adapter.naming.promql import Expr, parse
from adapter.naming.selectors import quote

AGE_LABEL = "__accel_age__"
_SOURCE_LABEL = "__accel_age_source__"

# functions that compute each output element from one input series (or one series' window)
_PER_SERIES = frozenset({
    "abs", "ceil", "floor", "round", "exp", "ln", "log2", "log10", "sqrt", "sgn", "clamp", "clamp_min",
    "clamp_max", "deg", "rad", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
    "acosh", "atanh", "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "resets",
    "changes", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "present_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "mad_over_time", "holt_winters", "double_exponential_smoothing", "timestamp", "histogram_quantile",
    "histogram_fraction", "histogram_count", "histogram_sum", "histogram_avg", "histogram_stddev",
    "histogram_stdvar", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute",
    "month", "year", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "label_replace", "label_join",
    "vector", "time", "pi",
})
_GROUPING_AGGREGATIONS = frozenset({
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile", "topk", "bottomk",
    "count_values", "limitk", "limit_ratio",
})


class _NotLocal(Exception):
    pass


def _op(node: Expr) -> str:
    return str(node.op).strip().lower()  # type: ignore[attr-defined]


def kind(node: Expr) -> str:
    """``scalar``, ``string``, ``vector`` or ``matrix``: the type the expression evaluates to."""
    if isinstance(node, pp.NumberLiteral):
        return "scalar"
    if isinstance(node, pp.StringLiteral):
        return "string"
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr)):
        return kind(node.expr)
    if isinstance(node, pp.Call):
        rt = node.func.return_type
        for value_type, name in ((pp.ValueType.Scalar, "scalar"), (pp.ValueType.String, "string"),
                                 (pp.ValueType.Matrix, "matrix")):
            if rt == value_type:
                return name
        return "vector"
    if isinstance(node, pp.BinaryExpr):
        return "scalar" if kind(node.lhs) == kind(node.rhs) == "scalar" else "vector"
    if isinstance(node, (pp.MatrixSelector, pp.SubqueryExpr)):
        return "matrix"
    return "vector"


def not_local(expr: Expr, required: Iterable[str], matcher_names: Iterable[str] = ()) -> str | None:
    """None when ``expr`` is local in ``required`` (see the module docstring), else why not.

    ``matcher_names`` are the label names of the request's matchers as rendered for the check (a
    selector that has one of them is "selected by the request")."""
    req = frozenset(required)
    probe = frozenset(matcher_names)
    try:
        _visit(expr, req, probe)
    except _NotLocal as e:
        return str(e)
    return None


def _visit(node: Expr, req: frozenset[str], probe: frozenset[str]) -> bool:
    """Raise ``_NotLocal`` for a node that mixes objects; return whether the request selects its series.

    A subtree that reads no series the request selects is the same whatever was requested (node-level
    data, ``kube_node_info`` ...): anything may be computed there. The checks apply where selected
    series are combined."""
    if isinstance(node, pp.VectorSelector):
        return any(m.name in probe for m in node.matchers.matchers)
    if isinstance(node, pp.MatrixSelector):
        return _visit(node.vector_selector, req, probe)
    if isinstance(node, (pp.SubqueryExpr, pp.ParenExpr, pp.UnaryExpr)):
        return _visit(node.expr, req, probe)
    if isinstance(node, (pp.NumberLiteral, pp.StringLiteral)):
        return False
    if isinstance(node, pp.Call):
        return _call(node, req, probe)
    if isinstance(node, pp.AggregateExpr):
        return _aggregate(node, req, probe)
    if isinstance(node, pp.BinaryExpr):
        return _binary(node, req, probe)
    raise _NotLocal(f"{type(node).__name__} is not known to work per object")


def _aggregate(node: pp.AggregateExpr, req: frozenset[str], probe: frozenset[str]) -> bool:
    if node.param is not None and isinstance(node.param, pp.Expr) and _visit(node.param, req, probe):
        raise _NotLocal(f"the parameter of {_op(node)}() reads series of every object")
    if not _visit(node.expr, req, probe):
        return False
    op = _op(node)
    if op not in _GROUPING_AGGREGATIONS:
        raise _NotLocal(f"aggregation {op}() is not known to work per object")
    mod = node.modifier
    if mod is None:
        if req:
            raise _NotLocal(f"{op}() without by (...) mixes every object")
    elif mod.type == pp.AggModifierType.By:
        missing = sorted(req - set(mod.labels))
        if missing:
            raise _NotLocal(f"{op} by ({', '.join(mod.labels)}) does not keep {', '.join(missing)}")
    elif req & set(mod.labels):
        raise _NotLocal(f"{op} without ({', '.join(mod.labels)}) drops an object label")
    return True


def _binary(node: pp.BinaryExpr, req: frozenset[str], probe: frozenset[str]) -> bool:
    left, right = _visit(node.lhs, req, probe), _visit(node.rhs, req, probe)
    if not (left or right):
        return False
    op = _op(node)
    if kind(node.lhs) != "vector" or kind(node.rhs) != "vector":
        scalar_side = node.lhs if kind(node.lhs) != "vector" else node.rhs
        if _visit(scalar_side, req, probe):
            raise _NotLocal(f"the scalar {scalar_side} reads series of every object")
        return True
    modifier = node.modifier
    matching = modifier.matching if modifier is not None else None
    if modifier is None or matching is None:  # matched on all labels: never across objects
        return True
    labels = set(matching.labels)
    keeps = req <= labels if matching.type == pp.LabelModifierType.Include else not req & labels
    if keeps:
        return True
    # matched on labels that do not name the object: fine only when each element of the selected side
    # is joined with data that does not depend on the request (a node's series onto its pods)
    card = modifier.card
    if left and not right and (op in ("and", "unless") or card == pp.VectorMatchCardinality.ManyToOne):
        return True
    if right and not left and op not in ("and", "or", "unless") and card == pp.VectorMatchCardinality.OneToMany:
        return True
    how = "on" if matching.type == pp.LabelModifierType.Include else "ignoring"
    raise _NotLocal(f"'{op} {how} ({', '.join(matching.labels)})' matches across objects")


def _call(node: pp.Call, req: frozenset[str], probe: frozenset[str]) -> bool:
    name = node.func.name
    args = list(node.args)
    if name in ("label_replace", "label_join"):
        selected = _visit(args[0], req, probe)
        dst = args[1].val if isinstance(args[1], pp.StringLiteral) else ""
        if dst in req and selected:
            raise _NotLocal(f"{name}() rewrites the object label {dst!r} of series the request selects")
        return selected
    selected_args = [arg for arg in args if _visit(arg, req, probe)]
    if not selected_args:
        return False
    if name not in _PER_SERIES:
        raise _NotLocal(f"{name}() is not known to work per object")
    for arg in selected_args:
        if kind(arg) in ("scalar", "string"):
            raise _NotLocal(f"the scalar {arg} reads series of every object")
    return True


# -- data age ------------------------------------------------------------------------------------

def selectors(expr: Expr) -> list[pp.VectorSelector]:
    """Every vector selector of ``expr`` (those inside range selectors and subqueries included), in order."""
    out: list[pp.VectorSelector] = []

    def pre(node: Expr) -> bool:
        if isinstance(node, pp.VectorSelector):
            out.append(node)
        return True

    pp.walk(expr, pre_visit=pre)
    return out


def _matcher_key(m: object) -> tuple[str, str, str]:
    return (m.name, str(m.op), m.value)  # type: ignore[attr-defined]


def selector_text(sel: pp.VectorSelector) -> str:
    """``name{matchers}`` of a selector, values quoted, without offset or ``@``."""
    ms = [f"{m.name}{_MATCH_OPS[str(m.op)]}{quote(m.value)}" for m in sel.matchers.matchers]
    return f"{sel.name or ''}{{{','.join(ms)}}}"


_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def age_selectors(expr: Expr, label_matchers: str) -> list[str]:
    """The distinct selectors (as text) of ``expr`` that select what the request's matchers select.

    A selector qualifies when it has a matcher on every label of ``label_matchers`` and carries each
    of their ``=`` matchers, as ``=`` or as ``=~`` with the same value (prometheus-adapter's documented
    ``pod=~"<<index .LabelValuesByName "pod">>"`` writes the request's values into its own matchers
    instead of using ``<<.LabelMatchers>>``)."""
    wanted: list[tuple[str, str, str]] = []
    if label_matchers:
        probe = parse("{" + label_matchers + "}")
        assert isinstance(probe, pp.VectorSelector)
        wanted = [_matcher_key(m) for m in probe.matchers.matchers]
    out: list[str] = []
    for sel in selectors(expr):
        have = {_matcher_key(m) for m in sel.matchers.matchers}
        names = {name for name, _, _ in have}
        if all(name in names and (op != "MatchOp.Equal" or (name, op, value) in have
                                  or (name, "MatchOp.Re", value) in have)
               for name, op, value in wanted):
            text = selector_text(sel)
            if text not in out:
                out.append(text)
    return out


def age_query(expr: Expr, label_matchers: str, group_by: Sequence[str]) -> str | None:
    """``max by (group_by) (timestamp(...))`` over the selectors behind the value (None if it has none)."""
    sels = age_selectors(expr, label_matchers)
    if not sels:
        return None
    if len(sels) == 1:
        inner = f"timestamp({sels[0]})"
    else:  # a label per selector, so that equal label sets of different selectors all reach max()
        inner = " or ".join(f'label_replace(timestamp({s}), "{_SOURCE_LABEL}", "{i}", "", "")'
                            for i, s in enumerate(sels))
    by = f" by ({','.join(group_by)})" if group_by else ""
    return f"max{by} ({inner})"


def outer_grouping(expr: Expr) -> tuple[str, ...] | None:
    """The ``by`` labels of the outermost aggregation (through parentheses), else None."""
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    if isinstance(expr, pp.AggregateExpr) and expr.modifier is not None \
            and expr.modifier.type == pp.AggModifierType.By:
        return tuple(expr.modifier.labels)
    return None


def with_ages(value_query: str, expr: Expr, age: str) -> str | None:
    """The value query and its age query as one query (None when the value query is a scalar)."""
    if kind(expr) != "vector":
        return None
    return f'({value_query}) or label_replace({age}, "{AGE_LABEL}", "1", "", "")'


@dataclass(frozen=True)
class QueryPlan:
    """What to send for one value query.

    ``send`` is the value query with its age query attached (``with_ages``), or the value query alone
    when the two cannot be combined (a scalar value: then ``age`` is sent beside it). ``age`` is None
    when no selector of the value query carries the request's matchers: no value of it can be aged."""

    value: str
    send: str
    age: str | None
    combined: bool
    age_group: tuple[str, ...] = ()


def plan_queries(value_query: str, label_matchers: str, group_by: Sequence[str] | None) -> QueryPlan:
    """Parse the value query (``PromQLError`` if it does not parse: a bug, never sent) and attach its
    age query grouped by ``group_by`` (None: by the outermost aggregation's ``by`` labels, if any)."""
    expr = parse(value_query)
    if group_by is None:
        group_by = outer_grouping(expr) or ()
    group = tuple(group_by)
    age = age_query(expr, label_matchers, group)
    if age is None:
        return QueryPlan(value_query, value_query, None, False, group)
    combined = with_ages(value_query, expr, age)
    if combined is None:
        return QueryPlan(value_query, value_query, age, False, group)
    return QueryPlan(value_query, combined, age, True, group)
