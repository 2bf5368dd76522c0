"""The real adapter registered against a (fake, real-HTTPS) Kubernetes API: front-proxy authentication,
SubjectAccessReview authorization, and label selectors resolved from a watch cache."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki
from tests.integration.conftest import ROOT, RULES, SERIES
from tests.support.procs import free_port, python_module, running, wait_http
from tests.support.prometheus import prometheus

HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
PODS_URL = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/%2A/gpu_utilization?labelSelector=app%3Dllm"


def sar_rule(spec: dict[str, Any]) -> tuple[bool, bool, str]:
    ra = spec.get("resourceAttributes") or {}
    if spec["user"] == HPA and ra.get("group") in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        return True, False, ""
    return False, False, ""


class Cluster:
    def __init__(self, fk: FakeKube, pki: Pki, url: str, log: Path, pid: int) -> None:
        self.fk, self.pki, self.url, self.log, self.pid = fk, pki, url, log, pid

    def threads(self) -> int:
        """The adapter process's thread count."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads in /proc/<pid>/status")

    def client(self, cert: str | None = "front-proxy-client") -> httpx.Client:
        return self.pki.client(self.url, cert)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    pki = Pki(tmp / "pki")
    series_file = tmp / "series.json"
    series_file.write_text(json.dumps(SERIES))
    port = free_port()
    with FakeKube(tmp / "kube") as fk, \
            running(python_module("tests.support.exporter", "--port", str(port), "--file", str(series_file)),
                    tmp / "exporter.log", env={"PYTHONPATH": str(ROOT)}), \
            prometheus(tmp, [f"127.0.0.1:{port}"]) as prom:
        fk.state.sar_rule = sar_rule
        fk.set_auth_configmap(pki.auth_configmap_data())
        fk.add_pod("ns1", "p1", {"app": "llm"})
        fk.add_pod("ns1", "p2", {"app": "other"})
        fk.add_pod("ns1", "p3.dotted", {"app": "llm"})
        fk.add_pod("ns1", "p4-no-metrics", {"app": "llm"})
        prom.wait_for("gpu_util", min_results=5)
        aport = free_port()
        log = tmp / "adapter.log"
        cmd = python_module("adapter", "serve", "--config", str(RULES), "--prometheus-url", prom.url,
                            "--secure-port", str(aport), "--bind-address", "127.0.0.1",
                            "--tls-cert-file", str(pki.cert("serving")), "--tls-private-key-file",
                            str(pki.key("serving")), "--lister-kubeconfig", str(fk.kubeconfig),
                            "--metrics-relist-interval", "1s")
        with running(cmd, log) as proc:
            url = f"https://127.0.0.1:{aport}"
            try:
                wait_http(f"{url}/readyz", timeout=60, proc=proc)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n{log.read_text()[-3000:]}") from e
            yield Cluster(fk, pki, url, log, proc.pid)


def hpa_headers() -> dict[str, str]:
    return {"X-Remote-User": HPA, "Accept": "application/vnd.kubernetes.protobuf, */*"}


def get_until_200(c: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        r = c.get(path, headers=[(k, v) for k, v in headers.items()] + [
            ("X-Remote-Group", "system:serviceaccounts"), ("X-Remote-Group", "system:serviceaccounts:kube-system")])
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def test_hpa_through_the_front_proxy_is_served(cluster: Cluster) -> None:
    with cluster.client() as c:
        r = get_until_200(c, PODS_URL, hpa_headers())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    names = [i["describedObject"]["name"] for i in r.json()["items"]]
    assert names == ["p1", "p3.dotted"]  # p2 does not match, p4 has no value (left out)
    sar = [s for s in cluster.fk.state.sars() if s["user"] == HPA][-1]
    assert sar["resourceAttributes"] == {"namespace": "ns1", "verb": "get", "group": "custom.metrics.k8s.io",
                                         "version": "v1beta2", "resource": "pods", "subresource": "gpu_utilization",
                                         "name": "*"}
    assert sar["groups"] == ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]


def test_selector_resolution_does_not_list_per_request(cluster: Cluster) -> None:
    with cluster.client() as c:
        assert get_until_200(c, PODS_URL, hpa_headers()).status_code == 200
        lists_before = len(cluster.fk.list_calls("/api/v1/pods"))
        for _ in range(100):
            assert get_until_200(c, PODS_URL, hpa_headers()).status_code == 200
        lists_after = len(cluster.fk.list_calls("/api/v1/pods"))
    assert lists_before >= 1 and lists_after == lists_before


