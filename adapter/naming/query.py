"""One compiled rule: series filtering, metric naming, and rule -> PromQL (prometheus-adapter's ``Build``).

``MetricNamer.build`` renders ``metricsQuery`` with exactly the template arguments prometheus-adapter
passes (``Series``, ``LabelMatchers``, ``LabelValuesByName``, ``GroupBy``, ``GroupBySlice``), in the same
order, so a v0.12 config produces the same PromQL. Differences, all for safety: object names joined
into ``=~`` are regex-escaped (a ``.`` in a node name no longer matches any character), and values
from selectors are always quoted/escaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from adapter.errors import InternalError
from adapter.model import GroupResource, Selector
from adapter.naming.confine import confine
from adapter.naming.promql import PromQLError, parse
from adapter.naming.resources import CLUSTER_LEVEL, NAMESPACES, ResourceConverter
from adapter.naming.selectors import match_values, quote, selector_values, to_matchers
from adapter.naming.shape import not_local
from adapter.naming.templates import Template, TemplateError, compile_template
from adapter.ports import ResourceMapper
from adapter.rules import SourcedRule

QUERY_FIELDS = frozenset({"Series", "LabelMatchers", "LabelValuesByName", "GroupBy", "GroupBySlice"})
NAMES, NAMESPACE, CLUSTER = "names", "namespace", "cluster"
_PROBE = "__accel_probe__"  # stands for the request's matchers when a template's shape is checked
_GO_EXPAND = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))")


def go_expand(template: str, m: re.Match[str]) -> str:
    """Go ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``$$``; unknown groups expand to ''."""
    def sub(x: re.Match[str]) -> str:
        if x.group(3):
            return "$"
        ref = x.group(1) or x.group(2)
        try:
            value = m.group(int(ref)) if ref.isdigit() else m.group(ref)
        except (IndexError, ValueError, re.error):
            return ""
        return value or ""
    return _GO_EXPAND.sub(sub, template)


@dataclass(frozen=True)
class Rendered:
    """A rendered ``metricsQuery`` with the ``LabelMatchers`` and ``GroupBy`` it was rendered with."""

    query: str
    label_matchers: str
    group_by: tuple[str, ...]


class RuleError(ValueError):
    """A rule that cannot be compiled; the message starts with the rule's location."""


