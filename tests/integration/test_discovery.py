"""Series discovery against a real Prometheus: readiness never depends on it, a rule Prometheus rejects
does not block the others, and a metric whose discovery never succeeded answers 503, then serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.cli import main
from tests.integration.conftest import ROOT, RULES, SERIES
from tests.support.adapter import Adapter, adapter
from tests.support.procs import free_port, python_module, running
from tests.support.prometheus import prometheus
from tests.support.stack import exporter_and_prometheus, get_ok

CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
P1 = f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization"
BROKEN = f"{CM2}/namespaces/ns1/pods/p1/broken_metric"
# parses for us (Rust's regex accepts "a**"), but Prometheus (Go's RE2) rejects it with a 400 at every relist
REJECTED_RULE = """- seriesQuery: 'nan_metric{pod=~"a**"}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^nan_metric$", as: "broken_metric"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


def with_rule(tmp: Path, rule: str) -> Path:
    head, _, tail = RULES.read_text().partition("externalRules:")
    cfg = tmp / "rules.yaml"
    cfg.write_text(head + rule + "externalRules:" + tail)
    return cfg


def status_of(ad: Adapter, path: str) -> tuple[int, dict[str, object]]:
    status, doc, _ = ad.get(path)
    return status, doc


def test_a_rule_prometheus_rejects_does_not_block_the_others(tmp_path: Path) -> None:
    cfg = with_rule(tmp_path, REJECTED_RULE)
    with exporter_and_prometheus(tmp_path, SERIES, min_results=5) as (_, prom), \
            adapter(tmp_path, prom.url, "--config", str(cfg), "--cache-ttl", "0", ready=False) as ad:
        assert status_of(ad, "/readyz")[0] == 200
        assert get_ok(ad, P1)["items"]  # the valid rules are served
        src = str(cfg)
        ad.wait_metric("accel_adapter_series_discovery_errors_total", lambda v: v >= 3, source=src, rule="rules[4]")
        assert ad.metric("accel_adapter_series_discovery_ok", source=src, rule="rules[4]") == 0
        assert ad.metric("accel_adapter_series_discovery_ok", source=src, rule="rules[0]") == 1
        assert ad.metric("accel_adapter_series_discovery_errors_total", source=src, rule="rules[0]") == 0
        status, doc = status_of(ad, BROKEN)
        assert status == 503 and doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable", doc
        assert "the metric broken_metric for pods is unavailable: series discovery for " in str(doc["message"])
        assert status_of(ad, "/readyz")[0] == 200
        failures = [line for line in ad.log_text().splitlines() if "series discovery failed" in line]
        assert len(failures) == 1, failures  # logged once, not at every relist
        assert "rules[4]" in failures[0]


def test_serves_once_an_unreachable_prometheus_comes_back(tmp_path: Path) -> None:
    port = free_port()
    with adapter(tmp_path, f"http://127.0.0.1:{port}", "--config", str(RULES), "--cache-ttl", "0",
                 ready=False) as ad:
        assert status_of(ad, "/readyz")[0] == 200  # ready without Prometheus
        ad.wait_metric("accel_adapter_series_discovery_errors_total", lambda v: v >= 1, source=str(RULES),
                       rule="rules[0]")
        status, doc = status_of(ad, P1)
        assert status == 503 and doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable", doc
        assert "unavailable" in str(doc["message"]) and "Prometheus is unreachable" in str(doc["message"])
        assert ad.metric("accel_adapter_prometheus_up") == 0
        series_file = tmp_path / "series.json"
        series_file.write_text(json.dumps(SERIES))
        exporter_port = free_port()
        with running(python_module("tests.support.exporter", "--port", str(exporter_port), "--file",
                                   str(series_file)), tmp_path / "exporter.log", env={"PYTHONPATH": str(ROOT)}), \
                prometheus(tmp_path, [f"127.0.0.1:{exporter_port}"], port=port) as prom:
            prom.wait_for("gpu_util", min_results=5)
            assert get_ok(ad, P1, timeout=60)["items"]
            ad.wait_metric("accel_adapter_prometheus_up", lambda v: v == 1)
            assert status_of(ad, "/readyz")[0] == 200
        # the outage and the recovery: one line each from the backend, whatever happened in between
        lines = [line for line in ad.log_text().splitlines() if "adapter.backends.prometheus:" in line]
        assert [line.split(": ", 1)[1].split(";")[0].split(" url=")[0] for line in lines] == [
            "Prometheus is unreachable", "Prometheus is reachable again"], lines
        assert "Retrying" not in ad.log_text()


def test_check_config_runs_each_series_query_and_reports_per_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = with_rule(tmp_path, REJECTED_RULE + """- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu_utilization"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""")
    with exporter_and_prometheus(tmp_path, SERIES, min_results=5) as (_, prom):
        prom.wait_for("cluster_queue_depth")
        assert main(["check-config", "--config", str(cfg), "--prometheus-url", prom.url]) == 1
        out, err = capsys.readouterr()
        lines = {line.strip().split(": ", 2)[1]: line.strip().split(": ", 2)[2] for line in out.splitlines()
                 if line.startswith("  ")}
        assert lines["rules[0]"] == ("5 series, 5 named, 2 metrics: namespaces/gpu_utilization, pods/gpu_utilization "
                                     "(overridden by a later rule: namespaces/gpu_utilization, pods/gpu_utilization)")
        assert lines["rules[2]"] == "2 series, 2 named, 1 metrics: nodes/node_temp_celsius"
        assert lines["rules[4]"].startswith("error: Internal error occurred: unable to fetch metrics (HTTP Status "
                                            "Code 400")
        assert "bad_data" in lines["rules[4]"]
        assert lines["rules[5]"] == "5 series, 5 named, 2 metrics: namespaces/gpu_utilization, pods/gpu_utilization"
        assert lines["externalRules[1]"] == "1 series, 1 named, 1 metrics: cluster_queue_depth"
        assert "series discovery failed for 1 of 8 rules" in err
        assert main(["check-config", "--config", str(RULES), "--prometheus-url", prom.url]) == 0
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["check-config", "--config", str(RULES), "--prometheus-url", dead, "--prometheus-timeout", "2s"]) == 1
    out = capsys.readouterr().out
    assert f"{RULES}: rules[0]: error: Prometheus is unreachable" in out
