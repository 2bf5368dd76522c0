"""The shipped dashboard: generated from adapter.dashboard, copied into the chart, every query valid PromQL."""

from __future__ import annotations

import json

import pytest

from adapter import dashboard
from adapter.naming.promql import parse
from tests.dashboards.queries import ALL, CHART_COPY, DASHBOARD, ONE_HPA, load, panels, queries, variable_queries


def test_file_is_generated_from_adapter_dashboard() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == dashboard.render(), "run: python -m adapter.dashboard"


def test_chart_ships_the_same_file() -> None:
    assert CHART_COPY.read_bytes() == DASHBOARD.read_bytes(), "run: python -m adapter.dashboard"


@pytest.mark.parametrize("values", [ALL, ONE_HPA], ids=["all", "one-hpa"])
def test_every_panel_query_parses(values: dict[str, str]) -> None:
    n = 0
    for q in queries(load(), values):
        parse(q.expr)  # raises PromQLError naming the reason
        assert "$" not in q.expr, (q.panel, q.expr)
        n += 1
    assert n >= 25


def test_every_variable_query_parses() -> None:
    names = []
    for name, selector, label in variable_queries(load(), ALL):
        parse(f"count by ({label}) ({selector})")
        names.append(name)
    assert names == ["job", "namespace", "hpa", "metric"]


def test_layout_ids_and_sections() -> None:
    doc = load()
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in doc["panels"])
    for words in ("Served value against target", "Replicas", "Scale events", "Value age", "Objects left out",
                  "Query latency", "errors", "Cache hit ratio", "Coalesced", "Request rate", "Request latency",
                  "GPU engine active", "KV-cache", "Queue depth", "Time to first token"):
        assert words in titles, words
    for p in panels(doc):
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["gridPos"]["w"] in (12, 24) and p["description"]
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if len(steps) > 1:
            assert "typical threshold" in p["description"]


def test_queries_cover_every_named_source() -> None:
    text = json.dumps(load())
    for series in ("kube_horizontalpodautoscaler_status_target_metric",
                   "kube_horizontalpodautoscaler_spec_target_metric",
                   "kube_horizontalpodautoscaler_status_current_replicas",
                   "kube_horizontalpodautoscaler_status_desired_replicas",
                   "kube_horizontalpodautoscaler_spec_max_replicas", "accel_adapter_value_age_seconds",
                   "accel_adapter_values_withheld_total", "accel_adapter_prometheus_query_duration_seconds",
                   "accel_adapter_prometheus_queries_total", "accel_adapter_cache_hits_total",
                   "accel_adapter_rule_query_duration_seconds", "accel_adapter_rule_queries_total",
                   "accel_adapter_cache_coalesced_total", "accel_adapter_requests_total",
                   "accel_adapter_request_duration_seconds", "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                   "vllm:kv_cache_usage_perc", "vllm:num_requests_waiting", "vllm:time_to_first_token_seconds",
                   "sglang:num_queue_reqs", "llm_d_epp_flow_control_queue_size", "wva_desired_replicas"):
        assert series in text, series
