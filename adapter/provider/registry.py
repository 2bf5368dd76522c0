"""The series index built by each relist: which metrics exist, for which resources, from which rule.

An index is immutable once built; the relister builds a new one aside and swaps the reference,
so the request path reads without locks.

A MetricRule's metrics (rules confined to a namespace) are indexed by that namespace too: they exist
for requests in their namespace only. A cluster rule's metric of the same name (for the same
resource, or external) wins, and the MetricRule's one is recorded in ``shadowed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from adapter.model import CustomMetricInfo, ExternalMetricInfo, GroupResource
from adapter.naming.query import MetricNamer, RuleError
from adapter.naming.resources import CLUSTER_LEVEL
from adapter.naming.validation import metric_name_problems

log = logging.getLogger(__name__)
K = TypeVar("K")
_warned: set[str] = set()  # metric names already reported as unservable (once per process)


@dataclass(frozen=True)
class Entry:
    namer: MetricNamer
    series: str


@dataclass(frozen=True)
class SeriesIndex:
    custom: Mapping[tuple[GroupResource, bool, str], Entry] = field(default_factory=dict)
    external: Mapping[str, Entry] = field(default_factory=dict)
    series_count: int = 0
    # MetricRules' metrics: (namespace, resource, metric) and (namespace, metric)
    confined: Mapping[tuple[str, GroupResource, str], Entry] = field(default_factory=dict)
    confined_external: Mapping[tuple[str, str], Entry] = field(default_factory=dict)
    # rule source ("metricrule:ns/name") -> its metric names a cluster rule serves instead
    shadowed: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def custom_infos(self) -> list[CustomMetricInfo]:
        keys = set(self.custom) | {(gr, True, m) for (_, gr, m) in self.confined}
        return [CustomMetricInfo(gr, ns, m) for (gr, ns, m) in sorted(keys, key=lambda k: (str(k[0]), k[2], k[1]))]

    def external_infos(self) -> list[ExternalMetricInfo]:
        return [ExternalMetricInfo(m) for m in sorted(set(self.external) | {m for _, m in self.confined_external})]

    def lookup(self, gr: GroupResource, namespaced: bool, metric: str, namespace: str = "") -> Entry | None:
        """The cluster rules' entry, else (for a request in ``namespace``) a MetricRule's of that namespace."""
        entry = self.custom.get((gr, namespaced, metric))
        if entry is None and namespace and namespaced:
            entry = self.confined.get((namespace, gr, metric))
        return entry

    def lookup_external(self, metric: str, namespace: str) -> Entry | None:
        entry = self.external.get(metric)
        if entry is None and namespace:
            entry = self.confined_external.get((namespace, metric))
        return entry

    def metrics_of(self, source: str) -> list[str]:
        """The metric names a rule source (e.g. ``metricrule:ns/name``) is serving, sorted."""
        return self.metrics_by_source().get(source, [])

    def metrics_by_source(self) -> dict[str, list[str]]:
        """Rule source -> the metric names it is serving, sorted (one pass over the index)."""
        named = [*((k[2], e) for k, e in self.custom.items()), *self.external.items(),
                 *((k[2], e) for k, e in self.confined.items()),
                 *((k[1], e) for k, e in self.confined_external.items())]
        out: dict[str, set[str]] = {}
        for metric, entry in named:
            out.setdefault(entry.namer.sourced.source, set()).add(metric)
        return {source: sorted(names) for source, names in out.items()}


def _distinct(series_list: list[Mapping[str, str]]) -> list[tuple[Mapping[str, str], int]]:
    """(labels, how many series) per distinct labels object: the backend hands equal series shapes
    out as one shared dict (see ``PrometheusBackend.series_sync``), so 36,000 series are a few dozen."""
    first: dict[int, Mapping[str, str]] = {}
    counts: dict[int, int] = {}
    for labels in series_list:
        key = id(labels)
        if key in counts:
            counts[key] += 1
        else:
            first[key], counts[key] = labels, 1
    return [(first[k], n) for k, n in counts.items()]


def _named(namer: MetricNamer, series_list: list[Mapping[str, str]]
           ) -> Iterable[tuple[str, str, Mapping[str, str], int]]:
    """(series name, metric name, labels, how many series) of the series this rule accepts."""
    for labels, n in _distinct(series_list):
        name = labels.get("__name__", "")
        if name and namer.accepts(name):
            metric = namer.metric_name(name)
            if metric and metric_name_problems(metric):
                if metric not in _warned and len(_warned) < 1000:
                    _warned.add(metric)
                    log.warning("metric name cannot be requested through the API; not listed",
                                extra={"rule": namer.where, "metric": metric, "series": name})
                continue
            if metric:
                yield name, metric, labels, n


def build_index(custom: Iterable[tuple[MetricNamer, list[Mapping[str, str]]]],
                external: Iterable[tuple[MetricNamer, list[Mapping[str, str]]]]) -> SeriesIndex:
    """Apply each rule's filters and naming to the series its seriesQuery returned.

    A metric name (for one resource) produced by several rules belongs to the LAST of them in rule
    order, as in prometheus-adapter's registries (each rule overwrites the map entry); such collisions
    are logged once per index built, in one WARNING line."""
    c: dict[tuple[GroupResource, bool, str], Entry] = {}
    e: dict[str, Entry] = {}
    cc: dict[tuple[str, GroupResource, str], Entry] = {}
    ce: dict[tuple[str, str], Entry] = {}
    shadowed: dict[str, set[str]] = {}
    collisions: dict[tuple[str, str], tuple[str, str]] = {}  # (metric, resource) -> (overridden, winner)
    count = 0
    team: list[tuple[MetricNamer, str, str, Mapping[str, str]]] = []  # confined, after the cluster's
    for namer, series_list in custom:
        for name, metric, labels, n in _named(namer, series_list):
            count += n
            if namer.confined_to is not None:
                team.append((namer, name, metric, labels))
                continue
            for gr, ns in _resource_keys(namer, labels):
                _put(c, (gr, ns, metric), Entry(namer, name), collisions, (metric, str(gr)))
    for namer, name, metric, labels in team:
        ns_name = namer.confined_to or ""
        for gr, _ in _resource_keys(namer, labels):
            if (gr, True, metric) in c:
                shadowed.setdefault(namer.sourced.source, set()).add(metric)
                continue
            _put(cc, (ns_name, gr, metric), Entry(namer, name), collisions, (metric, f"{gr} in {ns_name}"))
    team_external: list[tuple[MetricNamer, str, str]] = []
    for namer, series_list in external:
        for name, metric, _labels, n in _named(namer, series_list):
            count += n
            if namer.confined_to is None:
                _put(e, metric, Entry(namer, name), collisions, (metric, "external"))
            else:
                team_external.append((namer, name, metric))
    for namer, name, metric in team_external:
        ns_name = namer.confined_to or ""
        if metric in e:
            shadowed.setdefault(namer.sourced.source, set()).add(metric)
        else:
            _put(ce, (ns_name, metric), Entry(namer, name), collisions, (metric, f"external in {ns_name}"))
    if collisions:
        log.warning("%d metric names are produced by more than one rule; the last rule wins, as in "
                    "prometheus-adapter: %s", len(collisions), "; ".join(
                        f"{m} ({res}) from {old}, overridden by {new}"
                        for (m, res), (old, new) in sorted(collisions.items())[:20]))
    return SeriesIndex(c, e, count, cc, ce, {k: frozenset(v) for k, v in shadowed.items()})


def _resource_keys(namer: MetricNamer, labels: Mapping[str, str]) -> Iterable[tuple[GroupResource, bool]]:
    """(resource, namespaced) of each resource a series describes that the rule can query; a
    MetricRule's rule: its namespace's objects only (never a root-scoped resource)."""
    resources, namespaced = namer.converter.resources_for_series(labels.keys())
    for gr in resources:
        ns = False if gr in CLUSTER_LEVEL else namespaced
        if namer.confined_to is not None and not ns:
            continue
        try:
            namer.resource_label(gr)
        except RuleError:
            continue
        yield gr, ns


def _put(index: dict[K, Entry], key: K, entry: Entry, collisions: dict[tuple[str, str], tuple[str, str]],
         what: tuple[str, str]) -> None:
    """Last wins (also among one rule's series, as upstream); a different rule's entry is a collision."""
    old = index.get(key)
    if old is not None and old.namer is not entry.namer:
        first = collisions.get(what, (old.namer.where, ""))[0]
        collisions[what] = (first, entry.namer.where)
    index[key] = entry
