"""The series index: shared series shapes from the backend are indexed once and counted per series."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapter.model import GroupResource
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.provider.registry import build_index
from adapter.rules import SourcedRule, load_rules, parse_rules_text

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


TWO_RULES_ONE_NAME = """rules:
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'gpu_util_v2{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util_v2$", as: "gpu"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue{namespace!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'queue_v2{namespace!=""}'
  name: {matches: "^queue_v2$", as: "queue"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
"""


def _namers(text: str, source: str = "r.yaml") -> tuple[list[MetricNamer], list[MetricNamer]]:
    rf = parse_rules_text(text, source)
    mapper = StaticResourceMapper()
    return ([MetricNamer.compile(SourcedRule(r, source, "rules", i), mapper) for i, r in enumerate(rf.rules)],
            [MetricNamer.compile(SourcedRule(r, source, "externalRules", i), mapper)
             for i, r in enumerate(rf.external_rules)])


def test_same_metric_from_two_rules_the_last_rule_wins_and_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    custom, external = _namers(TWO_RULES_ONE_NAME)
    pods = [{"__name__": "gpu_util", "namespace": f"ns{i}", "pod": f"p{i}"} for i in range(50)]
    pods_v2 = [{"__name__": "gpu_util_v2", "namespace": f"ns{i}", "pod": f"p{i}"} for i in range(50)]
    queues = [{"__name__": "queue", "namespace": f"ns{i}"} for i in range(50)]
    queues_v2 = [{"__name__": "queue_v2", "namespace": f"ns{i}"} for i in range(50)]
    with caplog.at_level(logging.DEBUG, logger="adapter.provider.registry"):
        index = build_index([(custom[0], pods), (custom[1], pods_v2)],
                            [(external[0], queues), (external[1], queues_v2)])
    entry = index.lookup(GroupResource("", "pods"), True, "gpu")
    assert entry is not None and entry.namer is custom[1] and entry.series == "gpu_util_v2"
    ns_entry = index.lookup(GroupResource("", "namespaces"), False, "gpu")
    assert ns_entry is not None and ns_entry.namer is custom[1]
    assert index.external["queue"].namer is external[1] and index.external["queue"].series == "queue_v2"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    text = warnings[0].getMessage()
    assert "the last rule wins" in text
    assert "gpu (pods) from r.yaml: rules[0], overridden by r.yaml: rules[1]" in text
    assert "queue (external) from r.yaml: externalRules[0], overridden by r.yaml: externalRules[1]" in text


def test_a_user_rule_overrides_a_preset_metric_of_the_same_name(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("""presets: [nvidia-dcgm]
rules:
- seriesQuery: 'DCGM_FI_DEV_GPU_UTIL{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^DCGM_FI_DEV_GPU_UTIL$", as: "nvidia_gpu_utilization_percent"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""")
    loaded = load_rules(cfg)
    assert loaded.rules[-1].source == str(cfg)  # the user's rules come after every preset rule
    assert all(r.source == "preset:nvidia-dcgm" for r in loaded.rules[:-1])
    mapper = StaticResourceMapper()
    namers = [MetricNamer.compile(r, mapper) for r in loaded.rules]
    series = [{"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "a", "pod": "p", "gpu": "0"}]
    index = build_index([(n, series) for n in namers], [])
    entry = index.lookup(GroupResource("", "pods"), True, "nvidia_gpu_utilization_percent")
    assert entry is not None and entry.namer.sourced.source == str(cfg)


def test_metric_names_the_api_cannot_serve_are_not_listed() -> None:
    """A name outside the API's metric-name set (``adapter.naming.validation``) could never be requested:
    discovery does not list it, so the documents list exactly what can be requested."""
    rules = RULES.replace('as: "${1}_x"', 'as: "${1} x"')
    namer = MetricNamer.compile(SourcedRule(parse_rules_text(rules, "r.yaml").rules[0], "r.yaml", "rules", 0),
                                StaticResourceMapper())
    index = build_index([(namer, [{"__name__": "gpu_util", "namespace": "", "pod": ""}])], [])
    assert index.custom == {}
