"""Caching, single-flight and namespace-wide coalescing, counted at a proxy in front of a real Prometheus;
and each missing-data policy when the series stops, goes NaN, or Prometheus goes away."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.adapter import Adapter, adapter
from tests.support.prometheus import Prometheus
from tests.support.proxy import Proxy, counting_proxy
from tests.support.stack import exporter_and_prometheus, get_ok

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "tests" / "data" / "policies.yaml"
CM2 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods"
PODS = [f"p{i}" for i in range(20)]


def series(policy_value: object = 5) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": p, "gpu": "0"}, "value": 10 + i}
        for i, p in enumerate(PODS)]
    if policy_value is not None:
        out.append({"name": "policy_metric", "labels": {"namespace": "ns1", "pod": "p1"}, "value": policy_value})
    return out


class Env:
    def __init__(self, tmp: Path, file: Path, prom: Prometheus, proxy: Proxy) -> None:
        self.tmp, self.file, self.prom, self.proxy = tmp, file, prom, proxy

    def write(self, s: list[dict[str, object]]) -> None:
        self.file.write_text(json.dumps(s))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with exporter_and_prometheus(tmp_path, series(), min_results=20) as (file, prom), \
            counting_proxy(prom.url) as proxy:
        prom.wait_for("policy_metric")
        yield Env(tmp_path, file, prom, proxy)


def test_concurrent_identical_requests_cost_one_query(env: Env) -> None:
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "30s") as ad:
        get_ok(ad, f"{CM2}/p0/gpu_utilization")
        env.proxy.reset()
        ad.get(f"{CM2}/%2A/policy_error")  # a different metric warms nothing for gpu_utilization
        env.proxy.reset()
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: ad.get(f"{CM2}/%2A/gpu_utilization")[0], range(64)))
        assert codes == [200] * 64
        assert env.proxy.counts["/api/v1/query"] <= 1  # cached from the warm-up, or exactly one query


def test_different_objects_of_one_namespace_share_one_query(env: Env) -> None:
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "30s") as ad:
        get_ok(ad, f"{CM2}/p0/gpu_utilization")
        env.proxy.reset()
        with ThreadPoolExecutor(8) as pool:
            docs = list(pool.map(lambda p: ad.get(f"{CM2}/{p}/gpu_utilization")[1], PODS))
        assert [d["items"][0]["value"] for d in docs] == [str(10 + i) for i in range(20)]  # type: ignore[index]
        assert env.proxy.counts["/api/v1/query"] == 0  # all 20 answered from the namespace-wide result
        assert env.proxy.queries == []


def test_cache_off_is_one_query_per_request(env: Env) -> None:
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "0") as ad:
        get_ok(ad, f"{CM2}/p0/gpu_utilization")
        env.proxy.reset()
        for p in PODS[:10]:
            assert ad.get(f"{CM2}/{p}/gpu_utilization")[0] == 200
        assert env.proxy.counts["/api/v1/query"] == 10
        # prometheus-adapter's exact PromQL when caching is off
        assert 'pod%3D%22p3%22' in "".join(env.proxy.queries) or 'pod="p3"' in "".join(env.proxy.queries)


def test_ttl_expiry_queries_again(env: Env) -> None:
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "1s") as ad:
        get_ok(ad, f"{CM2}/p0/gpu_utilization")
        env.proxy.reset()
        time.sleep(1.5)
        get_ok(ad, f"{CM2}/p0/gpu_utilization")
        assert env.proxy.counts["/api/v1/query"] == 1


def wait_status(ad: Adapter, path: str, want: int, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    status, doc = 0, {}
    while time.monotonic() < deadline:
        status, doc, _ = ad.get(path)
        if status == want:
            return doc
        time.sleep(0.3)
    raise AssertionError(f"{path}: wanted {want}, last {status} {doc}")


@pytest.mark.parametrize("how", ["stops", "nan"])
def test_missing_data_policies_when_series_stops_or_goes_nan(env: Env, how: str) -> None:
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "0") as ad:
        for m in ("policy_error", "policy_zero", "policy_last"):
            assert get_ok(ad, f"{CM2}/p1/{m}")["items"][0]["value"] == "5"  # type: ignore[index]
        seen_ts = get_ok(ad, f"{CM2}/p1/policy_last")["items"][0]["timestamp"]  # type: ignore[index]
        env.write(series(None if how == "stops" else "NaN"))
        doc = wait_status(ad, f"{CM2}/p1/policy_error", 404)
        assert doc["reason"] == "NotFound"
        doc = get_ok(ad, f"{CM2}/p1/policy_zero")
        assert doc["items"][0]["value"] == "0"  # type: ignore[index]
        doc = get_ok(ad, f"{CM2}/p1/policy_last")
        item = doc["items"][0]  # type: ignore[index]
        assert item["value"] == "5"
        assert item["timestamp"] <= seen_ts or item["timestamp"] != time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # past maxAge (10s) the last value is no longer served
        wait_status(ad, f"{CM2}/p1/policy_last", 404, timeout=20)


def test_prometheus_outage_never_turns_into_zero(env: Env) -> None:
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "0",
                 "--request-timeout", "5s", "--prometheus-timeout", "2s") as ad:
        for m in ("policy_error", "policy_zero", "policy_last"):
            get_ok(ad, f"{CM2}/p1/{m}")
        env.proxy.stall = 10  # Prometheus stops answering
        status, doc, _ = ad.get(f"{CM2}/p1/policy_last")  # within maxAge (10s): the last value, its timestamp
        assert status == 200 and doc["items"][0]["value"] == "5"  # type: ignore[index]
        assert ad.get(f"{CM2}/p1/policy_error")[0] == 503
        assert ad.get(f"{CM2}/p1/policy_zero")[0] == 503  # an outage is not "no data"


def test_cluster_wide_query_serves_every_namespace(env: Env) -> None:
    env.write([*series(), {"name": "gpu_util", "labels": {"namespace": "ns2", "pod": "p0", "gpu": "0"}, "value": 77}])
    env.prom.wait_for('gpu_util{namespace="ns2"}')
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "30s") as ad:
        get_ok(ad, f"{CM2}/p0/gpu_utilization")
        env.proxy.reset()
        doc = get_ok(ad, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns2/pods/p0/gpu_utilization")
        assert doc["items"][0]["value"] == "77"  # type: ignore[index]  # same pod name, other namespace
        assert env.proxy.counts["/api/v1/query"] == 0  # one query answered both namespaces


def test_template_without_groupby_is_answered_per_namespace(env: Env) -> None:
    """``by (pod)`` written out loses the namespace when grouped cluster-wide: decided on the parsed
    template before any query (adapter.naming.shape), so only namespace-scoped queries are sent."""
    with adapter(env.tmp, env.proxy.url, "--config", str(POLICIES), "--cache-ttl", "30s") as ad:
        env.proxy.reset()
        doc = get_ok(ad, f"{CM2}/%2A/gpu_hardcoded_by_pod")
        assert {i["describedObject"]["name"]: i["value"] for i in doc["items"]} == {  # type: ignore[union-attr]
            p: str(10 + i) for i, p in enumerate(PODS)}
        sent = [urllib.parse.unquote_plus(q) for q in env.proxy.queries]
        value_queries = [q for q in sent if "gpu_util" in q]
        assert value_queries and all('namespace="ns1"' in q for q in value_queries), sent
