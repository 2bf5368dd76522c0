"""The Grafana dashboard shipped with the adapter (``dashboards/accel-metrics-adapter.json``).

Built here, as data, so the JSON file, the chart's copy and the tests all come from one place:
``python -m adapter.dashboard`` rewrites both files; ``tests/dashboards`` checks they are current,
that every query parses and that every panel returns data on a real Prometheus.

Sources of the series: the adapter's own metrics (``adapter.observability``); kube-state-metrics'
HPA series (``docs/metrics/workload/horizontalpodautoscaler-metrics.md`` in kubernetes/
kube-state-metrics); the exporters' series as in docs/presets.md. Thresholds are the targets the
examples/ and docs/presets.md use (each ``Threshold`` names its source).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UID = "accel-metrics-adapter"
TITLE = "accel-metrics-adapter: HPAs, served values, Prometheus, presets"
DS = {"type": "prometheus", "uid": "${datasource}"}
HPA = 'namespace=~"$namespace",horizontalpodautoscaler=~"$hpa"'
HPA_METRIC = f'{HPA},metric_name=~"$metric"'
JOB = 'job=~"$job"'
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"
PATHS = (Path("dashboards") / "accel-metrics-adapter.json",
         Path("charts") / "accel-metrics-adapter" / "dashboards" / "accel-metrics-adapter.json")


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str
    # True when the series only exists once something happened (e.g. the first failed query):
    # the tests then accept an empty answer for this target (never for a whole panel).
    only_when_it_happens: bool = False


@dataclass(frozen=True)
class Threshold:
    value: float
    source: str  # where the typical value comes from


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    threshold: Threshold | None = None
    kind: str = "timeseries"
    bars: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _q(q: float, metric: str, by: str, matchers: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{matchers}}}[{RATE}])))"


ROWS: tuple[Row, ...] = (
    Row("HPAs: what the autoscaler read and decided (kube-state-metrics)", (
        Panel("Served value against target",
              "The value the HPA controller last read from this adapter (status) and its target (spec), per "
              "HPA and metric. Average targets are per pod.",
              (Target(f"kube_horizontalpodautoscaler_status_target_metric{{{HPA_METRIC}}}",
                      "{{horizontalpodautoscaler}} {{metric_name}} current"),
               Target(f"kube_horizontalpodautoscaler_spec_target_metric{{{HPA_METRIC}}}",
                      "{{horizontalpodautoscaler}} {{metric_name}} target"))),
        Panel("Value / target",
              "1 = at target: above 1 the HPA scales up, below 1 down (outside its tolerance, 10% by default).",
              (Target("max by (namespace, horizontalpodautoscaler, metric_name) "
                      f"(kube_horizontalpodautoscaler_status_target_metric{{{HPA_METRIC}}})\n"
                      "/ max by (namespace, horizontalpodautoscaler, metric_name) "
                      f"(kube_horizontalpodautoscaler_spec_target_metric{{{HPA_METRIC}}})",
                      "{{horizontalpodautoscaler}} {{metric_name}}"),),
              threshold=Threshold(1.0, "the HPA's own target")),
        Panel("Replicas: current, desired, max",
              "Current and desired replicas and the HPA's bounds.",
              (Target(f"kube_horizontalpodautoscaler_status_current_replicas{{{HPA}}}",
                      "{{horizontalpodautoscaler}} current"),
               Target(f"kube_horizontalpodautoscaler_status_desired_replicas{{{HPA}}}",
                      "{{horizontalpodautoscaler}} desired"),
               Target(f"kube_horizontalpodautoscaler_spec_max_replicas{{{HPA}}}",
                      "{{horizontalpodautoscaler}} max"),
               Target(f"kube_horizontalpodautoscaler_spec_min_replicas{{{HPA}}}",
                      "{{horizontalpodautoscaler}} min"))),
        Panel("Scale events",
              "Changes of the desired replica count per window, and the HPA conditions that are true "
              "(ScalingActive false: the HPA cannot read its metrics; ScalingLimited: held at min/max).",
              (Target(f"changes(kube_horizontalpodautoscaler_status_desired_replicas{{{HPA}}}[5m])",
                      "{{horizontalpodautoscaler}} scale events / 5m"),
               Target(f'kube_horizontalpodautoscaler_status_condition{{{HPA},status="true"}} > 0',
                      "{{horizontalpodautoscaler}} {{condition}}")), bars=True),
    )),
    Row("Served values: age and objects left out", (
        Panel("Value age (p50, p95, max bucket)",
              "Age of served values: now minus the newest raw sample behind each. Values older than "
              "--max-value-age (5m by default) are not served.",
              (Target(_q(0.5, "accel_adapter_value_age_seconds", "job", JOB), "p50"),
               Target(_q(0.95, "accel_adapter_value_age_seconds", "job", JOB), "p95")),
              unit="s", threshold=Threshold(300, "the adapter's default --max-value-age")),
        Panel("Objects left out, by reason",
              "Values not served (the object is left out of the answer): stale, no_sample_time, non_finite "
              "(NaN/Inf), out_of_range.",
              (Target(f"sum by (reason) (rate(accel_adapter_values_withheld_total{{{JOB}}}[{RATE}]))",
                      "{{reason}}"),), unit="ops"),
    )),
    Row("Prometheus queries", (
        Panel("Query latency by endpoint (p50, p95)",
              "Duration of the adapter's requests to Prometheus (query: values; series: discovery).",
              (Target(_q(0.5, "accel_adapter_prometheus_query_duration_seconds", "endpoint", JOB), "{{endpoint}} p50"),
               Target(_q(0.95, "accel_adapter_prometheus_query_duration_seconds", "endpoint", JOB),
                      "{{endpoint}} p95")), unit="s"),
        Panel("Queries and errors by endpoint",
              "Requests to Prometheus per second by outcome, and failures by reason.",
              (Target(f"sum by (endpoint, outcome) (rate(accel_adapter_prometheus_queries_total{{{JOB}}}[{RATE}]))",
                      "{{endpoint}} {{outcome}}"),
               Target("sum by (endpoint, reason) "
                      f"(rate(accel_adapter_prometheus_query_errors_total{{{JOB}}}[{RATE}]))",
                      "{{endpoint}} error: {{reason}}", only_when_it_happens=True)), unit="reqps"),
        Panel("Query latency and errors by rule (p95)",
              "Value queries sent per rule (cache misses): p95 duration by preset (or rules file) and rule, and "
              "queries per second by preset and outcome. Sum by source for one line per preset.",
              (Target(_q(0.95, "accel_adapter_rule_query_duration_seconds", "source, rule", JOB),
                      "{{source}} {{rule}} p95"),
               Target(f"sum by (source, outcome) (rate(accel_adapter_rule_queries_total{{{JOB}}}[{RATE}]))",
                      "{{source}} {{outcome}}")), unit="s"),
        Panel("Series discovery",
              "Series and metric names found by the last relist, and seconds since it succeeded.",
              (Target(f"accel_adapter_series_discovered{{{JOB}}}", "series"),
               Target(f"sum by (api) (accel_adapter_metrics_discovered{{{JOB}}})", "{{api}} metrics"),
               Target(f"time() - max(accel_adapter_relist_last_success_timestamp_seconds{{{JOB}}})",
                      "seconds since the last relist"))),
    )),
    Row("Cache", (
        Panel("Cache hit ratio",
              "Share of value lookups answered from the cache.",
              (Target(f"sum by (cache) (rate(accel_adapter_cache_hits_total{{{JOB}}}[{RATE}]))\n"
                      f"/ clamp_min(sum by (cache) (rate(accel_adapter_cache_hits_total{{{JOB}}}[{RATE}]))\n"
                      f"  + sum by (cache) (rate(accel_adapter_cache_misses_total{{{JOB}}}[{RATE}])), 1e-9)",
                      "{{cache}} hit ratio"),), unit="percentunit"),
        Panel("Coalesced requests, evictions, refreshes",
              "Requests that waited for an identical query already in flight (coalesced), and cache churn.",
              tuple(Target(f"sum by (cache) (rate(accel_adapter_cache_{e}_total{{{JOB}}}[{RATE}]))",
                           f"{{{{cache}}}} {e}") for e in ("coalesced", "evictions", "refreshes")),
              unit="ops"),
    )),
    Row("API requests (custom.metrics.k8s.io, external.metrics.k8s.io)", (
        Panel("Request rate by group, version, code",
              "Requests served per second, by API group, version and HTTP status code.",
              (Target(f"sum by (group, version, code) (rate(accel_adapter_requests_total{{{JOB}}}[{RATE}]))",
                      "{{group}} {{version}} {{code}}"),), unit="reqps"),
        Panel("Request latency by group and version (p50, p95)",
              "Time to serve an API request. The HPA controller's request deadline is 30s.",
              (Target(_q(0.5, "accel_adapter_request_duration_seconds", "group, version", JOB),
                      "{{group}} {{version}} p50"),
               Target(_q(0.95, "accel_adapter_request_duration_seconds", "group, version", JOB),
                      "{{group}} {{version}} p95")), unit="s"),
    )),
    Row("Presets: key signals with typical thresholds", (
        Panel("GPU engine active (MIG instances included)",
              "DCGM_FI_PROF_GR_ENGINE_ACTIVE per GPU or MIG instance (GPU_UTIL is not reported for MIG). "
              "Both dcgm-exporter label layouts: exported_* (honorLabels false) and direct.",
              (Target('max by (exported_namespace, exported_pod, gpu, GPU_I_PROFILE, GPU_I_ID) '
                      '(DCGM_FI_PROF_GR_ENGINE_ACTIVE{exported_namespace=~"$namespace"})',
                      "{{exported_pod}} gpu {{gpu}} {{GPU_I_PROFILE}}"),
               Target(f'max by (namespace, pod, gpu, GPU_I_PROFILE, GPU_I_ID) '
                      f'(DCGM_FI_PROF_GR_ENGINE_ACTIVE{{exported_pod="",{NS}}})',
                      "{{pod}} gpu {{gpu}} {{GPU_I_PROFILE}}")),
              unit="percentunit", threshold=Threshold(0.7, "examples/hpa-neuron-utilization.yaml, "
                                                           "hpa-gpu-utilization.yaml (70 %)")),
        Panel("KV-cache usage",
              "KV-cache usage per pod (1 = full; the engine preempts requests near 1): vLLM (either name), "
              "SGLang token usage, NIM.",
              (Target(f"max by (namespace, pod, model_name) (vllm:kv_cache_usage_perc{{{NS}}} "
                      f"or vllm:gpu_cache_usage_perc{{{NS}}})", "vLLM {{pod}} {{model_name}}"),
               Target(f"max by (namespace, pod, model_name) (sglang:token_usage{{{NS}}})", "SGLang {{pod}}"),
               Target(f"max by (namespace, pod, model_name) (gpu_cache_usage_perc{{{NS}}})", "NIM {{pod}}")),
              unit="percentunit", threshold=Threshold(0.8, "the vllm preset's kvCacheTarget default: llm-d's "
                                                                         "saturation thresholds, docs/presets.md")),
        Panel("Queue depth",
              "Requests waiting per pod: vLLM, TGI, Triton, SGLang, NIM.",
              (Target(f"sum by (namespace, pod) (vllm:num_requests_waiting{{{NS}}})", "vLLM {{pod}}"),
               Target(f"sum by (namespace, pod) (tgi_queue_size{{{NS}}})", "TGI {{pod}}"),
               Target(f"sum by (namespace, pod) (nv_inference_pending_request_count{{{NS}}})", "Triton {{pod}}"),
               Target(f"sum by (namespace, pod) (sglang:num_queue_reqs{{{NS}}})", "SGLang {{pod}}"),
               Target(f"sum by (namespace, pod) (num_requests_waiting{{{NS}}})", "NIM {{pod}}")),
              threshold=Threshold(25, "metrics-catalog.md (EKS guide: scale when the queue > 25)")),
        Panel("Time to first token p95 and end-to-end p95",
              "vLLM per model, over the rate window; TGI end-to-end per service.",
              (Target(_q(0.95, "vllm:time_to_first_token_seconds", "namespace, model_name", NS),
                      "TTFT p95 {{model_name}}"),
               Target(_q(0.95, "vllm:e2e_request_latency_seconds", "namespace, model_name", NS),
                      "e2e p95 {{model_name}}"),
               Target(_q(0.95, "tgi_request_duration", "namespace, service", NS), "TGI e2e p95 {{service}}")),
              unit="s", threshold=Threshold(5, "metrics-catalog.md (EKS guide: scale when p95 e2e > 5 s)")),
        Panel("NeuronCore utilization",
              "neuroncore_utilization_ratio, average per instance (neuron-monitor).",
              (Target("avg by (instance_id, instance_type) (neuroncore_utilization_ratio)",
                      "{{instance_type}} {{instance_id}}"),),
              unit="percentunit", threshold=Threshold(0.7, "examples/hpa-neuron-utilization.yaml (700m)")),
        Panel("Triton queue time per request",
              "Average scheduler-queue time per request, microseconds, per pod.",
              (Target(f"sum by (namespace, pod) (rate(nv_inference_queue_duration_us{{{NS}}}[{RATE}]))\n"
                      f"/ clamp_min(sum by (namespace, pod) "
                      f"(rate(nv_inference_request_success{{{NS}}}[{RATE}])), 1e-9)", "{{pod}}"),),
              unit="µs", threshold=Threshold(50, "examples/hpa-triton-queue-time.yaml (NVIDIA's chart, 50 µs)")),
        Panel("Gateway queue and WVA's desired replicas (llm-d)",
              "Requests held by the llm-d gateway's flow control per pool and model (served while the model "
              "has zero pods: scale from zero), and the replicas the Workload Variant Autoscaler wants.",
              (Target(f"sum by (inference_pool, target_model_name) (llm_d_epp_flow_control_queue_size{{{NS}}})\n"
                      f"or sum by (inference_pool, target_model_name) "
                      f"(inference_extension_flow_control_queue_size{{{NS}}})",
                      "queued {{inference_pool}} {{target_model_name}}"),
               Target('max by (exported_namespace, variant_name) '
                      '(wva_desired_replicas{exported_namespace=~"$namespace"})',
                      "WVA desired {{variant_name}}"))),
    )),
)


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1}


VARIABLES: tuple[dict[str, Any], ...] = (
    {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
     "current": {}, "hide": 0},
    _variable("job", "adapter job", "label_values(accel_adapter_series_discovered, job)"),
    _variable("namespace", "namespace", "label_values(kube_horizontalpodautoscaler_info, namespace)"),
    _variable("hpa", "HPA", 'label_values(kube_horizontalpodautoscaler_info{namespace=~"$namespace"}, '
                            "horizontalpodautoscaler)"),
    _variable("metric", "metric", "label_values(kube_horizontalpodautoscaler_spec_target_metric"
                                  f"{{{HPA}}}, metric_name)"),
)


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "bars" if p.bars else "line", "fillOpacity": 10 if not p.bars else 60,
                              "lineWidth": 1, "showPoints": "never", "spanNulls": False}
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if p.threshold is not None:
        custom["thresholdsStyle"] = {"mode": "dashed"}
        steps.append({"color": "red", "value": p.threshold.value})
    desc = p.description
    if p.threshold is not None:
        desc += f" Dashed line: typical threshold {p.threshold.value:g} ({p.threshold.source})."
    return {
        "id": pid, "type": p.kind, "title": p.title, "description": desc, "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": p.unit, "custom": custom,
                                     "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"datasource": DS, "expr": t.expr, "legendFormat": t.legend, "refId": chr(ord("A") + i),
                     "range": True} for i, t in enumerate(p.targets)],
    }


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in ROWS:
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, p in enumerate(row.panels):
            panels.append(_panel(p, pid, 12 * (i % 2), y + 8 * (i // 2)))
            pid += 1
        y += 8 * ((len(row.panels) + 1) // 2)
    return {
        "uid": UID, "title": TITLE, "tags": ["accel-metrics-adapter", "autoscaling", "gpu", "llm"],
        "description": "HPAs served by accel-metrics-adapter: values against targets, replicas, the adapter's "
                       "health (value age, Prometheus, cache, API) and the presets' key signals.",
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "timezone": "", "fiscalYearStartMonth": 0,
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": list(VARIABLES)},
        "panels": panels,
        "links": [],
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path.cwd()
    text = render()
    for rel in PATHS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
        print(root / rel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
