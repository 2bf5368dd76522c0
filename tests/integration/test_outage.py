"""Prometheus unreachable, stopped mid-test, or hanging: 503 Status, never a wrong value or a hang."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, RULES, SERIES
from tests.support.adapter import adapter
from tests.support.procs import free_port, python_module, running
from tests.support.prometheus import Prometheus, prometheus
from tests.support.proxy import counting_proxy
from tests.support.stack import exporter_and_prometheus, get_ok

CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
P1 = f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization"


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[Prometheus]:
    with exporter_and_prometheus(tmp_path, SERIES, min_results=5) as (_, p):
        yield p


def test_prometheus_process_stopped(tmp_path: Path) -> None:
    series_file = tmp_path / "series.json"
    series_file.write_text(json.dumps(SERIES))
    port = free_port()
    with running(python_module("tests.support.exporter", "--port", str(port), "--file", str(series_file)),
                 tmp_path / "exporter.log", env={"PYTHONPATH": str(ROOT)}):
        prom_cm = prometheus(tmp_path, [f"127.0.0.1:{port}"])
        p = prom_cm.__enter__()
        try:
            p.wait_for("gpu_util", min_results=5)
            with adapter(tmp_path, p.url, "--config", str(RULES), "--cache-ttl", "0") as ad:
                get_ok(ad, P1)
                prom_cm.__exit__(None, None, None)  # stop the real Prometheus process
                status, doc, _ = ad.get(P1)
                assert status == 503, doc
                assert doc["reason"] == "ServiceUnavailable" and doc["message"] == "Prometheus is unreachable"
                status, _, _ = ad.get("/livez")
                assert status == 200
        finally:
            prom_cm.__exit__(None, None, None)


def test_hanging_prometheus_gets_503_at_the_request_timeout(tmp_path: Path, prom: Prometheus) -> None:
    with counting_proxy(prom.url) as proxy, \
            adapter(tmp_path, proxy.url, "--config", str(RULES), "--cache-ttl", "0", "--request-timeout", "2s",
                    "--prometheus-timeout", "30s") as ad:
        get_ok(ad, P1)
        proxy.stall = 20
        start = time.monotonic()
        status, doc, _ = ad.get(P1)
        took = time.monotonic() - start
        assert status == 503, doc
        assert doc["reason"] == "ServiceUnavailable" and "request timeout (2s)" in str(doc["message"])
        assert took < 10, f"503 came after {took:.1f}s, not at the 2s request timeout"
        status, _, _ = ad.get("/livez")  # the server is still responsive while queries hang
        assert status == 200


def test_a_frozen_prometheus_fails_requests_at_the_prometheus_timeout_while_relisting(
        tmp_path: Path, prom: Prometheus) -> None:
    """Series discovery has its own threads: a relist stuck on a frozen Prometheus never holds the slots
    request queries need, so a request fails at --prometheus-timeout, not at --request-timeout."""
    head, _, tail = RULES.read_text().partition("externalRules:")
    extra = "".join(f"""- seriesQuery: 'gpu_util{{gpu="{i}",namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^gpu_util$", as: "gpu_utilization_{i}"}}
  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
""" for i in range(4))
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(head + extra + "externalRules:" + tail)  # 10 distinct seriesQuery strings
    with counting_proxy(prom.url) as proxy, \
            adapter(tmp_path, proxy.url, "--config", str(cfg), "--cache-ttl", "0", "--prometheus-max-concurrency",
                    "1", "--prometheus-timeout", "2s", "--request-timeout", "6s") as ad:
        get_ok(ad, P1)
        proxy.stall_paths = frozenset({"/api/v1/query", "/api/v1/series"})
        proxy.stall = 120  # frozen: accepts, reads, never answers
        deadline = time.monotonic() + 30
        while proxy.in_flight["/api/v1/series"] < 1:  # a relist is stuck on it now
            assert time.monotonic() < deadline, "no relist reached the frozen Prometheus"
            time.sleep(0.05)
        status, doc, _ = ad.get(P1)
        assert status == 503 and doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable", doc
        # the Prometheus call's own timeout answered, not the request timeout behind queued series calls
        assert doc["message"] == "Prometheus did not answer in time", doc
