"""With the cache on or off, every template serves exactly prometheus-adapter's value (issue 9.2).

Each template shape is served by the real adapter (cache on: wide queries where the parsed template
is proven per-object; cache off: prometheus-adapter's query) and compared with prometheus-adapter's
rendering (namespace ``=`` matcher plus the selected pod names, ``GroupBy`` = the resource label)
evaluated directly on the same real Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.demo_hpa import parse_quantity
from adapter.model import GroupResource, Selector
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.rules import SourcedRule, parse_rules_text
from tests.support.adapter import adapter
from tests.support.prometheus import Prometheus
from tests.support.stack import exporter_and_prometheus, get_ok

CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
PODS = GroupResource("", "pods")
OBJECT = {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}

# name -> (metricsQuery, wide with the cache on?)
SHAPES: dict[str, tuple[str, bool]] = {
    "per_pod_avg": ("avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)", True),
    "per_pod_rate": ("sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)", True),
    "hardcoded_by_pod": ("max(<<.Series>>{<<.LabelMatchers>>}) by (pod)", True),
    "share_of_selection": ("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) "
                           "/ scalar(sum(<<.Series>>{<<.LabelMatchers>>}))", False),
    "div_sum_on_group_left": ("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) "
                              "/ on() group_left sum(<<.Series>>{<<.LabelMatchers>>})", False),
    "topk_of_selection": ("topk(1, sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>))", False),
    "count_of_selection": ("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) * 0 "
                           "+ on() group_left count(count(<<.Series>>{<<.LabelMatchers>>}) by (pod))", False),
    # prometheus-adapter's documented pattern: the request's values written into the template's own matchers
    "values_by_name": ('sum(<<.Series>>{namespace="<<index .LabelValuesByName "namespace">>",'
                       'pod=~"<<index .LabelValuesByName "pod">>"}) by (<<.GroupBy>>)', False),
    "relabelled_outside": ("max by (<<.GroupBy>>) (label_replace(<<.Series>>{exported_pod!=\"\"}, "
                           "\"pod\", \"$1\", \"exported_pod\", \"(.+)\") and on (namespace, pod) "
                           "<<.Series>>{<<.LabelMatchers>>})", True),
}

SERIES: list[dict[str, object]] = [
    *({"name": "shape_gauge", "labels": {"namespace": ns, "pod": pod, "gpu": gpu}, "value": v}
      for ns, pod, gpu, v in (("ns1", "llm-a", "0", 10), ("ns1", "llm-a", "1", 30), ("ns1", "llm-b", "0", 20),
                              ("ns1", "other-c", "0", 70), ("ns2", "llm-a", "0", 400))),
    {"name": "shape_gauge", "labels": {"namespace": "ns1", "pod": "exporter", "exported_pod": "llm-b", "gpu": "7"},
     "value": 55},
    *({"name": "kube_pod_labels", "labels": {"namespace": ns, "pod": pod, "label_app": app}, "value": 1}
      for ns, pod, app in (("ns1", "llm-a", "llm"), ("ns1", "llm-b", "llm"), ("ns1", "other-c", "other"),
                           ("ns2", "llm-a", "llm"))),
]


def _rules() -> str:
    out = ["rules:"]
    for name, (query, _) in SHAPES.items():
        out.append(f"""- seriesQuery: 'shape_gauge{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^shape_gauge$", as: "{name}"}}
  metricsQuery: '{query.replace("'", "''")}'""")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with exporter_and_prometheus(tmp_path_factory.mktemp("shapes"), SERIES, wait_for="shape_gauge",
                                 min_results=6) as (_, p):
        p.wait_for("rate(shape_gauge[1m]) >= 0", min_results=6)
        yield p


def _namer(name: str) -> MetricNamer:
    rf = parse_rules_text(_rules(), "shapes.yaml")
    index = list(SHAPES).index(name)
    return MetricNamer.compile(SourcedRule(rf.rules[index], "shapes.yaml", "rules", index), StaticResourceMapper())


def _expected(prom: Prometheus, name: str, names: list[str]) -> dict[str, float]:
    """prometheus-adapter's query for ``names`` in ns1, evaluated directly; values by pod."""
    query = _namer(name).build("shape_gauge", PODS, "ns1", names, Selector())
    out: dict[str, float] = {}
    for item in prom.query(query):
        pod = item["metric"].get("pod")  # type: ignore[attr-defined]
        value = float(item["value"][1])  # type: ignore[index]
        if pod in names and pod not in out and math.isfinite(value):
            out[pod] = value
    return out


def test_shapes_are_classified_on_the_parsed_template() -> None:
    for name, (_, wide) in SHAPES.items():
        reason = _namer(name).wide_reason(PODS, cluster=False)
        assert (reason is None) == wide, (name, reason)


@pytest.mark.parametrize("cache_ttl", ["0", "30s"], ids=["cache-off", "cache-on"])
def test_every_shape_serves_prometheus_adapters_value(tmp_path: Path, prom: Prometheus, cache_ttl: str) -> None:
    rules = tmp_path / "shapes.yaml"
    rules.write_text(_rules())
    with adapter(tmp_path, prom.url, "--config", str(rules), "--cache-ttl", cache_ttl) as ad:
        for name in SHAPES:
            # the HPA's request: the pods selected by app=llm in ns1 (llm-a, llm-b; never ns2's llm-a)
            doc = get_ok(ad, f"{CM2}/namespaces/ns1/pods/%2A/{name}?labelSelector=app%3Dllm")
            served = {i["describedObject"]["name"]: parse_quantity(i["value"])  # type: ignore[index]
                      for i in doc["items"]}  # type: ignore[union-attr]
            expected = _expected(prom, name, ["llm-a", "llm-b"])
            assert served.keys() == expected.keys(), (name, served, expected)
            for pod, value in expected.items():
                assert served[pod] == pytest.approx(value, abs=1e-3), (name, pod, served, expected)
            # and one object by name: prometheus-adapter's single-name query
            doc = get_ok(ad, f"{CM2}/namespaces/ns1/pods/llm-b/{name}")
            one = _expected(prom, name, ["llm-b"])["llm-b"]
            assert parse_quantity(doc["items"][0]["value"]) == pytest.approx(one, abs=1e-3), name  # type: ignore[index]
