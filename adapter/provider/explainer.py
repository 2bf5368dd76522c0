"""Explaining one metric request: run the serving path under a trace, then add what it cannot know.

``Explainer.custom`` / ``Explainer.external`` call the very provider methods that answer the HPA,
inside ``trace.recording()``; the provider notes the rule, the query plan, the cache's answer and
every object's fate (``adapter.provider.trace``). Afterwards, and only here, two things are looked
up that serving never needs: the raw samples behind each value (with their own timestamps), and,
when no rule serves the metric, why (no series, a ``seriesFilters`` entry, a label that maps to no
object). The result is an ``Explanation``, the one document behind the API endpoint, the dry-run
CLI and the kubectl plugin.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlencode

from adapter.errors import AdapterError
from adapter.model import DEFAULT_TARGET, GroupResource, Sample, Selector
from adapter.naming.confine import confine
from adapter.naming.promql import PromQLError, parse
from adapter.naming.query import NAMES, MetricNamer, RuleError
from adapter.naming.shape import age_selectors
from adapter.provider.custom import CustomMetricsProvider
from adapter.provider.discovery import Relister
from adapter.provider.explanation import Explanation, custom_path
from adapter.provider.external import ExternalMetricsProvider
from adapter.provider.runner import QueryRunner
from adapter.provider.trace import ObjectTrace, Trace, recording

log = logging.getLogger(__name__)

RAW_PER_OBJECT = 10  # raw samples shown per object
RAW_OBJECTS = 50  # objects whose raw samples are looked up
SeriesFn = Callable[[str, float], Awaitable[list[dict[str, str]]]]


class Explainer:
    def __init__(self, custom: CustomMetricsProvider, external: ExternalMetricsProvider | None,
                 runner: QueryRunner, relister: Relister, series: SeriesFn | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._custom = custom
        self._external = external
        self._runner = runner
        self._relister = relister
        self._series = series
        self._clock = clock

    async def custom(self, resource: str, namespace: str, name: str, metric: str, selector: Selector,
                     metric_selector: Selector) -> Explanation:
        ex = Explanation("custom.metrics.k8s.io",
                         custom_path("v1beta2", resource, namespace, name, metric, selector.raw, metric_selector.raw),
                         namespace, resource, name, metric, selector.raw, metric_selector.raw, Trace())
        with recording(ex.trace):
            try:
                if name == "*":
                    values = await self._custom.get_by_selector(resource, namespace, selector, metric,
                                                                metric_selector)
                else:
                    values = [await self._custom.get_by_name(resource, namespace, name, metric, metric_selector)]
                ex.served = bool(values)
            except AdapterError as e:
                ex.error = e
        await self._finish(ex, metric_selector)
        return ex

    async def external(self, namespace: str, metric: str, selector: Selector) -> Explanation:
        path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"
        if selector.raw:
            path += "?" + urlencode({"labelSelector": selector.raw})
        ex = Explanation("external.metrics.k8s.io", path, namespace, "", "", metric, selector.raw, "", Trace())
        if self._external is None:
            ex.error = AdapterError("no externalRules are configured")
            ex.now = self._clock()
            return ex
        with recording(ex.trace):
            try:
                ex.served = bool(await self._external.get(namespace, metric, selector))
            except AdapterError as e:
                ex.error = e
        await self._finish(ex, selector)
        return ex

    # -- what serving does not need ----------------------------------------------------------------

    def _namers(self) -> dict[str, MetricNamer]:
        return {n.where: n for n in (*self._relister.custom, *self._relister.external)}

    async def _finish(self, ex: Explanation, metric_selector: Selector) -> None:
        namer = self._namers().get(ex.trace.rule)
        if namer is not None:
            r = namer.sourced
            ex.rule = {"where": r.where, "source": r.source, "list": r.list_name, "index": r.index,
                       "seriesQuery": r.rule.series_query, "metricsQuery": r.rule.metrics_query,
                       "series": ex.trace.series}
            try:
                await self._raw_samples(ex, namer, metric_selector)
            except (AdapterError, PromQLError, RuleError) as e:
                ex.diagnosis.append(f"the raw samples could not be read: {e}")
        elif ex.error is not None:
            try:
                ex.diagnosis += await self._why_no_rule(ex)
            except AdapterError as e:
                ex.diagnosis.append(f"series discovery failed: {e.message}")
        ex.now = self._clock()

    async def _raw_samples(self, ex: Explanation, namer: MetricNamer, metric_selector: Selector) -> None:
        """The raw samples behind each value: every selector of the value query that carries the
        request's matchers, narrowed to the objects of this request, with their own timestamps."""
        t = ex.trace
        if not t.objects or not t.query:
            return
        if t.mode == "external":
            query, matchers = t.query, t.label_matchers
        else:
            objs = [o.name for o in t.objects.values()][:RAW_OBJECTS]
            info = self._custom.mapper.resolve(ex.resource)
            rendered = namer.render_custom(t.series, info.group_resource, ex.namespace, objs, metric_selector,
                                           mode=NAMES)
            query, matchers = rendered.query, rendered.label_matchers
        tenancy, target = self._custom.tenancy, DEFAULT_TARGET
        if tenancy is not None:  # the same tenant and namespace confinement as the request's own queries
            target = await tenancy.target(ex.namespace)
        for found in age_selectors(parse(query), matchers)[:4]:
            sel = confine(found, {namer.namespace_label(): ex.namespace}) if tenancy and ex.namespace else found
            values = await self._runner.query_uncached(sel, target)
            times = await self._runner.query_uncached(f"timestamp({sel})", target)
            when = {_key(s.labels): s.value for s in times.samples}
            for s in values.samples:
                raw = Sample(s.labels, s.value, when.get(_key(s.labels), s.timestamp))
                for o in _owners(t, raw.labels):
                    if len(o.samples) < RAW_PER_OBJECT:
                        o.samples.append(raw)

    async def _why_no_rule(self, ex: Explanation) -> list[str]:
        """Why no rule serves ``ex.metric`` (for ``ex.resource``): look at the series of every rule."""
        if self._series is None:
            return []
        external = ex.api.startswith("external")
        namers = self._relister.external if external else self._relister.custom
        gr = None if external else _group_resource(self._custom, ex.resource)
        found: list[str] = []
        names_seen: set[str] = set()
        cache: dict[str, list[dict[str, str]]] = {}
        for n in namers:
            if n.series_query not in cache:
                cache[n.series_query] = await self._series(n.series_query, self._relister.max_age)
            for labels in cache[n.series_query]:
                series = labels.get("__name__", "")
                metric = n.metric_name(series) if series else None
                if metric:
                    names_seen.add(metric)
                if metric != ex.metric:
                    continue
                if not n.accepts(series):
                    found.append(f"{n.where}: series {series} is rejected by its seriesFilters or name.matches")
                elif gr is not None:
                    resources, _ = n.converter.resources_for_series(labels.keys())
                    if gr not in resources:
                        have = ", ".join(sorted(str(r) for r in resources)) or "none"
                        found.append(f"{n.where}: series {series} has no label for {gr} "
                                     f"(its labels map to: {have})")
                if found:
                    break
        if not found:
            near = difflib.get_close_matches(ex.metric, sorted(names_seen), n=3)
            found.append(f"no rule names a series {ex.metric!r} in the last {self._relister.max_age:g}s"
                         + (f"; similar metrics: {', '.join(near)}" if near else ""))
        return found


def _group_resource(custom: CustomMetricsProvider, resource: str) -> GroupResource | None:
    try:
        return custom.mapper.resolve(resource).group_resource
    except AdapterError:
        return None


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def _owners(t: Trace, labels: Mapping[str, str]) -> Sequence[ObjectTrace]:
    if t.mode != "external":
        o = t.objects.get(labels.get(t.object_label, ""))
        return [o] if o is not None else []
    return [o for o in t.objects.values() if all(labels.get(g, "") == o.labels.get(g, "") for g in t.group_by)]
