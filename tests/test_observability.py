"""Metrics on a fresh CollectorRegistry per test; values read back with ``get_sample_value``."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from adapter.cache import QueryCache
from adapter.observability import PREFIX, VALUE_AGE_BUCKETS, Metrics


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def test_requests_by_group_version_code(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_request("custom.metrics.k8s.io", "v1beta2", 200, 0.004)
    metrics.observe_request("custom.metrics.k8s.io", "v1beta2", 200, 0.02)
    metrics.observe_request("external.metrics.k8s.io", "v1beta1", 503, 2.0)
    ok = {"group": "custom.metrics.k8s.io", "version": "v1beta2", "code": "200"}
    assert registry.get_sample_value("accel_adapter_requests_total", ok) == 2
    assert registry.get_sample_value("accel_adapter_request_duration_seconds_count", ok) == 2
    assert registry.get_sample_value("accel_adapter_request_duration_seconds_sum", ok) == pytest.approx(0.024)
    le = {**ok, "le": "0.005"}
    assert registry.get_sample_value("accel_adapter_request_duration_seconds_bucket", le) == 1
    bad = {"group": "external.metrics.k8s.io", "version": "v1beta1", "code": "503"}
    assert registry.get_sample_value("accel_adapter_requests_total", bad) == 1


def test_prometheus_queries_outcome_duration_errors(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_query("query", 0.01)
    metrics.observe_query("query", 0.5, error="Timeout")
    metrics.observe_query("series", 0.2)

    def val(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"accel_adapter_{name}", labels)

    assert val("prometheus_queries_total", endpoint="query", outcome="success") == 1
    assert val("prometheus_queries_total", endpoint="query", outcome="error") == 1
    assert val("prometheus_queries_total", endpoint="series", outcome="success") == 1
    assert val("prometheus_queries_total", endpoint="series", outcome="error") == 0  # pre-created
    assert val("prometheus_query_errors_total", endpoint="query", reason="Timeout") == 1
    assert val("prometheus_query_duration_seconds_count", endpoint="query") == 2
    assert val("prometheus_query_duration_seconds_sum", endpoint="query") == pytest.approx(0.51)


def test_prometheus_call_matches_backend_on_call(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.prometheus_call("query", "success", 0.01)
    metrics.prometheus_call("query", "timeout", 10.0)
    metrics.prometheus_call("series", "unreachable", 0.001)
    assert registry.get_sample_value("accel_adapter_prometheus_queries_total",
                                     {"endpoint": "query", "outcome": "timeout"}) == 1
    assert registry.get_sample_value("accel_adapter_prometheus_query_errors_total",
                                     {"endpoint": "series", "reason": "unreachable"}) == 1
    assert registry.get_sample_value("accel_adapter_prometheus_query_duration_seconds_count",
                                     {"endpoint": "query"}) == 2


def test_time_query_context_manager(registry: CollectorRegistry) -> None:
    ticks = iter([10.0, 10.25, 20.0, 21.0])
    metrics = Metrics(registry, clock=lambda: next(ticks))
    with metrics.time_query("query"):
        pass
    with pytest.raises(ConnectionError), metrics.time_query("query"):
        raise ConnectionError("refused")
    assert registry.get_sample_value("accel_adapter_prometheus_queries_total",
                                     {"endpoint": "query", "outcome": "success"}) == 1
    assert registry.get_sample_value("accel_adapter_prometheus_query_errors_total",
                                     {"endpoint": "query", "reason": "ConnectionError"}) == 1
    assert registry.get_sample_value("accel_adapter_prometheus_query_duration_seconds_sum",
                                     {"endpoint": "query"}) == pytest.approx(1.25)


def test_cache_events_counted(registry: CollectorRegistry, metrics: Metrics) -> None:
    for name in ["hit", "hit", "miss", "coalesced", "evict", "evict", "evict"]:
        metrics.cache_event(name)
    got = {n: registry.get_sample_value(f"accel_adapter_cache_{n}_total", {"cache": "query"})
           for n in ("hits", "misses", "coalesced", "evictions")}
    assert got == {"hits": 2, "misses": 1, "coalesced": 1, "evictions": 3}
    with pytest.raises(ValueError):
        metrics.cache_event("bogus")
    other = metrics.cache_observer("lastknown")
    other("hit")
    assert registry.get_sample_value("accel_adapter_cache_hits_total", {"cache": "lastknown"}) == 1
    assert registry.get_sample_value("accel_adapter_cache_misses_total", {"cache": "lastknown"}) == 0


def test_cache_event_plugs_into_query_cache(registry: CollectorRegistry, metrics: Metrics) -> None:
    async def main() -> None:
        cache: QueryCache[str, int] = QueryCache(ttl=60, max_entries=1, on_event=metrics.cache_event,
                                                 clock=lambda: 0.0)
        gate = asyncio.Event()

        async def loader() -> int:
            await gate.wait()
            return 1

        tasks = [asyncio.create_task(cache.get_or_load("a", loader)) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        await cache.get_or_load("a", loader)
        await cache.get_or_load("b", loader)  # evicts a

    asyncio.run(main())
    got = {n: registry.get_sample_value(f"accel_adapter_cache_{n}_total", {"cache": "query"})
           for n in ("hits", "misses", "coalesced", "evictions")}
    assert got == {"hits": 1, "misses": 2, "coalesced": 2, "evictions": 1}


def test_relist_and_discovery_gauges(registry: CollectorRegistry) -> None:
    metrics = Metrics(registry, wall_clock=lambda: 1_700_000_000.0)
    metrics.observe_relist(0.3, series=16000, metrics={"custom": 8, "external": 2})
    metrics.observe_relist(0.1, series=15000, metrics={"custom": 7})
    metrics.relist_failed(5.0)
    assert registry.get_sample_value("accel_adapter_relist_duration_seconds_count") == 3
    assert registry.get_sample_value("accel_adapter_relist_errors_total") == 1
    assert registry.get_sample_value("accel_adapter_relist_last_success_timestamp_seconds") == 1.7e9
    assert registry.get_sample_value("accel_adapter_series_discovered") == 15000
    assert registry.get_sample_value("accel_adapter_metrics_discovered", {"api": "custom"}) == 7
    assert registry.get_sample_value("accel_adapter_metrics_discovered", {"api": "external"}) == 2


def test_value_age_histogram_buckets(registry: CollectorRegistry, metrics: Metrics) -> None:
    assert VALUE_AGE_BUCKETS[0] == 1.0 and VALUE_AGE_BUCKETS[-1] == 600.0
    for age in (0.5, 3.0, 14.0, 299.0, 900.0, -2.0):  # negative (clock skew) counts as 0
        metrics.observe_value_age(age)

    def bucket(le: str) -> float | None:
        return registry.get_sample_value("accel_adapter_value_age_seconds_bucket", {"le": le})

    assert bucket("1.0") == 2
    assert bucket("5.0") == 3
    assert bucket("15.0") == 4
    assert bucket("300.0") == 5
    assert bucket("600.0") == 5
    assert bucket("+Inf") == 6
    assert registry.get_sample_value("accel_adapter_value_age_seconds_sum") == pytest.approx(1216.5)


def test_render_text_and_openmetrics(metrics: Metrics) -> None:
    metrics.observe_request("custom.metrics.k8s.io", "v1beta2", 200, 0.01)
    body, ctype = metrics.render()
    assert ctype.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert "accel_adapter_requests" in families
    assert all(name.startswith(PREFIX) for name in families)
    body, ctype = metrics.render("application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_global_registry_untouched_and_instances_independent() -> None:
    before = {m.name for m in REGISTRY.collect()}
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    Metrics(r1).cache_event("hit")
    Metrics(r2)  # same names on another registry: no "Duplicated timeseries" error
    assert {m.name for m in REGISTRY.collect()} == before
    assert r1.get_sample_value("accel_adapter_cache_hits_total", {"cache": "query"}) == 1
    assert r2.get_sample_value("accel_adapter_cache_hits_total", {"cache": "query"}) == 0
    assert not any(m.name.startswith(PREFIX) for m in REGISTRY.collect())
