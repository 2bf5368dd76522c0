import logging
from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.rules import available_presets, load_rules, parse_rules_text

PA_V012 = """
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: ^container_.*_seconds_total$
  resources:
    overrides:
      namespace:
        resource: namespace
      pod:
        resource: pod
  name:
    matches: ^container_(.*)_total$
    as: ""
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[5m])) by (<<.GroupBy>>)
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  resources:
    template: <<.Resource>>
  name:
    matches: ^(.*)_seconds_total$
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__="vllm:num_requests_waiting"}'
  resources:
    namespaced: false
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (model_name)
resourceRules:
  cpu:
    containerQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[3m])) by (<<.GroupBy>>)
    nodeQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>, id='/'}[3m])) by (<<.GroupBy>>)
    resources:
      overrides:
        node: {resource: node}
    containerLabel: container
  window: 3m
"""


def test_prometheus_adapter_config_loads_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(PA_V012)
    with caplog.at_level(logging.WARNING):
        loaded = load_rules(f)
    assert len(loaded.rules) == 2 and len(loaded.external_rules) == 1
    assert "resourceRules" in caplog.text and "ignored" in caplog.text
    assert loaded.rules[0].rule.series_filters[0].is_not == "^container_.*_seconds_total$"
    assert loaded.external_rules[0].rule.resources.namespaced is False


@pytest.mark.parametrize(("text", "msg"), [
    ("rules: [{seriesQuery: x, metricsQuery: y, nmae: {}}]", "c.yaml: rules[0].nmae: unknown field"),
    ("bogus: 1", "c.yaml: bogus: unknown field"),
    ("externalRules: [{seriesQuery: x}]", "c.yaml: externalRules[0].metricsQuery: Field required"),
    ("rules: [{metricsQuery: x, seriesQuery: ''}]", "c.yaml: rules[0].seriesQuery: Value error, must not be empty"),
    ("rules: [{seriesQuery: x, metricsQuery: y, seriesFilters: [{is: a, isNot: b}]}]",
     "c.yaml: rules[0].seriesFilters[0]: Value error, exactly one"),
    ("rules: [{seriesQuery: x, metricsQuery: y}, {seriesQuery: x, metricsQuery: y, "
     "resources: {overrides: {pod: {group: ''}}}}]", "c.yaml: rules[1].resources.overrides.pod.resource"),
    ("rules: [{seriesQuery: x, metricsQuery: y, maxAge: soon}]", "c.yaml: rules[0].maxAge: Value error, invalid"),
    ("rules: [{seriesQuery: x, metricsQuery: y, missingData: maybe}]", "c.yaml: rules[0].missingData"),
    ("- a list", "the top level must be a mapping"),
    ("rules: [", "not valid YAML"),
])
def test_errors_name_file_rule_and_field(text: str, msg: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_rules_text(text, "c.yaml")
    assert msg in e.value.message


def test_unknown_preset_lists_the_available_ones(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("presets: [nope]")
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_rules(f)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")


def test_presets_are_shipped_and_load() -> None:
    names = available_presets()
    assert {"nvidia-dcgm", "aws-neuron", "vllm", "triton", "tgi"} <= set(names)
    loaded = load_rules(None, tuple(names))
    assert loaded.rules and loaded.external_rules
    assert all(r.source.startswith("preset:") for r in loaded.rules)


@pytest.mark.parametrize(("text", "msg"), [
    pytest.param("rules: [{seriesQuery: x, metricsQuery: y}, {seriesQuery: x, metricQuery: y}]",
                 "rules.yaml: rules[1].metricQuery: unknown field (did you mean metricsQuery?)", id="metricQuery"),
    pytest.param("rules: [{seriesQuery: x, metricsQuery: y, resources: {overrides: {pod: {resorce: pod}}}}]",
                 "rules.yaml: rules[0].resources.overrides.pod.resorce: unknown field (did you mean resource?)",
                 id="nested-override"),
    pytest.param("externalRules: [{seriesquery: x, metricsQuery: y}]",
                 "rules.yaml: externalRules[0].seriesquery: unknown field (did you mean seriesQuery?)",
                 id="case"),
    pytest.param("rulez: []", "rules.yaml: rulez: unknown field (did you mean rules?)", id="top-level"),
    pytest.param("rules: [{seriesQuery: x, metricsQuery: y, zzz: 1}]",
                 "rules.yaml: rules[0].zzz: unknown field (known fields: backend, cacheTTL, maxAge, metricsQuery, "
                 "missingData, name, resources, seriesFilters, seriesQuery)", id="no-close-match"),
    pytest.param("rules: [{seriesQuery: x, metricQuery: y, nmae: {}}]",
                 "rules.yaml: rules[0].metricQuery: unknown field (did you mean metricsQuery?) (and 1 more errors)",
                 id="two-unknown"),
])
def test_misspelt_key_is_named_first_with_the_closest_field(text: str, msg: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_rules_text(text, "rules.yaml")
    assert e.value.message == msg
