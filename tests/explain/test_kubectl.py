"""``kubectl accel explain hpa/NAME`` end to end: the plugin with a user's kubeconfig against the fake
Kubernetes API (HPA objects as a 1.36 apiserver returns them, the scale subresource, pods), which
proxies explain.accel-metrics.io to the real adapter as kube-aggregator does (front-proxy certificate,
X-Remote-User); the adapter authorizes with a SubjectAccessReview and reads a real Prometheus."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.explain import kubectl
from tests.explain.rules import RULES
from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki
from tests.support.procs import free_port, python_module, running, wait_http
from tests.support.stack import ROOT, exporter_and_prometheus

NS = "llm"
SERIES: list[dict[str, object]] = [
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": NS, "pod": "vllm-0"}, "value": 12},
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": NS, "pod": "vllm-1"}, "value": 11},
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": NS, "pod": "vllm-2"}, "value": 9, "age": 200},
    {"name": "queue_depth", "labels": {"namespace": NS, "model": "llama"}, "value": 30},
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": NS, "pod": "embed-0"}, "value": 40, "age": 200},
    {"name": "vllm_num_requests_waiting", "labels": {"namespace": NS, "pod": "embed-1"}, "value": 35, "age": 200},
]
T0 = "2026-12-02T05:00:00Z"


def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "lastTransitionTime": T0, "reason": reason, "message": message}


def hpa_object(name: str, metric: str, current_metrics: list[dict[str, Any]], conditions: list[dict[str, str]],
               desired: int, external: bool = False, target: str = "vllm", current: int = 4) -> dict[str, Any]:
    """An autoscaling/v2 HPA as a 1.36 apiserver returns it (defaults applied, status written by the controller)."""
    metrics: list[dict[str, Any]] = [{"type": "Pods", "pods": {
        "metric": {"name": metric}, "target": {"type": "AverageValue", "averageValue": "5"}}}]
    if external:
        metrics.append({"type": "External", "external": {
            "metric": {"name": "queue_depth", "selector": {"matchLabels": {"model": "llama"}}},
            "target": {"type": "AverageValue", "averageValue": "10"}}})
    return {
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": T0, "generation": 1},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": target, "apiVersion": "apps/v1"},
                 "minReplicas": 1, "maxReplicas": 10, "metrics": metrics},
        "status": {"lastScaleTime": T0, "currentReplicas": current, "desiredReplicas": desired,
                   "currentMetrics": current_metrics, "conditions": conditions},
    }


def sar_rule(spec: dict[str, Any]) -> tuple[bool, bool, str]:
    ra = spec.get("resourceAttributes") or {}
    if spec["user"] == "dev" and ra.get("group") == "explain.accel-metrics.io" and ra.get("verb") == "get":
        return True, False, "RBAC: allowed by ClusterRoleBinding dev-explain"
    if spec["user"] == "viewer" and ra.get("group") in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        return True, False, "RBAC: allowed by ClusterRoleBinding viewer-metrics"
    return False, False, ""


def wait_for_discovery(pki: Pki, url: str) -> None:
    """/readyz answers before the first series discovery (it means "can serve the API"): wait for it."""
    admin = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
    deadline = time.monotonic() + 30
    with pki.client(url, "front-proxy-client") as c:
        while time.monotonic() < deadline:
            r = c.get("/apis/custom.metrics.k8s.io/v1beta2", headers=admin)
            if r.status_code == 200 and any(x["name"] == "pods/vllm_requests_waiting" for x in r.json()["resources"]):
                return
            time.sleep(0.2)
    raise AssertionError("the adapter did not discover vllm_requests_waiting within 30s")


class Env:
    def __init__(self, fk: FakeKube, dev: Path, intruder: Path, viewer: Path) -> None:
        self.fk, self.dev, self.intruder, self.viewer = fk, dev, intruder, viewer

    def plugin(self, capsys: pytest.CaptureFixture[str], *args: str, kubeconfig: Path | None = None
               ) -> tuple[int, str]:
        rc = kubectl.main(["explain", *args, "-n", NS, "--kubeconfig", str(kubeconfig or self.dev)])
        return rc, capsys.readouterr().out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("kubectl")
    pki = Pki(tmp / "pki")
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    with FakeKube(tmp / "kube") as fk, \
            exporter_and_prometheus(tmp, SERIES, wait_for="vllm_num_requests_waiting", min_results=3) as (_, prom):
        prom.wait_for("queue_depth")
        fk.state.sar_rule = sar_rule
        fk.set_auth_configmap(pki.auth_configmap_data())
        for token, user in (("dev-token", "dev"), ("intruder-token", "intruder"), ("viewer-token", "viewer")):
            fk.state.tokens.add(token)
            fk.state.users[token] = {"username": user, "groups": ["devs"]}
        dev = fk.write_kubeconfig(tmp / "dev.yaml", "dev-token")
        intruder = fk.write_kubeconfig(tmp / "intruder.yaml", "intruder-token")
        viewer = fk.write_kubeconfig(tmp / "viewer.yaml", "viewer-token")
        for app, n in (("vllm", 4), ("embed", 2)):
            fk.store.put("apps", "deployments", {
                "metadata": {"name": app, "namespace": NS},
                "spec": {"replicas": n, "selector": {"matchLabels": {"app": app}}},
                "status": {"replicas": n, "readyReplicas": n}})
            for i in range(n):
                fk.store.put("", "pods", {
                    "metadata": {"name": f"{app}-{i}", "namespace": NS, "labels": {"app": app}},
                    "spec": {"containers": [{"name": app, "image": app}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        fk.add_pod(NS, "web-0", {"app": "web"})
        fk.store.put("autoscaling", "horizontalpodautoscalers", hpa_object(
            "vllm", "vllm_requests_waiting",
            [{"type": "Pods", "pods": {"metric": {"name": "vllm_requests_waiting"},
                                       "current": {"averageValue": "11500m"}}},
             {"type": "External", "external": {"metric": {"name": "queue_depth",
                                                          "selector": {"matchLabels": {"model": "llama"}}},
                                               "current": {"averageValue": "7500m"}}}],
            [condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
             condition("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate "
                       "a replica count from pods metric vllm_requests_waiting"),
             condition("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the "
                       "acceptable range")], desired=4, external=True))
        fk.store.put("autoscaling", "horizontalpodautoscalers", hpa_object(
            "typo", "vllm_request_waiting", [{"type": ""}],
            [condition("AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the "
                       "target's current scale"),
             condition("ScalingActive", "False", "FailedGetPodsMetric", "the HPA was unable to compute the "
                       "replica count: unable to get metric vllm_request_waiting: unable to fetch metrics from "
                       "custom metrics API: the server could not find the metric vllm_request_waiting for pods")],
            desired=4))
        fk.store.put("autoscaling", "horizontalpodautoscalers", hpa_object(
            "embed", "vllm_requests_waiting", [{"type": ""}],
            [condition("AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the "
                       "target's current scale"),
             condition("ScalingActive", "False", "FailedGetPodsMetric", "the HPA was unable to compute the "
                       "replica count: unable to get metric vllm_requests_waiting: unable to fetch metrics from "
                       "custom metrics API: the server could not find the metric vllm_requests_waiting for pods")],
            desired=2, target="embed", current=2))
        port = free_port()
        log = tmp / "adapter.log"
        cmd = python_module("adapter", "serve", "--config", str(rules), "--prometheus-url", prom.url,
                            "--secure-port", str(port), "--bind-address", "127.0.0.1",
                            "--tls-cert-file", str(pki.cert("serving")), "--tls-private-key-file",
                            str(pki.key("serving")), "--lister-kubeconfig", str(fk.kubeconfig),
                            "--metrics-relist-interval", "1s", "--metrics-max-age", "20m", "--max-value-age", "2m")
        with running(cmd, log, env={"PYTHONPATH": str(ROOT)}) as proc:
            url = f"https://127.0.0.1:{port}"
            try:
                wait_http(f"{url}/readyz", timeout=60, proc=proc)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n{log.read_text()[-3000:]}") from e
            wait_for_discovery(pki, url)
            ctx = ssl.create_default_context(cafile=str(pki.cert("serving-ca")))
            ctx.load_cert_chain(pki.cert("front-proxy-client"), pki.key("front-proxy-client"))
            for group in ("explain.accel-metrics.io", "custom.metrics.k8s.io", "external.metrics.k8s.io"):
                fk.state.aggregated[group] = (url, ctx)
            yield Env(fk, dev, intruder, viewer)


def test_verdict_first_then_each_metric(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = env.plugin(capsys, "hpa/vllm")
    assert rc == 0, out
    lines = out.splitlines()
    # (12 + 11) / 2 = 11.5 per pod with a value; 2 pods without one count 0 on a scale-up:
    # (12 + 11 + 0 + 0) / 4 = 5.75 -> ratio 1.15 -> ceil(1.15 x 4) = 5; queue_depth 30 / 10 = 3 replicas
    assert lines[0] == ("would scale 4 → 5: vllm_requests_waiting average 11.5 > target 5; 2 of 4 pods have no "
                        "value (1 no series, 1 no samples newer than 120s)")
    assert "GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/%2A/vllm_requests_waiting" \
           "?labelSelector=app%3Dvllm" in out
    assert "missing (no value): vllm-2, vllm-3 -> counted as 0" in out
    assert "its newest raw sample is older than the age limit" in out
    assert "sum(vllm_num_requests_waiting{" in out
    assert re.search(r"PromQL: .*, backend default, evaluated", out), out  # the backend each query went to
    assert "DIFFERENCE: the HPA's status.desiredReplicas is 4, this calculation gives 5" in out
    assert "ScalingActive=True ValidMetricFound" in out


def test_json_output_carries_the_same_data(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = env.plugin(capsys, "hpa", "vllm", "-o", "json")
    assert rc == 0
    doc = json.loads(out)
    pods, ext = doc["metrics"]
    assert pods["calculation"]["replicas"] == 5 and pods["calculation"]["usage"] == 11500
    assert pods["explanation"]["kind"] == "Explanation"
    assert pods["differences"] == []
    assert ext["apiPath"] == ("/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/queue_depth"
                              "?labelSelector=model%3Dllama")
    assert ext["calculation"]["replicas"] == 3 and ext["calculation"]["usage"] == 7500
    assert doc["decision"]["desiredReplicas"] == 5
    assert doc["hpa"]["scaleTarget"] == "Deployment/vllm" and doc["pods"]["counts"] == {"ready": 4}


def test_metric_not_served_cannot_scale(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = env.plugin(capsys, "hpa/typo")
    assert rc == 0
    first = out.splitlines()[0]
    assert first.startswith("cannot scale: unable to get metric vllm_request_waiting: the server could not find "
                            "the metric vllm_request_waiting for pods")
    assert "similar metrics: vllm_requests_waiting" in out.splitlines()[0]
    assert "HPA status: no current value (the controller could not compute this metric)" in out
    assert "ScalingActive=False FailedGetPodsMetric" in out


def test_every_pod_stale_cannot_scale(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = env.plugin(capsys, "hpa/embed")
    assert rc == 0
    assert out.splitlines()[0] == (
        "cannot scale: unable to get metric vllm_requests_waiting: the server could not find the metric "
        "vllm_requests_waiting for pods with selector app=embed (2 objects, none served: 2 stale)")
    assert "raw 40 @" in out and "raw 35 @" in out


def test_explanations_follow_the_users_rbac(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = env.plugin(capsys, "hpa/vllm", kubeconfig=env.intruder)
    assert rc == 0
    assert "explanation unavailable: forbidden:" in out
    assert out.splitlines()[0].startswith("cannot scale: no explanation: forbidden:")
    sars = [s for s in env.fk.state.sars() if s.get("user") == "intruder"]
    attrs = [s["resourceAttributes"] for s in sars]
    assert {"namespace": NS, "verb": "get", "group": "explain.accel-metrics.io", "version": "v1alpha1",
            "resource": "pods", "subresource": "vllm_requests_waiting", "name": "*"} in attrs
    assert {"namespace": NS, "verb": "get", "group": "explain.accel-metrics.io", "version": "v1alpha1",
            "resource": "externalmetrics", "name": "queue_depth"} in attrs


def test_without_explain_rights_the_values_come_from_the_metrics_api(env: Env,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A user who may read the metrics (as the HPA does) but not explanations still gets the replay."""
    rc, out = env.plugin(capsys, "hpa/vllm", kubeconfig=env.viewer)
    assert rc == 0
    assert out.splitlines()[0] == ("would scale 4 → 5: vllm_requests_waiting average 11.5 > target 5; 2 of 4 pods "
                                   "have no value (2 not served (no trace says why))")
    assert "values read from the metrics API (2 items); no trace: forbidden:" in out


def test_unknown_hpa_and_bad_target(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    rc = kubectl.main(["explain", "hpa/nope", "-n", NS, "--kubeconfig", str(env.dev)])
    assert rc == 1
    assert 'horizontalpodautoscalers "nope" not found' in capsys.readouterr().err
    assert kubectl.main(["explain", "deploy/vllm", "--kubeconfig", str(env.dev)]) == 2


def test_installed_as_a_kubectl_plugin() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-accel"] == "adapter.explain.kubectl:main"


def test_print_reports_for_the_readme(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    if not os.environ.get("PRINT_REPORTS"):
        return
    for name in ("vllm", "typo", "embed"):
        _, out = env.plugin(capsys, f"hpa/{name}")
        with capsys.disabled():
            print("\n=====", name, "\n" + out)
