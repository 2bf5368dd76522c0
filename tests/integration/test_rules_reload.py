"""Rules reload without a restart, on the real adapter process, a real Prometheus and an exporter.

The rules file lives in a directory laid out as the kubelet lays out a mounted ConfigMap (``rules.yaml``
-> ``..data/rules.yaml``, ``..data`` -> ``..<timestamp>``), and is changed as the kubelet changes it:
a new timestamped directory, then an atomic rename of the ``..data`` symlink.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import RULES, SERIES
from tests.support.adapter import Adapter, adapter
from tests.support.prometheus import Prometheus
from tests.support.stack import exporter_and_prometheus, get_ok

CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
P1 = f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization"  # served by every version of the file
PEAK = f"{CM2}/namespaces/ns1/pods/p1/gpu_peak"  # added by a reload (p1: gpu 0 at 80, gpu 1 at 90)
QUEUE = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns1/queue_depth"  # an external metric
SUCCESS = "accel_adapter_config_reloads_total"


def peak_rule(agg: str) -> str:
    return f"""- seriesQuery: 'gpu_util{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^gpu_util$", as: "gpu_peak"}}
  metricsQuery: '{agg}(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
"""


def rules_with(extra: str) -> str:
    head, _, tail = RULES.read_text().partition("externalRules:")
    return head + extra + "externalRules:" + tail


INVALID = rules_with(peak_rule("max") + "  nmae: {as: x}\n")  # rules[4].nmae: unknown field


class ConfigMapDir:
    """A directory as the kubelet writes a ConfigMap volume, updated by an atomic ``..data`` swap."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        self._n = itertools.count()
        root.mkdir()
        self._write(text)
        (root / "rules.yaml").symlink_to("..data/rules.yaml")

    @property
    def file(self) -> Path:
        return self.root / "rules.yaml"

    def _write(self, text: str) -> None:
        version = self.root / f"..2026_12_02_00_00_{next(self._n):02d}.000000001"
        version.mkdir()
        (version / "rules.yaml").write_text(text)
        link = self.root / "..data_tmp"
        link.symlink_to(version.name)
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        os.replace(link, self.root / "..data")  # the atomic step
        if old is not None:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()

    def update(self, text: str) -> None:
        self._write(text)