@dataclass(frozen=True)
class MetricNamer:
    sourced: SourcedRule
    series_query: str
    filters: tuple[tuple[re.Pattern[str], bool], ...]  # (regex, must_match)
    name_matches: re.Pattern[str]
    name_as: str
    query: Template
    converter: ResourceConverter
    namespaced_external: bool
    _wide: dict[tuple[GroupResource, bool], str | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def where(self) -> str:
        return self.sourced.where

    @property
    def rule_label(self) -> tuple[str, str]:
        """(source, rule) for per-rule query metrics: ("preset:vllm", "rules[8]")."""
        return self.sourced.source, f"{self.sourced.list_name}[{self.sourced.index}]"

    @classmethod
    def compile(cls, sourced: SourcedRule, mapper: ResourceMapper) -> MetricNamer:
        rule, where = sourced.rule, sourced.where
        filters: list[tuple[re.Pattern[str], bool]] = []
        for i, f in enumerate(rule.series_filters):
            pattern = f.is_ if f.is_ is not None else f.is_not
            assert pattern is not None
            field = "is" if f.is_ is not None else "isNot"
            filters.append((_compile_re(pattern, f"{where}.seriesFilters[{i}].{field}"), f.is_ is not None))
        matches = _compile_re(rule.name.matches or ".*", f"{where}.name.matches")
        if rule.name.matches:
            filters.append((matches, True))
        name_as = rule.name.as_
        if not name_as:
            if matches.groups == 0:
                name_as = "$0"
            elif matches.groups == 1:
                name_as = "$1"
            else:
                raise RuleError(f"{where}.name.as: must be set when name.matches has more than one "
                                f"capture group ({matches.groups})")
        try:
            query = compile_template(rule.metrics_query, QUERY_FIELDS)
        except TemplateError as e:
            raise RuleError(f"{where}.metricsQuery: {e}") from e
        overrides = {label: (ref.group, ref.resource) for label, ref in rule.resources.overrides.items()}
        try:
            converter = ResourceConverter.build(overrides, rule.resources.template, mapper, where)
        except ValueError as e:
            raise RuleError(str(e)) from e
        if sourced.list_name == "rules" and rule.resources.namespaced is not None:
            raise RuleError(f"{where}.resources.namespaced: only applies to externalRules")
        namespaced = True if rule.resources.namespaced is None else rule.resources.namespaced
        series_query = rule.series_query
        if sourced.namespace is not None:  # a MetricRule: discovery sees its namespace's series only
            _check_confinable(sourced, converter)
            ns_label = converter.label_for(NAMESPACES) or "namespace"
            try:
                series_query = confine(series_query, {ns_label: sourced.namespace})
            except PromQLError as e:
                raise RuleError(f"{where}.seriesQuery: cannot be confined to namespace "
                                f"{sourced.namespace}: {e}") from e
        return cls(sourced, series_query, tuple(filters), matches, name_as, query, converter, namespaced)

    @property
    def confined_to(self) -> str | None:
        """The namespace a MetricRule's rule is confined to (None for the cluster's rules)."""
        return self.sourced.namespace

    def confine(self, query: str) -> str:
        """``query`` with every selector carrying ``<namespace label>="<its namespace>"`` (unchanged for
        a cluster rule): whatever the template does, a MetricRule reads its own namespace only.
        ``PromQLError`` when that cannot be proven."""
        ns = self.sourced.namespace
        return query if ns is None else confine(query, {self.namespace_label(): ns})

    def accepts(self, series_name: str) -> bool:
        return all(bool(rx.search(series_name)) == must for rx, must in self.filters)

    def metric_name(self, series_name: str) -> str | None:
        m = self.name_matches.search(series_name)
        if m is None:
            return None
        return go_expand(self.name_as, m)

    def uses_values_by_name(self) -> bool:
        return "LabelValuesByName" in self.query.fields

    def namespace_label(self) -> str:
        return self.converter.label_for(NAMESPACES) or "namespace"

    def wide_reason(self, resource: GroupResource, *, cluster: bool) -> str | None:
        """None when one query over every object of a namespace (``cluster=False``) or of the cluster
        gives each object the value prometheus-adapter's per-request rendering gives it; else why not.

        Decided once per resource on the parsed template (``adapter.naming.shape``), never on the text."""
        key = (resource, cluster)
        if key not in self._wide:
            self._wide[key] = self._wide_reason(resource, cluster)
        return self._wide[key]

    def _wide_reason(self, resource: GroupResource, cluster: bool) -> str | None:
        if self.uses_values_by_name():
            return "the template reads .LabelValuesByName (the requested names themselves)"
        try:
            res_label = self.resource_label(resource)
        except RuleError as e:
            return str(e)
        required = [self.namespace_label(), res_label] if cluster else [res_label]
        probe = f'{_PROBE}="1"'
        rendered = self._render("accel_probe_series", [probe], {}, required)
        try:
            expr = parse(rendered.query)
        except PromQLError as e:
            return f"the template does not render valid PromQL: {e}"
        return not_local(expr, required, [_PROBE])

    def build_all_namespaces(self, series: str, resource: GroupResource, metric_selector: Selector) -> str:
        return self.render_custom(series, resource, "", (), metric_selector, mode=CLUSTER).query

    def build(self, series: str, resource: GroupResource, namespace: str, names: Sequence[str],
              metric_selector: Selector, *, all_objects: bool = False) -> str:
        """PromQL for ``names`` of ``resource`` (in ``namespace``); ``all_objects`` selects every object
        that has the label (``<label>!=""``), for namespace-wide queries answered per object in-process."""
        return self.render_custom(series, resource, namespace, names, metric_selector,
                                  mode=NAMESPACE if all_objects else NAMES).query

    def render_custom(self, series: str, resource: GroupResource, namespace: str, names: Sequence[str],
                      metric_selector: Selector, *, mode: str = "names") -> Rendered:
        """prometheus-adapter's ``Build``: matchers in its order (the ``metricLabelSelector``
        requirements, then the namespace, then the resource label) and ``LabelValuesByName`` holding
        each of them. ``mode``: ``names`` (exactly prometheus-adapter's query), ``namespace`` (every
        object of the namespace: ``<label>!=""``), ``cluster`` (every object of every namespace, grouped
        by namespace and object)."""
        exprs = to_matchers(metric_selector, "metricLabelSelector")
        values = selector_values(metric_selector)
        res_label = self.resource_label(resource)
        ns_label = self.namespace_label()
        if namespace and mode != CLUSTER:
            exprs.append(f"{ns_label}={quote(namespace)}")
            values[ns_label] = namespace
        if mode == NAMES:
            exprs.append(match_values(res_label, list(names)))
            values[res_label] = "|".join(names)
        else:
            exprs.append(f'{res_label}!=""')
            values[res_label] = ".+"
        return self._render(series, exprs, values, [ns_label, res_label] if mode == CLUSTER else [res_label])

    def build_external(self, series: str, namespace: str, metric_selector: Selector) -> str:
        return self.render_external(series, namespace, metric_selector).query

    def render_external(self, series: str, namespace: str, metric_selector: Selector) -> Rendered:
        """prometheus-adapter's ``BuildExternal``: the selector's matchers, then the namespace."""
        exprs = to_matchers(metric_selector, "labelSelector")
        values = selector_values(metric_selector)
        if namespace and self.namespaced_external:
            ns_label = self.namespace_label()
            exprs.append(f"{ns_label}={quote(namespace)}")
            values[ns_label] = namespace
        return self._render(series, exprs, values, [])

    def _render(self, series: str, exprs: list[str], values: dict[str, str], group_by: list[str]) -> Rendered:
        """prometheus-adapter's ``queryTemplateArgs``: matchers and group-by joined with commas."""
        matchers = ",".join(exprs)
        query = self.query.render({
            "Series": series,
            "LabelMatchers": matchers,
            "LabelValuesByName": values,
            "GroupBy": ",".join(group_by),
            "GroupBySlice": group_by,
        })
        try:
            query = self.confine(query)
        except PromQLError as e:  # checked at acceptance: never sent unconfined
            raise InternalError("Internal error occurred: the metric's query cannot be confined to its namespace",
                                details={"causes": [{"message": f"{self.where}: {e}"}]}) from e
        return Rendered(query, matchers, tuple(group_by))

    def resource_label(self, resource: GroupResource) -> str:
        label = self.converter.label_for(resource)
        if label is None:
            raise RuleError(f"{self.where}: no label maps to resource {resource}")
        return label


def _check_confinable(sourced: SourcedRule, converter: ResourceConverter) -> None:
    """A MetricRule's rule serves its own namespace only: its custom rules map the namespace label, no
    root-scoped resource (nodes, persistent volumes: those of every namespace), and external metrics
    stay namespaced."""
    where, rule = sourced.where, sourced.rule
    if sourced.list_name == "rules" and converter.label_for(NAMESPACES) is None:
        raise RuleError(f"{where}.resources: no label maps to the namespace (e.g. overrides: {{namespace: "
                        f"{{resource: namespace}}}}): a MetricRule serves objects of its own namespace only")
    if sourced.list_name == "externalRules" and rule.resources.namespaced is False:
        raise RuleError(f"{where}.resources.namespaced: a MetricRule's external metrics are always namespaced")
    for label, gr in converter.overrides.items():
        info = converter.mapper.resolve_label_resource(gr.group, gr.resource)
        root = gr in CLUSTER_LEVEL or (info is not None and not info.namespaced)
        if root and gr != NAMESPACES:
            raise RuleError(f"{where}.resources.overrides.{label}: {gr} is not namespaced; a MetricRule "
                            f"serves objects of its own namespace only")


def _compile_re(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise RuleError(f"{where}: invalid regular expression {pattern!r}: {e}") from e
