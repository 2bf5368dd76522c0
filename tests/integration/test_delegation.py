"""Delegation end to end: a second real adapter process is the delegate (other rules over the same real
Prometheus, HTTPS with client-certificate authentication); the front adapter holds the APIService slot,
authorizes every caller by SubjectAccessReview (fake Kubernetes API over real HTTPS) and forwards the
metrics it does not serve. A recording HTTPS server plays a delegate where the request itself is checked."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki
from tests.integration.conftest import RULES, SERIES
from tests.support.adapter import Adapter, adapter
from tests.support.procs import free_port, stop
from tests.support.recorder import RESOURCE_LIST, Recorder, recorder
from tests.support.stack import exporter_and_prometheus

HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
CM1 = "/apis/custom.metrics.k8s.io/v1beta1"
CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"
# the delegate's rules: its own names, and a name of ours computed differently (min, not avg; 7, not 12)
DELEGATE_RULES = """rules:
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "delegate_gpu_min"}
  metricsQuery: 'min(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu_utilization"}
  metricsQuery: 'min(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  name: {matches: "^queue_depth$", as: "delegate_queue"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'cluster_queue_depth'
  resources: {namespaced: false}
  name: {matches: "^cluster_queue_depth$", as: "queue_depth"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"""


def sar_rule(spec: dict[str, Any]) -> tuple[bool, bool, str]:
    ra = spec.get("resourceAttributes") or {}
    if spec["user"] == HPA and ra.get("group") in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        return True, False, ""
    if spec["user"] == HPA and spec.get("nonResourceAttributes"):  # discovery documents, /metrics
        return True, False, ""
    return False, False, ""


def remote(user: str = HPA) -> list[tuple[str, str]]:
    return [("X-Remote-User", user), ("X-Remote-Group", "system:serviceaccounts")]


@dataclass
class Setup:
    pki: Pki
    front_url: str
    front_log: Path
    delegate: Adapter

    def front(self) -> httpx.Client:
        return self.pki.client(self.front_url, "front-proxy-client")

    def get(self, path: str, user: str = HPA) -> httpx.Response:
        with self.front() as c:
            return c.get(path, headers=remote(user))

    def direct(self, path: str) -> httpx.Response:
        """The delegate's own answer, asked as the front asks it (our client certificate)."""
        with self.pki.client(self.delegate.url, "alice") as c:
            return c.get(path)

    def delegate_requests(self) -> list[dict[str, Any]]:
        """The delegate's access log (--log-level debug --log-format json): path, query and user per request."""
        out = []
        for line in self.delegate.log_text().splitlines():
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if doc.get("msg", doc.get("message")) == "request":
                out.append(doc)
        return out


def delegate_args(pki: Pki, rules: Path) -> list[str]:
    return ["--config", str(rules), "--tls-cert-file", str(pki.cert("serving")), "--tls-private-key-file",
            str(pki.key("serving")), "--client-ca-file", str(pki.cert("client-ca")), "--cache-ttl", "10m",
            "--log-level", "debug", "--log-format", "json"]


def front_args(pki: Pki, delegate_url: str, *extra: str) -> list[str]:
    return ["--delegate-custom-metrics", delegate_url, "--delegate-external-metrics", delegate_url,
            "--delegate-ca-file", str(pki.cert("serving-ca")), "--delegate-client-cert-file", str(pki.cert("alice")),
            "--delegate-client-key-file", str(pki.key("alice")), "--delegate-discovery-interval", "1s", *extra]


def until(fn: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last {last!r})")


def listed(doc: dict[str, Any]) -> list[str]:
    assert doc.get("kind") == "APIResourceList", json.dumps(doc)
    return [r["name"] for r in doc["resources"]]


@pytest.fixture(scope="module")
def prom_and_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any, Pki]]:
    tmp = tmp_path_factory.mktemp("delegation")
    pki = Pki(tmp / "pki")
    (tmp / "delegate-rules.yaml").write_text(DELEGATE_RULES)
    with exporter_and_prometheus(tmp, SERIES, min_results=5) as (_, prom):
        prom.wait_for("cluster_queue_depth")
        yield tmp, prom, pki


