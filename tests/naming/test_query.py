"""rule -> PromQL, with the literal expected strings (prometheus-adapter's metrics_query_test style)."""

import pytest

from adapter.model import GroupResource
from adapter.naming.query import MetricNamer, RuleError, go_expand
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.selectors import parse_selector
from adapter.rules import SourcedRule, parse_rules_text

PODS = GroupResource("", "pods")
NODES = GroupResource("", "nodes")
NAMESPACES = GroupResource("", "namespaces")
DEPLOYMENTS = GroupResource("apps", "deployments")

OVERRIDES = """
- seriesQuery: 'DCGM_FI_DEV_GPU_UTIL{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^DCGM_FI_DEV_GPU_UTIL$", as: "gpu_utilization"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


def namer(text: str, list_name: str = "rules") -> MetricNamer:
    rf = parse_rules_text(f"{list_name}:\n{text}", "t.yaml")
    rules = rf.rules if list_name == "rules" else rf.external_rules
    return MetricNamer.compile(SourcedRule(rules[0], "t.yaml", list_name, 0), StaticResourceMapper())


# matchers in prometheus-adapter's order (naming/metrics_query.go Build): the metricLabelSelector's
# requirements (sorted by key, as labels.Parse sorts them), then the namespace, then the resource label
@pytest.mark.parametrize(("names", "ns", "metric_sel", "expected"), [
    (["p1"], "ns1", "", 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="ns1",pod="p1"}) by (pod)'),
    (["p1", "p2"], "ns1", "", 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="ns1",pod=~"p1|p2"}) by (pod)'),
    (["a.b", "c"], "ns1", "", 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="ns1",pod=~"a\\\\.b|c"}) by (pod)'),
    (["p1"], "ns1", "gpu=0", 'avg(DCGM_FI_DEV_GPU_UTIL{gpu="0",namespace="ns1",pod="p1"}) by (pod)'),
    (["p1"], "ns1", "gpu!=0", 'avg(DCGM_FI_DEV_GPU_UTIL{gpu!="0",namespace="ns1",pod="p1"}) by (pod)'),
    (["p1"], "ns1", "gpu in (0,1)", 'avg(DCGM_FI_DEV_GPU_UTIL{gpu=~"0|1",namespace="ns1",pod="p1"}) by (pod)'),
    (["p1"], "ns1", "gpu notin (0,1)",
     'avg(DCGM_FI_DEV_GPU_UTIL{gpu!~"0|1",namespace="ns1",pod="p1"}) by (pod)'),
    (["p1"], "ns1", "mig", 'avg(DCGM_FI_DEV_GPU_UTIL{mig!="",namespace="ns1",pod="p1"}) by (pod)'),
    (["p1"], "ns1", "!mig", 'avg(DCGM_FI_DEV_GPU_UTIL{mig="",namespace="ns1",pod="p1"}) by (pod)'),
    (['x"} or vector(1) #'], 'n"s', "",
     'avg(DCGM_FI_DEV_GPU_UTIL{namespace="n\\"s",pod="x\\"} or vector(1) #"}) by (pod)'),
], ids=["one", "several", "regex-escaped-names", "eq", "neq", "in", "notin", "exists", "not-exists",
        "injection-quoted"])
def test_build_pods(names: list[str], ns: str, metric_sel: str, expected: str) -> None:
    n = namer(OVERRIDES)
    assert n.build("DCGM_FI_DEV_GPU_UTIL", PODS, ns, names, parse_selector(metric_sel)) == expected


def test_build_all_objects_of_namespace() -> None:
    n = namer(OVERRIDES)
    assert n.build("DCGM_FI_DEV_GPU_UTIL", PODS, "ns1", [], parse_selector(""), all_objects=True) == \
        'avg(DCGM_FI_DEV_GPU_UTIL{namespace="ns1",pod!=""}) by (pod)'


def test_namespace_metric_uses_namespace_label_as_resource() -> None:
    n = namer(OVERRIDES)
    assert n.build("DCGM_FI_DEV_GPU_UTIL", NAMESPACES, "", ["ns1"], parse_selector("")) == \
        'avg(DCGM_FI_DEV_GPU_UTIL{namespace="ns1"}) by (namespace)'


def test_cluster_scoped_node_with_dots() -> None:
    n = namer("""
- seriesQuery: 'node_temp{node!=""}'
  resources: {overrides: {node: {resource: node}}}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""")
    assert n.build("node_temp", NODES, "", ["ip-10-0-0-1.ec2.internal"], parse_selector("")) == \
        'max(node_temp{node="ip-10-0-0-1.ec2.internal"}) by (node)'
    assert n.build("node_temp", NODES, "", ["a.b", "c"], parse_selector("")) == \
        'max(node_temp{node=~"a\\\\.b|c"}) by (node)'


def test_template_resources_and_group() -> None:
    n = namer("""
- seriesQuery: '{__name__=~"^kube_.*",namespace!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""")
    assert n.build("queue", DEPLOYMENTS, "ns1", ["llm"], parse_selector("")) == \
        'sum(queue{namespace="ns1",deployment="llm"}) by (deployment)'
    n2 = namer("""
- seriesQuery: 'x'
  resources: {template: "kube_<<.Group>>_<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""")
    assert n2.converter.resource_for("kube_apps_deployment") == DEPLOYMENTS
    assert n2.build("x", DEPLOYMENTS, "", ["d"], parse_selector("")) == \
        'sum(x{kube_apps_deployment="d"}) by (kube_apps_deployment)'


