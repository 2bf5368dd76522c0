"""Several backends in one config, against two real engines at once: Debian's ``prometheus`` and
Debian's ``victoria-metrics``, the same exporter fleet scraped into both.

Each engine also scrapes a "site" exporter of its own that serves ``site_load`` with a different
value (1 into Prometheus, 2 into VictoriaMetrics): two rules that differ only in their backend send
the same query text, and each must get its own engine's value (no cache entry shared across
backends).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapter.cli import main
from tests.integration.conftest import SERIES
from tests.support.adapter import adapter
from tests.support.procs import free_port, python_module, running
from tests.support.prometheus import Prometheus, prometheus
from tests.support.stack import ROOT, get_ok
from tests.support.victoria import victoria

CM2 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods"
EM = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns1"
EXPLAIN = "/apis/explain.accel-metrics.io/v1alpha1"


def rule(series: str, as_: str, backend: str | None) -> str:
    return f"""- seriesQuery: '{series}{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^{series}$", as: "{as_}"}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
""" + (f"  backend: {backend}\n" if backend else "")


def rules_file(tmp: Path, vm_url: str) -> Path:
    cfg = tmp / "rules.yaml"
    cfg.write_text(f"""backends:
- name: vm
  url: {vm_url}
  timeout: 5s
rules:
{rule("gpu_util", "gpu_util_prom", None)}{rule("gpu_util", "gpu_util_vm", "vm")}\
{rule("site_load", "site_load_prom", None)}{rule("site_load", "site_load_vm", "vm")}\
externalRules:
- seriesQuery: 'queue_depth{{namespace!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}}}}}
  name: {{matches: "^queue_depth$", as: "queue_depth_vm"}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (model)'
  backend: vm
""")
    return cfg


@contextlib.contextmanager
def exporter(tmp: Path, name: str, series: list[dict[str, object]]) -> Iterator[str]:
    file = tmp / f"{name}.json"
    file.write_text(json.dumps(series))
    port = free_port()
    with running(python_module("tests.support.exporter", "--port", str(port), "--file", str(file)),
                 tmp / f"{name}.log", env={"PYTHONPATH": str(ROOT)}):
        yield f"127.0.0.1:{port}"


def site(value: float) -> list[dict[str, object]]:
    return [{"name": "site_load", "labels": {"namespace": "ns1", "pod": "p1"}, "value": value}]


@dataclass
class Engines:
    tmp: Path
    fleet: str  # host:port of the exporter both engines scrape
    prom: Prometheus


@contextlib.contextmanager
def vm_engine(engines: Engines) -> Iterator[Prometheus]:
    """A VictoriaMetrics scraping the shared fleet and its own site exporter (site_load 2), ready."""
    tmp = engines.tmp / f"vm-{free_port()}"
    tmp.mkdir()
    with exporter(tmp, "site-vm", site(2)) as own, victoria(tmp, [engines.fleet, own]) as vm:
        vm.wait_for("gpu_util", min_results=5)
        vm.wait_for("site_load")
        vm.wait_for("queue_depth", min_results=3)
        yield vm


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    tmp = tmp_path_factory.mktemp("backends")
    with exporter(tmp, "fleet", SERIES) as fleet, exporter(tmp, "site-prom", site(1)) as own, \
            prometheus(tmp, [fleet, own]) as prom:
        prom.wait_for("gpu_util", min_results=5)
        prom.wait_for("site_load")
        yield Engines(tmp, fleet, prom)


def value(doc: dict[str, object]) -> str:
    items = doc["items"]
    assert isinstance(items, list) and len(items) == 1, doc
    return str(items[0]["value"])


def test_rules_on_each_backend_are_served_side_by_side_and_never_share_a_cache_entry(
        engines: Engines, tmp_path: Path) -> None:
    with vm_engine(engines) as vm, \
            adapter(tmp_path, engines.prom.url, "--config", str(rules_file(tmp_path, vm.url)),
                    "--cache-ttl", "60s") as ad:
        # the same fleet in both engines: the same value (80 + 90 over p1's two GPUs)
        assert value(get_ok(ad, f"{CM2}/p1/gpu_util_prom")) == "170"
        assert value(get_ok(ad, f"{CM2}/p1/gpu_util_vm")) == "170"
        # the same query text on each backend: each engine's own value, in either order, cached or not
        for _ in range(2):
            assert value(get_ok(ad, f"{CM2}/p1/site_load_vm")) == "2"
            assert value(get_ok(ad, f"{CM2}/p1/site_load_prom")) == "1"
        ext = get_ok(ad, f"{EM}/queue_depth_vm")
        assert sorted((i["metricLabels"]["model"], i["value"]) for i in ext["items"]) == [  # type: ignore[index,union-attr]
            ("llama", "12"), ("mistral", "3")]
        # explain names the backend each query went to; its raw samples come from that backend
        for metric, backend, raw in (("site_load_vm", "vm", 2), ("site_load_prom", "default", 1)):
            status, doc, _ = ad.get(f"{EXPLAIN}/namespaces/ns1/pods/p1/{metric}")
            assert status == 200, doc
            assert [q["backend"] for q in doc["queries"]] == [backend], doc  # type: ignore[union-attr,index]
            (obj,) = doc["objects"]  # type: ignore[misc]
            assert [s["value"] for s in obj["samples"]] == [raw], obj
        assert ad.metric("accel_adapter_backend_up", backend="vm") == 1
        assert ad.metric("accel_adapter_backend_up", backend="default") == 1
        for backend in ("vm", "default"):
            for endpoint in ("query", "series"):
                sent = ad.metric("accel_adapter_backend_queries_total", backend=backend, endpoint=endpoint,
                                 outcome="success")
                assert sent is not None and sent > 0, (backend, endpoint)


def test_one_backend_down_makes_only_its_metrics_answer_503(engines: Engines, tmp_path: Path) -> None:
    vm_cm = vm_engine(engines)
    vm = vm_cm.__enter__()
    try:
        with adapter(tmp_path, engines.prom.url, "--config", str(rules_file(tmp_path, vm.url)),
                     "--cache-ttl", "0") as ad:
            assert value(get_ok(ad, f"{CM2}/p1/site_load_vm")) == "2"
            vm_cm.__exit__(None, None, None)  # stop the real VictoriaMetrics process
            status, doc, _ = ad.get(f"{CM2}/p1/site_load_vm")
            assert status == 503, doc
            assert doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable"
            assert "'vm'" in str(doc["message"]), doc
            status, doc, _ = ad.get(f"{EM}/queue_depth_vm")
            assert status == 503 and "'vm'" in str(doc["message"]), doc
            # the other backend's metrics, and readiness, are untouched
            assert value(get_ok(ad, f"{CM2}/p1/site_load_prom")) == "1"
            assert value(get_ok(ad, f"{CM2}/p1/gpu_util_prom")) == "170"
            assert ad.get("/readyz")[0] == 200
            ad.wait_metric("accel_adapter_backend_up", lambda v: v == 0, backend="vm")
            assert ad.metric("accel_adapter_backend_up", backend="default") == 1
            assert ad.metric("accel_adapter_prometheus_up") == 1
    finally:
        vm_cm.__exit__(None, None, None)


def test_a_backend_down_from_the_start_answers_503_for_its_metrics_only(engines: Engines, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with adapter(tmp_path, engines.prom.url, "--config", str(rules_file(tmp_path, dead)), "--cache-ttl", "0",
                 ready=False) as ad:
        assert value(get_ok(ad, f"{CM2}/p1/site_load_prom")) == "1"
        status, doc, _ = ad.get(f"{CM2}/p1/site_load_vm")
        assert status == 503 and doc["reason"] == "ServiceUnavailable", doc
        assert "'vm'" in str(doc["message"]), doc
        assert ad.get("/readyz")[0] == 200
        # discovery lists the default backend's metrics while vm's are unknown
        names = {r["name"] for r in get_ok(ad, "/apis/custom.metrics.k8s.io/v1beta2")["resources"]}  # type: ignore[index,union-attr]
        assert "pods/site_load_prom" in names and "pods/site_load_vm" not in names


def test_check_config_probes_each_rule_on_its_own_backend(engines: Engines, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = rules_file(tmp_path, dead)
    assert main(["check-config", "--config", str(cfg), "--prometheus-url", engines.prom.url]) == 1
    out = capsys.readouterr().out
    assert f"series discovery against {engines.prom.url}, backend vm {dead}" in out
    lines = {line.split(": ")[1]: line for line in out.splitlines() if "ules[" in line}  # "  <file>: rules[i]: ..."
    assert "site_load_prom" in lines["rules[2]"] and "error" not in lines["rules[2]"]
    assert "error: Prometheus backend 'vm' is unreachable" in lines["rules[3]"]
    assert "error: Prometheus backend 'vm'" in lines["externalRules[0]"]