@pytest.fixture(scope="module")
def setup(prom_and_pki: tuple[Path, Any, Pki]) -> Iterator[Setup]:
    tmp, prom, pki = prom_and_pki
    with adapter(tmp, prom.url, *delegate_args(pki, tmp / "delegate-rules.yaml")) as delegate, \
            FakeKube(tmp / "kube") as fk:
        fk.state.sar_rule = sar_rule
        fk.set_auth_configmap(pki.auth_configmap_data())
        fk.add_pod("ns1", "p1", {"app": "llm"})
        fk.add_pod("ns1", "p2", {"app": "other"})
        # as registered: Delegated authorization (SubjectAccessReviews to the fake API), front-proxy authn
        with adapter(tmp, prom.url, "--config", str(RULES), "--tls-cert-file", str(pki.cert("serving")),
                     "--tls-private-key-file", str(pki.key("serving")), "--lister-kubeconfig", str(fk.kubeconfig),
                     "--authorization-mode", "Delegated", *front_args(pki, delegate.url), ready=False) as front:
            s = Setup(pki, front.url, front.log, delegate)
            # our first discovery done and the delegate's list fetched
            until(lambda: s.get(f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization").status_code == 200, "our metric")
            until(lambda: "delegate_queue" in listed(s.get(EM).json()), "merged external discovery")
            for version in (CM1, CM2):
                until(lambda v=version: "pods/delegate_gpu_min" in listed(s.get(v).json()), "merged custom discovery")
            yield s


def test_a_delegated_custom_metric_is_the_delegates_answer(setup: Setup) -> None:
    path = f"{CM1}/namespaces/ns1/pods/%2A/delegate_gpu_min?labelSelector=app%3Dllm"
    r = setup.get(path)
    direct = setup.direct(path)
    assert r.status_code == direct.status_code == 200, r.text
    assert r.content == direct.content and r.headers["content-type"] == direct.headers["content-type"]
    # min over each pod's GPUs, pods selected by the delegate itself (from kube_pod_labels: p1, p3.dotted)
    assert [(i["describedObject"]["name"], i["value"]) for i in r.json()["items"]] == [("p1", "80"), ("p3.dotted", "5")]
    # the path and query string went as they came, and as us (alice), never as the caller
    seen = [d for d in setup.delegate_requests() if d["path"].endswith("/delegate_gpu_min")]
    assert seen and {(d["path"], d["query"], d["user"]) for d in seen} == {
        (f"{CM1}/namespaces/ns1/pods/*/delegate_gpu_min", "labelSelector=app%3Dllm", "alice")}


def test_a_delegated_external_metric_is_the_delegates_answer(setup: Setup) -> None:
    path = f"{EM}/namespaces/ns1/delegate_queue"
    r = setup.get(path)
    direct = setup.direct(path)
    assert r.status_code == direct.status_code == 200, r.text
    assert r.content == direct.content
    assert [i["value"] for i in r.json()["items"]] == ["15"]


def test_the_delegates_errors_pass_through_unchanged(setup: Setup) -> None:
    path = f"{EM}/namespaces/ns1/nobody_serves_this"
    r, direct = setup.get(path), setup.direct(path)
    assert r.status_code == direct.status_code == 404 and r.content == direct.content
    assert r.json()["kind"] == "Status" and "nobody_serves_this" in r.json()["message"]
    path = f"{CM2}/namespaces/ns1/pods/p1/nobody_serves_this"
    r, direct = setup.get(path), setup.direct(path)
    assert r.status_code == direct.status_code == 404 and r.content == direct.content


def test_our_metrics_stay_ours_and_ours_win_a_name_clash(setup: Setup) -> None:
    r = setup.get(f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization")
    assert r.status_code == 200 and [i["value"] for i in r.json()["items"]] == ["85"]  # our avg, not its min (80)
    r = setup.get(f"{EM}/namespaces/ns1/queue_depth")
    assert r.status_code == 200
    assert sorted(i["value"] for i in r.json()["items"]) == ["12", "3"]  # ours by model, not its 7
    # a metric of ours for an object the cluster does not have: our 404, not the delegate's answer
    r = setup.get(f"{CM2}/namespaces/ns2/pods/p9/gpu_utilization")
    assert r.status_code == 404 and r.json()["message"] == 'pods "p9" not found'


def test_discovery_merges_both_lists(setup: Setup) -> None:
    for path in (CM1, CM2):
        names = listed(setup.get(path).json())
        assert "pods/delegate_gpu_min" in names and names.count("pods/gpu_utilization") == 1
        assert names.index("pods/gpu_utilization") < names.index("pods/delegate_gpu_min")  # ours first
    doc = setup.get(EM).json()
    assert listed(doc).count("queue_depth") == 1 and "delegate_queue" in listed(doc)
    assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    clash = [line for line in setup.front_log.read_text().splitlines()
             if "delegate resource left out of discovery" in line and "queue_depth" in line]
    assert len(clash) == 1, clash  # logged once, though fetched and merged every second


def test_a_denied_caller_never_reaches_the_delegate(setup: Setup) -> None:
    denied = f"{CM1}/namespaces/ns1/pods/denied-probe/delegate_gpu_min"
    r = setup.get(denied, user="mallory")
    assert r.status_code == 403 and r.json()["kind"] == "Status" and r.json()["reason"] == "Forbidden"
    r = setup.get(f"{EM}/namespaces/ns1/denied_probe_metric", user="mallory")
    assert r.status_code == 403
    # the same paths allowed: they do reach the delegate (and its log), the denied ones never did
    allowed = f"{CM1}/namespaces/ns1/pods/allowed-probe/delegate_gpu_min"
    assert setup.get(allowed).status_code == 404
    until(lambda: any(d["path"] == allowed for d in setup.delegate_requests()), "allowed request logged")
    paths = {d["path"] for d in setup.delegate_requests()}
    assert denied not in paths and f"{EM}/namespaces/ns1/denied_probe_metric" not in paths


def test_delegation_metrics(setup: Setup) -> None:
    assert setup.get(f"{EM}/namespaces/ns1/delegate_queue").status_code == 200
    text = setup.get("/metrics").text
    assert 'accel_adapter_delegated_requests_total{group="external.metrics.k8s.io",outcome="2xx"}' in text
    assert 'accel_adapter_delegate_discovery_up{group="custom.metrics.k8s.io",version="v1beta2"} 1.0' in text
    assert 'accel_adapter_delegate_discovery_up{group="external.metrics.k8s.io",version="v1beta1"} 1.0' in text


SEGMENT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(group=st.sampled_from([CM1, CM2, EM]), segments=st.lists(SEGMENT, min_size=1, max_size=6),
       query=st.lists(st.tuples(SEGMENT, SEGMENT), max_size=3))
def test_any_path_under_the_delegated_groups_is_a_status_or_a_list(setup: Setup, group: str, segments: list[str],
                                                                   query: list[tuple[str, str]]) -> None:
    path = group + "/" + "/".join(urllib.parse.quote(s, safe="*") for s in segments)
    if query:
        path += "?" + urllib.parse.urlencode(query)
    r = setup.get(path)
    assert r.status_code < 500 or r.status_code == 503, (path, r.status_code, r.text)
    doc = r.json()
    if r.status_code >= 400:
        assert doc["kind"] == "Status" and doc["code"] == r.status_code, (path, doc)
    else:
        assert doc["kind"] in ("MetricValueList", "ExternalMetricValueList", "APIResourceList"), (path, doc)


def test_a_dead_delegate_answers_503_for_its_metrics_only(prom_and_pki: tuple[Path, Any, Pki]) -> None:
    tmp, prom, pki = prom_and_pki
    tmp = tmp / "dead"
    tmp.mkdir()
    with adapter(tmp, prom.url, *delegate_args(pki, tmp.parent / "delegate-rules.yaml")) as delegate, \
            adapter(tmp, prom.url, "--config", str(RULES), *front_args(pki, delegate.url)) as front:
        until(lambda: "delegate_queue" in listed(front.get(EM)[1]), "merged external discovery")
        until(lambda: "pods/delegate_gpu_min" in listed(front.get(CM1)[1]), "merged custom discovery")
        assert front.get(f"{EM}/namespaces/ns1/delegate_queue")[0] == 200
        stop(delegate.proc)
        for path in (f"{EM}/namespaces/ns1/delegate_queue", f"{CM1}/namespaces/ns1/pods/p1/delegate_gpu_min"):
            status, doc, ctype = front.get(path)
            assert status == 503 and ctype == "application/json", doc
            assert doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable" and doc["code"] == 503
            assert f"the delegate {delegate.url} is unreachable" in str(doc["message"])
        assert front.get(f"{EM}/namespaces/ns1/queue_depth")[0] == 200  # ours keep answering
        assert front.get(f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization")[0] == 200
        assert front.get("/readyz")[0] == 200
        front.wait_metric("accel_adapter_delegate_discovery_up", lambda v: v == 0, group="external.metrics.k8s.io",
                          version="v1beta1")
        assert front.metric("accel_adapter_delegated_requests_total", group="external.metrics.k8s.io",
                            outcome="unreachable") == 1
        # its last good list stays listed (for --delegate-discovery-max-age, 5m by default)
        assert "delegate_queue" in listed(front.get(EM)[1])
        assert "pods/delegate_gpu_min" in listed(front.get(CM1)[1])


@pytest.fixture(scope="module")
def recorded(prom_and_pki: tuple[Path, Any, Pki]) -> Iterator[tuple[Recorder, Adapter, Path]]:
    tmp, prom, pki = prom_and_pki
    tmp = tmp / "recorded"
    tmp.mkdir()
    token = tmp / "token"
    token.write_text("our-token-1\n")
    with recorder(pki.cert("serving"), pki.key("serving")) as rec:
        rec.replies[EM] = (200, RESOURCE_LIST, "application/json", {})
        with adapter(tmp, prom.url, "--config", str(RULES), "--delegate-external-metrics", rec.url,
                     "--delegate-ca-file", str(pki.cert("serving-ca")), "--delegate-token-file", str(token),
                     "--delegate-timeout", "1s", "--delegate-discovery-interval", "1s") as front:
            yield rec, front, token


def test_only_the_path_query_and_our_token_are_forwarded(recorded: tuple[Recorder, Adapter, Path]) -> None:
    rec, front, token = recorded
    path = f"{EM}/namespaces/ns1/keda-metric?labelSelector=scaledobject.keda.sh%2Fname%3Dweb"
    status, _, _ = front.get(path, headers={
        "Authorization": "Bearer the-callers-token", "X-Remote-User": "bob", "X-Remote-Group": "devs",
        "X-Remote-Extra-Scopes": "x", "Impersonate-User": "admin", "Cookie": "a=b"})
    assert status == 200
    got_path, headers = rec.metric_requests()[-1]
    assert got_path == path
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["authorization"] == "Bearer our-token-1"
    assert not [k for k in lower if k.startswith(("x-remote-", "impersonate-")) or k == "cookie"], lower
    # a rotated token (the kubelet rewrites a projected token file) is used from the next request on
    token.write_text("our-token-2-rotated\n")
    assert front.get(path)[0] == 200
    assert rec.metric_requests()[-1][1]["Authorization"] == "Bearer our-token-2-rotated"


def test_any_answer_passes_through_and_redirects_are_not_followed(recorded: tuple[Recorder, Adapter, Path]) -> None:
    rec, front, _ = recorded
    path = f"{EM}/namespaces/ns1/keda-metric"
    rec.reply = (429, b"slow down", "text/plain; charset=utf-8", {})
    status, head, body = front.raw_get(path)
    assert (status, head["Content-Type"], body) == (429, "text/plain; charset=utf-8", b"slow down")
    forbidden = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"Forbidden","code":403}'
    rec.reply = (403, forbidden, "application/json", {})
    assert front.raw_get(path)[0::2] == (403, forbidden)
    assert front.raw_get(path)[0::2] == (403, forbidden)
    assert front.log_text().count("the delegate refused our credentials (403)") == 1
    rec.reply = (302, b"", "text/plain", {"Location": rec.url + "/elsewhere"})
    assert front.raw_get(path)[0] == 302
    assert not [p for p, _ in rec.requests if p.startswith("/elsewhere")]


def test_a_hung_delegate_is_503_at_the_timeout(recorded: tuple[Recorder, Adapter, Path]) -> None:
    rec, front, _ = recorded
    rec.stall = 30
    try:
        status, doc, _ = front.get(f"{EM}/namespaces/ns1/keda-metric")
        assert status == 503 and doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable", doc
        assert doc["message"] == f"the delegate {rec.url} did not answer within 1s"
        assert front.get(f"{EM}/namespaces/ns1/queue_depth")[0] == 200  # ours meanwhile
        # discovery is answered from the background-fetched list, the delegate's entries included
        assert "keda-metric" in listed(front.get(EM)[1])
    finally:
        rec.stall = 0
    assert front.metric("accel_adapter_delegated_requests_total", group="external.metrics.k8s.io",
                        outcome="timeout") == 1


LITERAL_RULES = """rules:
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^gpu_util$", as: "gpu_utilization"}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__=~"^queue_.*"}'
  resources: {overrides: {namespace: {resource: namespace}}}
  name: {matches: "^queue_(.*)$", as: "queue_${1}"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"""


def test_a_metric_our_rules_may_produce_is_never_forwarded_while_discovery_is_pending(
        prom_and_pki: tuple[Path, Any, Pki]) -> None:
    tmp, _, pki = prom_and_pki
    tmp = tmp / "pending"
    tmp.mkdir()
    rules = tmp / "rules.yaml"
    rules.write_text(LITERAL_RULES)
    with recorder(pki.cert("serving"), pki.key("serving")) as rec, \
            adapter(tmp, f"http://127.0.0.1:{free_port()}", "--config", str(rules), "--delegate-external-metrics",
                    rec.url, "--delegate-custom-metrics", rec.url, "--delegate-ca-file", str(pki.cert("serving-ca")),
                    ready=False) as front:
        front.wait_metric("accel_adapter_series_discovery_errors_total", lambda v: v >= 1, source=str(rules),
                          rule="externalRules[0]")
        # Prometheus has never answered: what our rules may produce answers our 503, never the delegate's
        for path in (f"{CM2}/namespaces/ns1/pods/p1/gpu_utilization", f"{EM}/namespaces/ns1/queue_anything"):
            status, doc, _ = front.get(path)
            assert status == 503 and doc["reason"] == "ServiceUnavailable", doc
            assert "series discovery for" in str(doc["message"]) and "has not succeeded yet" in str(doc["message"])
        assert rec.metric_requests() == []
        # what no rule of ours can produce goes to the delegate
        for path in (f"{CM2}/namespaces/ns1/pods/p1/other_metric", f"{EM}/namespaces/ns1/keda-metric"):
            assert front.get(path)[0] == 200
        assert [p for p, _ in rec.metric_requests()] == [f"{CM2}/namespaces/ns1/pods/p1/other_metric",
                                                         f"{EM}/namespaces/ns1/keda-metric"]


def test_custom_rules_only_the_external_api_is_the_delegates(prom_and_pki: tuple[Path, Any, Pki]) -> None:
    tmp, prom, pki = prom_and_pki
    tmp = tmp / "custom-only"
    tmp.mkdir()
    rules = tmp / "rules.yaml"
    rules.write_text(LITERAL_RULES.partition("externalRules:")[0])
    with recorder(pki.cert("serving"), pki.key("serving")) as rec:
        rec.replies[EM] = (200, RESOURCE_LIST, "application/json", {})
        with adapter(tmp, prom.url, "--config", str(rules), "--delegate-external-metrics", rec.url,
                     "--delegate-custom-metrics", rec.url, "--delegate-ca-file", str(pki.cert("serving-ca")),
                     "--delegate-discovery-interval", "1s") as front:
            # every outcome counted from the first scrape, at 0 until it happens
            assert front.metric("accel_adapter_delegated_requests_total", group="custom.metrics.k8s.io",
                                outcome="5xx") == 0
            groups = [g["name"] for g in front.get("/apis")[1]["groups"]]  # type: ignore[index, union-attr]
            assert "external.metrics.k8s.io" in groups
            assert front.get("/apis/external.metrics.k8s.io")[0] == 200
            # the delegate's list alone (our "externalmetrics" placeholder dropped), once it was fetched
            until(lambda: listed(front.get(EM)[1]) == ["keda-metric"], "the delegate's list")
            status, _, body = front.raw_get(f"{EM}/namespaces/ns1/keda-metric")
            assert status == 200 and body == rec.reply[1]
            # a dot-segment resource (authorized as the resource ".." in ns1) is never sent on: the delegate
            # would resolve it to the namespace metric of namespace p1
            for path in (f"{CM2}/namespaces/ns1/%2E%2E/p1/m", f"{CM2}/namespaces/ns1/./p1/m", f"{CM2}/%2E%2E/n/m"):
                status, doc, _ = front.get(path)
                assert status == 404 and doc["kind"] == "Status", (path, doc)
            assert [p for p, _ in rec.metric_requests() if "/p1/m" in p or "/n/m" in p] == []
            assert front.get(f"{CM2}/namespaces/ns1/widgets/p1/m")[0] == 200  # a resource we do not map: theirs
