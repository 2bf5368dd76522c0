"""The series index: shared series shapes from the backend are indexed once and counted per series."""

from __future__ import annotations

from adapter.model import GroupResource
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.provider.registry import build_index
from adapter.rules import SourcedRule, parse_rules_text

RULES = """rules:
- seriesQuery: '{__name__=~"gpu_util|fb_used",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)$", as: "${1}_x"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


def test_shared_shapes_index_once_and_count_every_series() -> None:
    mapper = StaticResourceMapper()
    namer = MetricNamer.compile(SourcedRule(parse_rules_text(RULES, "r.yaml").rules[0], "r.yaml", "rules", 0),
                                mapper)
    pod_shape = {"__name__": "gpu_util", "namespace": "", "pod": "", "gpu": ""}
    ns_shape = {"__name__": "fb_used", "namespace": "", "gpu": ""}
    series = [pod_shape] * 30_000 + [ns_shape] * 5 + [{"__name__": "gpu_util", "namespace": "", "pod": ""}]
    index = build_index([(namer, series)], [])
    assert index.series_count == 30_006
    pods, namespaces = GroupResource("", "pods"), GroupResource("", "namespaces")
    assert index.lookup(pods, True, "gpu_util_x") is not None
    assert index.lookup(namespaces, False, "fb_used_x") is not None
    assert index.lookup(pods, True, "fb_used_x") is None  # that shape has no pod label


def test_metric_names_the_api_cannot_serve_are_not_listed() -> None:
    """A name outside the API's metric-name set (``adapter.naming.validation``) could never be requested:
    discovery does not list it, so the documents list exactly what can be requested."""
    rules = RULES.replace('as: "${1}_x"', 'as: "${1} x"')
    namer = MetricNamer.compile(SourcedRule(parse_rules_text(rules, "r.yaml").rules[0], "r.yaml", "rules", 0),
                                StaticResourceMapper())
    index = build_index([(namer, [{"__name__": "gpu_util", "namespace": "", "pod": ""}])], [])
    assert index.custom == {}