def test_all_template_fields() -> None:
    n = namer("""
- seriesQuery: 'x{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pods}}}
  metricsQuery: '<<.Series>>|<<.LabelMatchers>>|<<index .LabelValuesByName "pod">>|<<.GroupBy>>|<<.GroupBySlice>>'
""")
    assert n.build("x", PODS, "ns1", ["a", "b"], parse_selector("")) == \
        'x|namespace="ns1",pod=~"a|b"|a|b|pod|[pod]'
    assert n.uses_values_by_name()


@pytest.mark.parametrize(("namespaced", "ns", "sel", "expected"), [
    ("", "ns1", "model=llama", 'sum(q{model="llama",namespace="ns1"}) by (model)'),
    ("namespaced: false", "ns1", "model=llama", 'sum(q{model="llama"}) by (model)'),
    ("namespaced: false", "ns1", "", "sum(q{}) by (model)"),
], ids=["namespaced", "not-namespaced", "no-selector"])
def test_build_external(namespaced: str, ns: str, sel: str, expected: str) -> None:
    n = namer(f"""
- seriesQuery: 'q'
  resources: {{overrides: {{namespace: {{resource: namespace}}}}, {namespaced}}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (model)'
""".replace(", }", "}"), "externalRules")
    assert n.build_external("q", ns, parse_selector(sel)) == expected


@pytest.mark.parametrize(("matches", "as_", "series", "out"), [
    ("", "", "foo_total", "foo_total"),
    ("^(.*)_total$", "", "foo_total", "foo"),
    ("^(.*)_total$", "${1}_per_second", "foo_total", "foo_per_second"),
    ("^(?P<base>.*)_seconds_total$", "$base", "cpu_seconds_total", "cpu"),
    ("^x$", "$$x", "x", "$x"),
])
def test_metric_naming(matches: str, as_: str, series: str, out: str) -> None:
    name = f"name: {{matches: '{matches}', as: '{as_}'}}" if matches or as_ else ""
    n = namer(f"""
- seriesQuery: 'x'
  {name}
  resources: {{overrides: {{pod: {{resource: pod}}}}}}
  metricsQuery: 'x'
""")
    assert n.metric_name(series) == out


def test_series_filters() -> None:
    n = namer("""
- seriesQuery: '{__name__=~"^container_.*"}'
  seriesFilters: [{isNot: "^container_.*_seconds_total$"}, {is: "^container_.*_total$"}]
  metricsQuery: 'x'
""")
    assert n.accepts("container_network_bytes_total")
    assert not n.accepts("container_cpu_usage_seconds_total")
    assert not n.accepts("container_memory_bytes")


@pytest.mark.parametrize(("rule", "msg"), [
    ("- {seriesQuery: x, metricsQuery: '<<.Nope>>'}", "t.yaml: rules[0].metricsQuery: unknown template field"),
    ("- {seriesQuery: x, metricsQuery: y, name: {matches: '(a)(b)'}}", "t.yaml: rules[0].name.as: must be set"),
    ("- {seriesQuery: x, metricsQuery: y, name: {matches: '('}}", "t.yaml: rules[0].name.matches: invalid regular"),
    ("- {seriesQuery: x, metricsQuery: y, seriesFilters: [{is: '['}]}", "rules[0].seriesFilters[0].is: invalid"),
    ("- {seriesQuery: x, metricsQuery: y, resources: {template: '<<.Group>>'}}",
     "rules[0].resources.template: must use <<.Resource>>"),
    ("- {seriesQuery: x, metricsQuery: y, resources: {namespaced: false}}",
     "rules[0].resources.namespaced: only applies to externalRules"),
])
def test_rule_errors_name_the_field(rule: str, msg: str) -> None:
    with pytest.raises(RuleError, match=msg.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        namer(rule)


def test_go_expand_unknown_group_is_empty() -> None:
    import re
    m = re.search("(a)", "a")
    assert m is not None
    assert go_expand("$1-$2-${1}", m) == "a--a"


def test_build_all_namespaces_groups_by_namespace_and_object() -> None:
    n = namer(OVERRIDES)
    assert n.build_all_namespaces("DCGM_FI_DEV_GPU_UTIL", PODS, parse_selector("gpu=0")) == \
        'avg(DCGM_FI_DEV_GPU_UTIL{gpu="0",pod!=""}) by (namespace,pod)'


LVBN = """
- seriesQuery: 'DCGM_FI_DEV_GPU_UTIL{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: >-
    avg(<<.Series>>{gpu_model=~"<<index .LabelValuesByName "gpu_model">>",
    pod=~"<<index .LabelValuesByName "pod">>",namespace="<<index .LabelValuesByName "namespace">>"})
    by (<<.GroupBy>>)
"""


@pytest.mark.parametrize(("metric_sel", "expected"), [
    ("gpu_model=H100", 'avg(G{gpu_model=~"H100", pod=~"a|b",namespace="ns1"}) by (pod)'),
    ("gpu_model in (A100,H100)", 'avg(G{gpu_model=~"A100|H100", pod=~"a|b",namespace="ns1"}) by (pod)'),
    ("gpu_model", 'avg(G{gpu_model=~"", pod=~"a|b",namespace="ns1"}) by (pod)'),
], ids=["eq", "in", "exists"])
def test_label_values_by_name_holds_every_selector_requirement(metric_sel: str, expected: str) -> None:
    """prometheus-adapter's processQueryParts puts each metricLabelSelector requirement into
    LabelValuesByName (values joined with |); before, a template reading gpu_model rendered =~"" """
    n = namer(LVBN)
    assert n.build("G", PODS, "ns1", ["a", "b"], parse_selector(metric_sel)) == expected


def test_label_values_by_name_external_selector() -> None:
    n = namer("""
- seriesQuery: 'q'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{model="<<index .LabelValuesByName "model">>"}) by (model)'
""", "externalRules")
    assert n.build_external("q", "ns1", parse_selector("model=llama")) == 'sum(q{model="llama"}) by (model)'