def test_deleted_and_relabelled_pods_follow_the_watch(cluster: Cluster) -> None:
    cluster.fk.relabel_pod("ns1", "p2", {"app": "llm"})
    cluster.fk.delete_pod("ns1", "p3.dotted")
    deadline = time.monotonic() + 15
    names: list[str] = []
    with cluster.client() as c:
        while time.monotonic() < deadline:
            r = get_until_200(c, PODS_URL, hpa_headers())
            names = [i["describedObject"]["name"] for i in r.json()["items"]]
            if names == ["p1", "p2"]:
                break
            time.sleep(0.3)
    assert names == ["p1", "p2"]


@pytest.mark.parametrize(("cert", "code"), [
    (None, 403),                    # no client certificate: the headers are ignored, caller is anonymous
    ("forbidden-cn", 401),          # signed by the front-proxy CA, but a CN not in the allowed list
])
def test_spoofed_remote_user_is_refused(cluster: Cluster, cert: str | None, code: int) -> None:
    with cluster.client(cert) as c:
        r = c.get(PODS_URL, headers=hpa_headers())
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status" and body["code"] == code
    if code == 403:
        assert 'User "system:anonymous" cannot get resource "pods/gpu_utilization"' in body["message"]


def test_authenticated_but_unauthorized_user_gets_403(cluster: Cluster) -> None:
    with cluster.client() as c:
        r = c.get(PODS_URL, headers={"X-Remote-User": "mallory", "X-Remote-Group": "devs"})
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods.custom.metrics.k8s.io "*" is forbidden: User "mallory" cannot get resource "pods/gpu_utilization" '
        'in API group "custom.metrics.k8s.io" in the namespace "ns1"')


def test_aggregator_availability_check_needs_no_sar(cluster: Cluster) -> None:
    before = len(cluster.fk.state.sars())
    with cluster.client() as c:
        r = c.get("/apis/custom.metrics.k8s.io/v1beta2",
                  headers={"X-Remote-User": "system:kube-aggregator", "X-Remote-Group": "system:masters"})
    assert r.status_code == 200 and r.json()["kind"] == "APIResourceList"
    assert len(cluster.fk.state.sars()) == before


def test_health_without_client_certificate(cluster: Cluster) -> None:
    with cluster.client(None) as c:
        for path in ("/healthz", "/livez", "/readyz"):
            assert c.get(path).status_code == 200


def test_unknown_resource_is_404_from_discovery(cluster: Cluster) -> None:
    with cluster.client() as c:
        assert get_until_200(c, PODS_URL, hpa_headers()).status_code == 200  # discovery loaded
        r = c.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/widgets/w/gpu_utilization",
                  headers=hpa_headers())
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"


def test_named_object_must_exist_in_the_cluster(cluster: Cluster) -> None:
    # ns2/p9 has series in Prometheus but no Pod in the cluster
    with cluster.client() as c:
        r = get_until_200(c, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/p1/gpu_utilization",
                          hpa_headers())
        assert r.status_code == 200
        r = c.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns2/pods/p9/gpu_utilization",
                  headers=[("X-Remote-User", HPA)])
    assert r.status_code == 404
    assert r.json()["message"] == 'pods "p9" not found'
    assert r.json()["details"] == {"name": "p9", "kind": "pods"}


def get_named_until_object_checked(c: httpx.Client, path: str) -> httpx.Response:
    """GET a named object's metric, again while the metric itself is unknown (a relist every second on a
    loaded machine may briefly miss a scrape): that answer says nothing about the object."""
    deadline = time.monotonic() + 20
    while True:
        r = c.get(path, headers=hpa_headers())
        if not r.json().get("message", "").startswith("the server could not find the metric") \
                or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def test_thousand_namespaces_cost_no_thread_or_watch(cluster: Cluster) -> None:
    """Issue 10: each namespace asked about (even one that does not exist) used to start a thread with
    its own LIST and WATCH. Pods of every namespace come from one cluster-wide watch."""
    fk = cluster.fk
    with cluster.client() as c:
        assert get_until_200(c, PODS_URL, hpa_headers()).status_code == 200
        threads_before = cluster.threads()
        for i in range(1000):
            base = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/none-{i}/pods"
            r = get_named_until_object_checked(c, f"{base}/p1/gpu_utilization")
            assert r.status_code == 404 and r.json()["message"] == 'pods "p1" not found', r.text
            r = c.get(f"{base}/%2A/gpu_utilization?labelSelector=app%3Dllm", headers=hpa_headers())
            assert r.status_code == 404, r.text  # no pod matches there
        assert get_until_200(c, PODS_URL, hpa_headers()).status_code == 200
    assert cluster.threads() - threads_before <= 4  # thread pools may grow a little; never per namespace
    assert fk.state.open_watches <= 2  # pods and kube-system/extension-apiserver-authentication
    assert not [r for r in fk.state.requests if "/namespaces/none-" in r.path]