class Hammer:
    """Threads GETting paths in turn over kept-alive connections until stopped; every answer's status kept."""

    def __init__(self, url: str, paths: list[str], threads: int = 2, limit: int = 20_000) -> None:
        self.host, self.port = url.removeprefix("https://").split(":")
        self.paths = paths
        self.limit = limit
        self.statuses: list[int | str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(self.host, int(self.port), context=ctx, timeout=60)
        for path in itertools.cycle(self.paths):
            if self._stop.is_set() or len(self.statuses) >= self.limit:
                break
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                self.statuses.append(resp.status if resp.status == 200 else f"{resp.status} {path}")
            except (OSError, http.client.HTTPException) as e:
                self.statuses.append(f"{type(e).__name__}: {e}")
                conn.close()
        conn.close()

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        """Wait (bounded) until ``count`` more answers have arrived."""
        target = len(self.statuses) + count
        deadline = time.monotonic() + timeout
        while len(self.statuses) < target and time.monotonic() < deadline and any(t.is_alive() for t in self._threads):
            time.sleep(0.05)
        assert len(self.statuses) >= target, f"{len(self.statuses)} answers, wanted {target}"

    @contextlib.contextmanager
    def running(self) -> Iterator[Hammer]:
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(timeout=90)


def value(ad: Adapter, path: str) -> str:
    items = get_ok(ad, path, timeout=30)["items"]
    assert isinstance(items, list) and len(items) == 1, items
    return str(items[0]["value"])


def served_names(ad: Adapter) -> set[str]:
    doc = get_ok(ad, CM2)
    resources = doc["resources"]
    assert isinstance(resources, list)
    return {str(r["name"]) for r in resources}


def wait_reloads(ad: Adapter, result: str, count: float) -> None:
    ad.wait_metric(SUCCESS, lambda v: v >= count, result=result)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("reload")
    with exporter_and_prometheus(tmp, SERIES, min_results=5) as (_, p):
        yield p


def test_rules_swapped_under_load_no_request_fails(tmp_path: Path, prom: Prometheus) -> None:
    cm = ConfigMapDir(tmp_path / "config", RULES.read_text())
    with adapter(tmp_path, prom.url, "--config", str(cm.file), "--config-reload-interval", "0.2s",
                 "--cache-ttl", "0") as ad:
        assert ad.metric("accel_adapter_config_last_reload_successful") == 1  # the initial load
        stamp = ad.metric("accel_adapter_config_last_reload_success_timestamp_seconds")
        assert stamp is not None and stamp > 0
        assert value(ad, P1) == "85" and get_ok(ad, QUEUE)["items"]
        hammer = Hammer(ad.url, [P1, CM2, QUEUE])
        with hammer.running():
            hammer.wait_for_more(20)
            versions = [(peak_rule("max"), "90"), (peak_rule("min"), "80"), ("", None), (peak_rule("max"), "90")]
            for n, (extra, expected) in enumerate(versions, start=1):
                cm.update(rules_with(extra))
                wait_reloads(ad, "success", n)
                if expected is None:
                    assert "pods/gpu_peak" not in served_names(ad)
                else:
                    assert "pods/gpu_peak" in served_names(ad)
                    assert value(ad, PEAK) == expected
                hammer.wait_for_more(20)  # answers from the new rules too
        failed = [s for s in hammer.statuses if s != 200]
        assert not failed, f"{len(failed)} of {len(hammer.statuses)} failed: {failed[:5]}"
        assert ad.metric(SUCCESS, result="failure") == 0
        assert ad.metric("accel_adapter_config_last_reload_successful") == 1
        assert ad.metric("accel_adapter_series_discovery_ok", source=str(cm.file), rule="rules[4]") == 1
        # unchanged content (a new ..data target with the same bytes) is not a reload
        cm.update(rules_with(peak_rule("max")))
        wait_log(ad, "rules reload: unchanged")
        assert ad.metric(SUCCESS, result="success") == len(versions)


def wait_log(ad: Adapter, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in ad.log_text():
        assert time.monotonic() < deadline, f"{text!r} not logged in {timeout}s:\n{ad.log_text()[-3000:]}"
        time.sleep(0.1)


def test_invalid_file_keeps_the_old_rules_serving(tmp_path: Path, prom: Prometheus) -> None:
    cm = ConfigMapDir(tmp_path / "config", rules_with(peak_rule("max")))
    with adapter(tmp_path, prom.url, "--config", str(cm.file), "--config-reload-interval", "0.2s",
                 "--cache-ttl", "0") as ad:
        assert value(ad, PEAK) == "90"
        cm.update(INVALID)
        wait_reloads(ad, "failure", 1)
        assert ad.metric("accel_adapter_config_last_reload_successful") == 0
        assert value(ad, PEAK) == "90" and value(ad, P1) == "85"  # the previous rules still answer
        errors = [line for line in ad.log_text().splitlines() if "rules reload failed" in line]
        assert len(errors) == 1, errors  # once, not at every poll
        assert f"{cm.file}: rules[4].nmae: unknown field" in errors[0]
        cm.update(rules_with(peak_rule("min")))
        wait_reloads(ad, "success", 1)
        assert ad.metric("accel_adapter_config_last_reload_successful") == 1
        assert value(ad, PEAK) == "80"


def test_sighup_reloads(tmp_path: Path, prom: Prometheus) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(RULES.read_text())
    with adapter(tmp_path, prom.url, "--config", str(cfg), "--config-reload-interval", "0",
                 "--cache-ttl", "0") as ad:
        assert "pods/gpu_peak" not in served_names(ad)
        cfg.write_text(rules_with(peak_rule("max")))
        ad.proc.send_signal(signal.SIGHUP)
        wait_reloads(ad, "success", 1)
        assert value(ad, PEAK) == "90"
        assert "SIGHUP" in ad.log_text()
