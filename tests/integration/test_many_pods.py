"""5,000 pods matching one selector (prometheus-adapter breaks at a few hundred: its =~ regex of
names outgrows the URL): the adapter answers all of them with one namespace-wide query."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.fakekube import FakeKube
from tests.integration.conftest import RULES
from tests.support.adapter import adapter
from tests.support.proxy import counting_proxy
from tests.support.stack import exporter_and_prometheus, get_ok

N = 5000


def test_five_thousand_pods_one_selector(tmp_path: Path) -> None:
    series = [{"name": "gpu_util", "labels": {"namespace": "big", "pod": f"worker-{i:05d}", "gpu": "0"},
               "value": i % 100} for i in range(N)]
    with FakeKube(tmp_path / "kube") as fk, \
            exporter_and_prometheus(tmp_path, series, min_results=N) as (_, prom), \
            counting_proxy(prom.url) as proxy:
        for i in range(N):
            fk.add_pod("big", f"worker-{i:05d}", {"app": "workers"})
        fk.add_pod("big", "other", {"app": "other"})
        with adapter(tmp_path, proxy.url, "--config", str(RULES), "--cache-ttl", "0",
                     "--lister-kubeconfig", str(fk.kubeconfig)) as ad:
            doc = get_ok(ad, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/big/pods/%2A/gpu_utilization"
                             "?labelSelector=app%3Dworkers", timeout=60)
            items = doc["items"]
            assert isinstance(items, list) and len(items) == N
            assert items[1234]["describedObject"]["name"] == "worker-01234"
            assert items[1234]["value"] == "34"
            # no query carried thousands of names
            assert max(len(q) for q in proxy.queries) < 2000
            # the ~700 KB answer is gzipped for a client that accepts it (the aggregator forwards the
            # HPA's "Accept-Encoding: gzip"), as k8s.io/apiserver does above 128 KiB
            status, headers, raw = ad.raw_get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/big/pods/%2A/"
                                              "gpu_utilization?labelSelector=app%3Dworkers",
                                              {"Accept-Encoding": "gzip"})
            assert status == 200
            assert headers["Content-Encoding"] == "gzip" and headers["Vary"] == "Accept-Encoding"
            assert int(headers["Content-Length"]) == len(raw) < 100_000
            # the same objects and values (not the same timestamps: a scrape may land between the two
            # answers, and each answer carries its data's own time)
            def shape(its: list[dict[str, object]]) -> list[tuple[object, object]]:
                return [(i["describedObject"]["name"], i["value"]) for i in its]  # type: ignore[index]
            again = json.loads(gzip.decompress(raw))["items"]
            assert shape(again) == shape(items)
            assert all(isinstance(i["timestamp"], str) and i["timestamp"].endswith("Z") for i in again)
