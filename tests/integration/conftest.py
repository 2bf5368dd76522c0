"""Real parts: an exporter process, a real Prometheus scraping it, the real adapter over HTTPS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.adapter import Adapter, adapter
from tests.support.prometheus import Prometheus
from tests.support.stack import ROOT, exporter_and_prometheus

RULES = ROOT / "tests" / "data" / "rules.yaml"

SERIES: list[dict[str, object]] = [
    {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p1", "gpu": "0"}, "value": 80},
    {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p1", "gpu": "1"}, "value": 90},
    {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p2", "gpu": "0"}, "value": 33.3},
    {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p3.dotted", "gpu": "0"}, "value": 5},
    {"name": "gpu_util", "labels": {"namespace": "ns2", "pod": "p9", "gpu": "0"}, "value": 10},
    {"name": "kube_pod_labels", "labels": {"namespace": "ns1", "pod": "p1", "label_app": "llm",
                                           "label_app_kubernetes_io_name": "vllm"}, "value": 1},
    {"name": "kube_pod_labels", "labels": {"namespace": "ns1", "pod": "p2", "label_app": "other"}, "value": 1},
    {"name": "kube_pod_labels", "labels": {"namespace": "ns1", "pod": "p3.dotted", "label_app": "llm"}, "value": 1},
    {"name": "http_requests_total", "labels": {"namespace": "ns1", "pod": "p1", "service": "web"}, "value": 100},
    {"name": "node_temp_celsius", "labels": {"node": "node-1.example"}, "value": 61},
    {"name": "node_temp_celsius", "labels": {"node": "node-1Xexample"}, "value": 99},
    {"name": "nan_metric", "labels": {"namespace": "ns1", "pod": "p1"}, "value": "NaN"},
    {"name": "nan_metric", "labels": {"namespace": "ns1", "pod": "p2"}, "value": 4},
    {"name": "queue_depth", "labels": {"namespace": "ns1", "model": "llama"}, "value": 12},
    {"name": "queue_depth", "labels": {"namespace": "ns1", "model": "mistral"}, "value": 3},
    {"name": "queue_depth", "labels": {"namespace": "ns2", "model": "llama"}, "value": 100},
    {"name": "cluster_queue_depth", "labels": {"queue": "a"}, "value": 7},
]


class Stack:
    def __init__(self, tmp: Path, series_file: Path, prom: Prometheus, adapter: Adapter) -> None:
        self.tmp, self.series_file, self.prom, self.adapter = tmp, series_file, prom, adapter

    def set_series(self, series: list[dict[str, object]]) -> None:
        self.series_file.write_text(json.dumps(series))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    with exporter_and_prometheus(tmp, SERIES, min_results=5) as (series_file, prom):
        prom.wait_for("cluster_queue_depth")
        time.sleep(1.5)  # let the rate() window see two samples of http_requests_total
        with adapter(tmp, prom.url, "--config", str(RULES), "--cache-ttl", "0") as ad:
            yield Stack(tmp, series_file, prom, ad)
