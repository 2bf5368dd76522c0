"""Load-time PromQL checks: a rule whose seriesQuery or rendered metricsQuery does not parse fails
compilation, naming the file, the rule and the field."""

from __future__ import annotations

import pytest

from adapter.errors import ConfigError
from adapter.naming.resources import StaticResourceMapper
from adapter.rules import LoadedRules, SourcedRule, available_presets, load_rules, parse_rules_text
from adapter.server import compile_rules

GOOD = """- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


def compile_text(text: str) -> None:
    rf = parse_rules_text(text, "rules.yaml")
    compile_rules(LoadedRules(
        tuple(SourcedRule(r, "rules.yaml", "rules", i) for i, r in enumerate(rf.rules)),
        tuple(SourcedRule(r, "rules.yaml", "externalRules", i) for i, r in enumerate(rf.external_rules)),
        ()), StaticResourceMapper())


@pytest.mark.parametrize(("text", "msg"), [
    pytest.param("rules:\n" + GOOD + """- seriesQuery: 'DCGM_FI_DEV_GPU_UTIL{pod!=""'
  resources: {template: <<.Resource>>}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""", "rules.yaml: rules[1].seriesQuery: invalid PromQL: unexpected end of input inside braces",
                 id="series-unclosed-brace"),
    pytest.param("rules:\n- seriesQuery: 'sum(gpu_util)'\n  metricsQuery: 'x'\n",
                 "rules.yaml: rules[0].seriesQuery: must be a series selector", id="series-not-a-selector"),
    pytest.param("rules:\n- seriesQuery: 'gpu_util offset 5m'\n  metricsQuery: 'x'\n",
                 "rules.yaml: rules[0].seriesQuery: must be a series selector", id="series-offset"),
    pytest.param("rules:\n- seriesQuery: '{}'\n  metricsQuery: 'x'\n",
                 "rules.yaml: rules[0].seriesQuery: invalid PromQL: vector selector must contain", id="series-empty"),
    pytest.param("rules:\n" + GOOD.replace("(<<.GroupBy>>)'", "(<<.GroupBy>>'"),
                 "rules.yaml: rules[0].metricsQuery: invalid PromQL: unclosed left parenthesis (rendered for "
                 'namespace: avg(gpu_util{namespace=~"a|b"}) by (namespace', id="metrics-unclosed-paren"),
    pytest.param("rules:\n" + GOOD.replace("<<.GroupBy>>", "<<.GroupBy>> <<.GroupBy>>"),
                 "rules.yaml: rules[0].metricsQuery: invalid PromQL:", id="metrics-bad-by"),
    pytest.param("rules:\n- seriesQuery: 'x{node!=\"\"}'\n  resources: {template: <<.Resource>>}\n"
                 "  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}[5m]) by (<<.GroupBy>>)'\n",
                 "rules.yaml: rules[0].metricsQuery: invalid PromQL:", id="metrics-range-in-aggregation"),
    pytest.param("externalRules:\n- seriesQuery: 'q'\n  resources: {namespaced: false}\n"
                 "  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>,queue=\"a\"})'\n",
                 "rules.yaml: externalRules[0].metricsQuery: invalid PromQL: invalid promql query "
                 "(rendered without a labelSelector: sum(q{,queue=\"a\"}))", id="external-leading-comma"),
])
def test_bad_promql_names_file_rule_and_field(text: str, msg: str) -> None:
    with pytest.raises(ConfigError) as e:
        compile_text(text)
    assert e.value.message.startswith(msg), e.value.message


@pytest.mark.parametrize("text", [
    pytest.param("rules:\n" + GOOD, id="overrides"),
    pytest.param("rules:\n- seriesQuery: '{__name__=~\"^http_.*_total$\",namespace!=\"\"}'\n"
                 "  resources: {template: <<.Resource>>}\n  name: {matches: '^(.*)_total$', as: '${1}_per_second'}\n"
                 "  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'\n",
                 id="template"),
    pytest.param("rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  resources: {overrides: {pod: {resource: pod}}}\n"
                 "  metricsQuery: 'max(<<.Series>>{pod=~\"<<index .LabelValuesByName \"pod\">>\"}) "
                 "by (<<join .GroupBySlice \",\">>)'\n", id="values-by-name"),
    pytest.param("externalRules:\n- seriesQuery: '{__name__=\"vllm:num_requests_waiting\"}'\n"
                 "  resources: {namespaced: false}\n"
                 "  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (model_name)'\n", id="external"),
])
def test_valid_rules_compile(text: str) -> None:
    compile_text(text)


def test_every_preset_passes_the_promql_checks() -> None:
    custom, external = compile_rules(load_rules(None, tuple(available_presets())), StaticResourceMapper())
    assert custom and external
