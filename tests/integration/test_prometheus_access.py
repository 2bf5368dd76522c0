"""How the adapter talks to Prometheus: verbs, headers, token rotation, timeouts; and its logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.backends.prometheus import PrometheusBackend, PrometheusConfig
from tests.integration.conftest import RULES, SERIES
from tests.support.adapter import adapter
from tests.support.prometheus import Prometheus
from tests.support.proxy import counting_proxy
from tests.support.stack import exporter_and_prometheus, get_ok

P1 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/p1/gpu_utilization"


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with exporter_and_prometheus(tmp_path_factory.mktemp("access"), SERIES, min_results=5) as (_, p):
        yield p


def test_post_verb_headers_and_token_rotation(tmp_path: Path, prom: Prometheus) -> None:
    token = tmp_path / "token"
    token.write_text("first-secret-token\n")
    with counting_proxy(prom.url) as proxy, adapter(
            tmp_path, proxy.url, "--config", str(RULES), "--cache-ttl", "0", "--prometheus-verb", "POST",
            "--prometheus-header", "X-Scope-OrgID=team-a", "--prometheus-token-file", str(token),
            "--log-format", "json", "--log-level", "debug") as ad:
        get_ok(ad, P1)
        assert "POST /api/v1/query" in proxy.methods and "GET /api/v1/query" not in proxy.methods
        assert proxy.auth[-1] == "Bearer first-secret-token"
        assert proxy.headers[-1].get("X-Scope-OrgID") == "team-a"
        token.write_text("second-secret-token-longer\n")
        proxy.reset()
        get_ok(ad, P1)
        assert proxy.auth[-1] == "Bearer second-secret-token-longer"
        # json logs: every line the process wrote is JSON; no credential in any line
        lines = [line for line in ad.log_text().splitlines() if line.strip()]
        assert lines
        for line in lines:
            doc = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= set(doc)
        assert any(json.loads(line)["logger"].startswith("uvicorn") for line in lines)
        assert "secret-token" not in ad.log_text()


def test_series_discovery_is_one_call_per_distinct_series_query(tmp_path: Path, prom: Prometheus) -> None:
    dup = tmp_path / "dup.yaml"
    text = RULES.read_text()
    head, _, tail = text.partition("externalRules:")
    dup.write_text(head + """- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu_utilization_max"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:""" + tail)
    with counting_proxy(prom.url) as proxy, adapter(
            tmp_path, proxy.url, "--config", str(dup), "--metrics-relist-interval", "30s") as ad:
        doc = get_ok(ad, P1.replace("gpu_utilization", "gpu_utilization_max"))
        assert doc["items"][0]["value"] == "90"  # type: ignore[index]
        # 7 rules, 6 distinct seriesQuery strings: one relist = 6 series calls
        assert proxy.counts["/api/v1/series"] == 6


def test_long_query_switches_to_post(prom: Prometheus) -> None:
    with counting_proxy(prom.url) as proxy:
        backend = PrometheusBackend(PrometheusConfig(url=proxy.url, timeout=5))
        try:
            names = "|".join(f"pod-{i:05d}" for i in range(1200))
            result = backend.query_sync(f'max(gpu_util{{pod=~"{names}|p1"}}) by (pod)')
            assert [s.labels["pod"] for s in result.samples] == ["p1"]
            backend.query_sync("max(gpu_util)")
        finally:
            backend.close()
        assert proxy.methods == ["POST /api/v1/query", "GET /api/v1/query"]
