"""The series index built by each relist: which metrics exist, for which resources, from which rule.

An index is immutable once built; the relister builds a new one aside and swaps the reference,
so the request path reads without locks.
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

    def custom_infos(self) -> list[CustomMetricInfo]:
        return [CustomMetricInfo(gr, ns, m) for (gr, ns, m) in sorted(
            self.custom, key=lambda k: (str(k[0]), k[2]))]

    def external_infos(self) -> list[ExternalMetricInfo]:
        return [ExternalMetricInfo(m) for m in sorted(self.external)]

    def lookup(self, gr: GroupResource, namespaced: bool, metric: str) -> Entry | None:
        return self.custom.get((gr, namespaced, metric))


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
    collisions: dict[tuple[str, str], tuple[str, str]] = {}  # (metric, resource) -> (overridden, winner)
    count = 0
    for namer, series_list in custom:
        for name, metric, labels, n in _named(namer, series_list):
            count += n
            resources, namespaced = namer.converter.resources_for_series(labels.keys())
            for gr in resources:
                ns = False if gr in CLUSTER_LEVEL else namespaced
                try:
                    namer.resource_label(gr)
                except RuleError:
                    continue
                key = (gr, ns, metric)
                _put(c, key, Entry(namer, name), collisions, (metric, str(gr)))
    for namer, series_list in external:
        for name, metric, _labels, n in _named(namer, series_list):
            count += n
            _put(e, metric, Entry(namer, name), collisions, (metric, "external"))
    if collisions:
        log.warning("%d metric names are produced by more than one rule; the last rule wins, as in "
                    "prometheus-adapter: %s", len(collisions), "; ".join(
                        f"{m} ({res}) from {old}, overridden by {new}"
                        for (m, res), (old, new) in sorted(collisions.items())[:20]))
    return SeriesIndex(c, e, count)


def _put(index: dict[K, Entry], key: K, entry: Entry, collisions: dict[tuple[str, str], tuple[str, str]],
         what: tuple[str, str]) -> None:
    """Last wins (also among one rule's series, as upstream); a different rule's entry is a collision."""
    old = index.get(key)
    if old is not None and old.namer is not entry.namer:
        first = collisions.get(what, (old.namer.where, ""))[0]
        collisions[what] = (first, entry.namer.where)
    index[key] = entry
