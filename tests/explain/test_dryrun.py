"""``accel-adapter explain`` (the dry run) against a real Prometheus scraping a real exporter.

Each test asks one question a user asks at 3 a.m. and checks the answer names the cause: the rule
and the PromQL as sent, per pod the raw samples with their own timestamps, the value or why none
(no series, NaN, older than the age limit), and for a metric no rule serves, why not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter import cli
from tests.support.prometheus import Prometheus
from tests.support.stack import exporter_and_prometheus

RULES = """
rules:
- seriesQuery: '{__name__=~"^vllm_num_requests_waiting$",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^vllm_num_requests_(.*)$", as: "vllm_requests_${1}"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^gpu_.*",namespace!="",pod!=""}'
  seriesFilters: [{isNot: "^gpu_debug_.*"}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{__name__="node_only_metric",node!=""}'
  resources: {overrides: {node: {resource: node}}}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (model)'
"""

POD = {"namespace": "llm"}
SERIES: list[dict[str, object]] = [
    {"name": "vllm_num_requests_waiting", "labels": {**POD, "pod": "vllm-0"}, "value": 12},
    {"name": "vllm_num_requests_waiting", "labels": {**POD, "pod": "vllm-1"}, "value": 11},
    {"name": "vllm_num_requests_waiting", "labels": {**POD, "pod": "vllm-2"}, "value": 9, "age": 200},
    {"name": "vllm_num_requests_waiting", "labels": {**POD, "pod": "vllm-3"}, "value": "NaN"},
    {"name": "vllm_num_requests_waiting", "labels": {**POD, "pod": "other-0"}, "value": 50},
    {"name": "gpu_util", "labels": {**POD, "pod": "vllm-0", "gpu": "0"}, "value": 80},
    {"name": "gpu_util", "labels": {**POD, "pod": "vllm-0", "gpu": "1"}, "value": 60},
    {"name": "gpu_debug_util", "labels": {**POD, "pod": "vllm-0"}, "value": 1},
    {"name": "node_only_metric", "labels": {"node": "n1"}, "value": 1},
    {"name": "queue_depth", "labels": {**POD, "model": "llama"}, "value": 7},
    {"name": "queue_depth", "labels": {**POD, "model": "mistral"}, "value": "NaN"},
]


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Path]]:
    tmp = tmp_path_factory.mktemp("explain")
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    with exporter_and_prometheus(tmp, SERIES, wait_for="vllm_num_requests_waiting", min_results=5) as (_, p):
        p.wait_for("queue_depth", min_results=2)
        yield p, rules


def explain(capsys: pytest.CaptureFixture[str], prom: tuple[Prometheus, Path], *args: str,
            output: str = "json") -> tuple[int, Any, str]:
    p, rules = prom
    rc = cli.main(["explain", "--config", str(rules), "--prometheus-url", p.url, "--metrics-max-age", "20m",
                   "--max-value-age", "2m", "-o", output, *args])
    out, err = capsys.readouterr()
    return rc, json.loads(out) if output == "json" else out, err


def test_pods_metric_per_pod_values_and_reasons(capsys: pytest.CaptureFixture[str],
                                                prom: tuple[Prometheus, Path]) -> None:
    rc, doc, _ = explain(capsys, prom, "-n", "llm", "--metric", "vllm_requests_waiting",
                         "--pods", "vllm-0,vllm-1,vllm-2,vllm-3,vllm-4")
    assert rc == 0
    assert doc["kind"] == "Explanation" and doc["apiVersion"] == "explain.accel-metrics.io/v1alpha1"
    assert doc["request"]["path"] == ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/%2A/"
                                      "vllm_requests_waiting")
    assert doc["rule"]["where"].endswith("rules.yaml: rules[0]")
    assert doc["rule"]["series"] == "vllm_num_requests_waiting"
    (q,) = doc["queries"]
    assert q["cache"]["state"] == "off"
    assert q["valueQuery"] == ('sum(vllm_num_requests_waiting{namespace="llm",'
                               'pod=~"vllm-0|vllm-1|vllm-2|vllm-3|vllm-4"}) by (pod)')
    objs = {o["name"]: o for o in doc["objects"]}
    assert objs["vllm-0"]["served"] and objs["vllm-0"]["value"] == 12
    assert objs["vllm-0"]["samples"][0]["value"] == 12
    assert objs["vllm-0"]["samples"][0]["labels"]["pod"] == "vllm-0"
    assert not objs["vllm-2"]["served"] and objs["vllm-2"]["reason"] == "stale"
    assert objs["vllm-2"]["ageSeconds"] > 150
    # the raw sample's own timestamp, not the evaluation time
    assert q["evaluatedAt"] - objs["vllm-2"]["samples"][0]["timestamp"] > 150
    assert objs["vllm-3"]["reason"] == "non_finite" and objs["vllm-3"]["computed"] == "nan"
    assert objs["vllm-4"]["reason"] == "no_series" and objs["vllm-4"]["samples"] == []
    assert "served 2 of 5 objects" in doc["summary"]


def test_text_report_leads_with_the_verdict(capsys: pytest.CaptureFixture[str],
                                            prom: tuple[Prometheus, Path]) -> None:
    rc, out, _ = explain(capsys, prom, "-n", "llm", "--metric", "gpu_util", "--pods", "vllm-0", output="text")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "served: served 1 of 1 objects"
    assert '(avg(gpu_util{namespace="llm",pod="vllm-0"}) by (pod)) or label_replace(max by (pod)' in out
    assert out.count("    raw ") == 2  # one raw sample per GPU behind the average


def test_metric_filtered_by_series_filters_exits_non_zero(capsys: pytest.CaptureFixture[str],
                                                          prom: tuple[Prometheus, Path]) -> None:
    rc, doc, err = explain(capsys, prom, "-n", "llm", "--metric", "gpu_debug_util", "--pods", "vllm-0")
    assert rc == 1
    assert doc["served"] is False and doc["rule"] is None
    assert doc["error"]["code"] == 404
    assert "rules[1]: series gpu_debug_util is rejected by its seriesFilters" in doc["diagnosis"][0]
    assert "would not be served" in err


def test_metric_without_a_pod_label(capsys: pytest.CaptureFixture[str], prom: tuple[Prometheus, Path]) -> None:
    rc, doc, _ = explain(capsys, prom, "-n", "llm", "--metric", "node_only_metric", "--pods", "vllm-0")
    assert rc == 1
    assert "has no label for pods (its labels map to: nodes)" in doc["diagnosis"][0]


def test_unknown_metric_suggests_close_names(capsys: pytest.CaptureFixture[str],
                                             prom: tuple[Prometheus, Path]) -> None:
    rc, doc, _ = explain(capsys, prom, "-n", "llm", "--metric", "vllm_request_waiting", "--pods", "vllm-0")
    assert rc == 1
    assert "similar metrics: vllm_requests_waiting" in doc["diagnosis"][0]


def test_every_pod_stale_is_not_served(capsys: pytest.CaptureFixture[str], prom: tuple[Prometheus, Path]) -> None:
    rc, doc, _ = explain(capsys, prom, "-n", "llm", "--metric", "vllm_requests_waiting", "--pods", "vllm-2")
    assert rc == 1
    assert doc["objects"][0]["reason"] == "stale"
    assert doc["served"] is False and doc["summary"].endswith("(1 objects, none served: 1 stale)")


def test_external_metric_per_series(capsys: pytest.CaptureFixture[str], prom: tuple[Prometheus, Path]) -> None:
    rc, doc, _ = explain(capsys, prom, "-n", "llm", "--external", "--metric", "queue_depth")
    assert rc == 0
    assert doc["request"]["path"] == "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/queue_depth"
    objs = {o["name"]: o for o in doc["objects"]}
    assert objs["model=llama"]["served"] and objs["model=llama"]["value"] == 7
    assert objs["model=llama"]["samples"][0]["labels"]["model"] == "llama"
    assert objs["model=mistral"]["reason"] == "non_finite"
    assert doc["summary"] == "served 1 of 2 series; without a value: 1 non_finite"


def test_unreachable_prometheus_exits_non_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    rc = cli.main(["explain", "--config", str(rules), "--prometheus-url", "http://127.0.0.1:9", "--metric", "x"])
    assert rc == 1
    assert "accel-adapter explain:" in capsys.readouterr().err


def test_yaml_output_is_the_same_document(capsys: pytest.CaptureFixture[str], prom: tuple[Prometheus, Path]) -> None:
    import yaml

    rc, out, _ = explain(capsys, prom, "-n", "llm", "--metric", "gpu_util", "--pods", "vllm-0", output="yaml")
    assert rc == 0
    doc = yaml.safe_load(out)
    assert doc["kind"] == "Explanation" and doc["objects"][0]["value"] == 70


def test_one_named_object(capsys: pytest.CaptureFixture[str], prom: tuple[Prometheus, Path]) -> None:
    rc, doc, _ = explain(capsys, prom, "-n", "llm", "--metric", "vllm_requests_waiting", "--name", "vllm-1",
                         "--pods", "vllm-1")
    assert rc == 0
    assert doc["request"]["path"] == ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/vllm-1/"
                                      "vllm_requests_waiting")
    assert [(o["name"], o["value"]) for o in doc["objects"]] == [("vllm-1", 11)]
