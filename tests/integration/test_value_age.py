"""The data's real age (issue 9.1), against a real Prometheus scraping samples with explicit timestamps.

Prometheus stamps every element of an instant-query answer with the evaluation time; the age of a
value is now minus the time of the newest raw sample behind it. A value older than the limit is not
served on any path (fresh query, cache hit, lastKnown), and the served ``timestamp`` is the data's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.adapter import Adapter, adapter
from tests.support.procs import free_port, python_module, running
from tests.support.prometheus import Prometheus, prometheus
from tests.support.stack import ROOT, exporter_and_prometheus, get_ok

CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"

RULES = """
rules:
- seriesQuery: '{__name__=~"^(stale|fresh)_gauge$",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^(stale|fresh)_requests_total$",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^(stale|fresh)_latency_seconds_bucket$",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_seconds_bucket$", as: "${1}_p90_seconds"}
  metricsQuery: 'histogram_quantile(0.9, sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (le, <<.GroupBy>>))'
externalRules:
- seriesQuery: '{__name__=~"^(stale|fresh)_queue$"}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (model)'
"""

# series discovery looks back further than the lag, so the stale series are known metrics
DISCOVER = ("--metrics-max-age", "10m")
STALE = 120  # seconds the "stale_*" samples lag behind (a delayed remote-write or federation)


def _series() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for kind, age in (("stale", STALE), ("fresh", 0)):
        pod = {"namespace": "ns1", "pod": "p1"}
        out.append({"name": f"{kind}_gauge", "labels": pod, "value": 42, "age": age})
        out.append({"name": f"{kind}_requests_total", "labels": pod, "value": 0, "per_second": 2, "age": age})
        for le, share in (("0.1", 0.5), ("0.5", 0.9), ("+Inf", 1.0)):
            out.append({"name": f"{kind}_latency_seconds_bucket", "labels": {**pod, "le": le},
                        "value": 0, "per_second": 10 * share, "age": age})
        out.append({"name": f"{kind}_queue", "labels": {"namespace": "ns1", "model": "llama"}, "value": 7,
                    "age": age})
    return out


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("age")
    with exporter_and_prometheus(tmp, _series(), wait_for="stale_gauge") as (_, p):
        # two samples of each counter inside the rate window
        p.wait_for("rate(stale_requests_total[5m]) > 0")
        p.wait_for("rate(fresh_latency_seconds_bucket[5m]) > 0", min_results=3)
        yield p


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("age-rules") / "rules.yaml"
    path.write_text(RULES)
    return path


def _ts(doc: dict[str, object]) -> float:
    items = doc["items"]
    assert isinstance(items, list) and len(items) == 1
    text = items[0]["timestamp"]
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize("metric", ["gauge", "requests_per_second", "latency_p90_seconds"])
def test_value_older_than_max_value_age_is_not_served(tmp_path: Path, prom: Prometheus, rules: Path,
                                                      metric: str) -> None:
    """Reproduction 1, for a gauge, a rate() rule and a histogram_quantile() rule: the fresh series is
    served, the one whose newest sample is 120 s old is not (its answer says why, /metrics counts it)."""
    data_age = prom.query("time() - timestamp(stale_gauge)")
    assert float(data_age[0]["value"][1]) > 60  # type: ignore[index]
    with adapter(tmp_path, prom.url, "--config", str(rules), "--cache-ttl", "0", "--max-value-age", "30s",
                 *DISCOVER) as ad:
        get_ok(ad, f"{CM2}/namespaces/ns1/pods/p1/fresh_{metric}")
        status, doc, _ = ad.get(f"{CM2}/namespaces/ns1/pods/p1/stale_{metric}")
        assert status == 404, doc
        assert doc["kind"] == "Status" and doc["reason"] == "NotFound"
        status, doc, _ = ad.get(f"{CM2}/namespaces/ns1/pods/*/stale_{metric}")
        assert status == 404 or doc.get("items") == [], doc
        assert "older than the age limit" in ad.log_text()
        _, metrics, _ = ad.get("/metrics")
        assert 'accel_adapter_values_withheld_total{reason="stale"}' in str(metrics.get("_text"))
        assert 'accel_adapter_values_withheld_total{reason="stale"} 0.0' not in str(metrics.get("_text"))


def test_timestamp_is_the_data_time(tmp_path: Path, prom: Prometheus, rules: Path) -> None:
    """The served timestamp is the newest raw sample's, not the query's evaluation time."""
    with adapter(tmp_path, prom.url, "--config", str(rules), "--cache-ttl", "0", "--max-value-age", "10m",
                 *DISCOVER) as ad:
        # the exporter's sample time only moves forward, always STALE s behind its clock: the served
        # time lies between the raw sample times read before and after the answer (no clock compared)
        before = _raw_time(prom, "timestamp(stale_gauge)")
        served = _ts(get_ok(ad, f"{CM2}/namespaces/ns1/pods/p1/stale_gauge"))
        after = _raw_time(prom, "timestamp(stale_gauge)")
        assert int(before) <= served <= after
        before = _raw_time(prom, "max(timestamp(stale_queue))")
        served = _ts(get_ok(ad, f"{EM}/namespaces/ns1/stale_queue"))
        after = _raw_time(prom, "max(timestamp(stale_queue))")
        assert int(before) <= served <= after


def _raw_time(prom: Prometheus, promql: str) -> float:
    return float(prom.query(promql)[0]["value"][1])  # type: ignore[index]


def test_external_value_older_than_limit_is_not_served(tmp_path: Path, prom: Prometheus, rules: Path) -> None:
    with adapter(tmp_path, prom.url, "--config", str(rules), "--cache-ttl", "0", "--max-value-age", "30s",
                 *DISCOVER) as ad:
        doc = get_ok(ad, f"{EM}/namespaces/ns1/fresh_queue")
        assert [i["value"] for i in doc["items"]] == ["7"]  # type: ignore[union-attr]
        status, doc, _ = ad.get(f"{EM}/namespaces/ns1/stale_queue")
        assert status == 404, doc


def test_cached_value_is_not_served_once_its_data_is_too_old(tmp_path: Path) -> None:
    """Reproduction 2: --cache-ttl 120s --max-value-age 5s; read; stop Prometheus: the cached value
    stops being served once its data is older than 5 s (before: 200 for the whole TTL)."""
    series_file = tmp_path / "series.json"
    series_file.write_text(json.dumps(_series()))
    port = free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with running(python_module("tests.support.exporter", "--port", str(port), "--file", str(series_file)),
                 tmp_path / "exporter.log", env={"PYTHONPATH": str(ROOT)}):
        prom_cm = prometheus(tmp_path, [f"127.0.0.1:{port}"])
        p = prom_cm.__enter__()
        try:
            p.wait_for("fresh_gauge")
            with adapter(tmp_path, p.url, "--config", str(rules), "--cache-ttl", "120s",
                         "--max-value-age", "5s") as ad:
                path = f"{CM2}/namespaces/ns1/pods/p1/fresh_gauge"
                get_ok(ad, path)
                prom_cm.__exit__(None, None, None)  # stop the real Prometheus: only the cache can answer
                status = _wait_not_ok(ad, path, bound=60)
                assert status == 404
                assert "older than the age limit" in ad.log_text()
        finally:
            prom_cm.__exit__(None, None, None)


def _wait_not_ok(ad: Adapter, path: str, bound: float) -> int:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        status, _, _ = ad.get(path)
        if status != 200:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{path} still answered 200 after {bound}s with the data older than the limit")
