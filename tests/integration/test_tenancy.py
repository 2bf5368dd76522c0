"""Tenancy, enforced, end to end: the real adapter behind a Mimir-style tenant-enforcing proxy in front of
two real Prometheus servers, one per tenant.

Namespaces ns-a and ns-a2 map to tenant-a (Prometheus A), ns-b to tenant-b (Prometheus B). Prometheus A
also holds series *labelled* ``namespace="ns-b"`` (as a shared store could), so both halves of the
enforcement show: the tenant header (B's store is never asked for an ns-a request) and the namespace
matcher on every selector (A's ns-b and ns-a2 series never reach an ns-a answer).

Values encode where they come from: ns-a's are 1 and 2 (sums 3, shares 1/3 and 2/3), ns-a2's 201, ns-b's
9001 in A and 5001/5002 in B. So any value an ns-a request is answered with lies in [0.1, 100) unless
another namespace's data took part (a sum then reaches 100 or more, a share falls below 0.01).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.demo_hpa import parse_quantity
from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki
from tests.support.adapter import Adapter, adapter
from tests.support.procs import free_port, python_module, running, wait_http
from tests.support.prometheus import Prometheus
from tests.support.stack import exporter_and_prometheus, get_ok
from tests.support.tenantproxy import TenantProxy, confined_to, tenant_proxy

CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"


def _gauge(ns: str, pod: str, value: float, gpu: str = "0") -> dict[str, object]:
    return {"name": "tenancy_gauge", "labels": {"namespace": ns, "pod": pod, "gpu": gpu}, "value": value}


def _pod(ns: str, pod: str, app: str) -> dict[str, object]:
    return {"name": "kube_pod_labels", "labels": {"namespace": ns, "pod": pod, "label_app": app}, "value": 1}


STORE_A = [_gauge("ns-a", "p1", 1), _gauge("ns-a", "p2", 2), _gauge("ns-a2", "p1", 201), _gauge("ns-b", "p1", 9001),
           _pod("ns-a", "p1", "x"), _pod("ns-a", "p2", "y"), _pod("ns-a2", "p1", "x"), _pod("ns-b", "p1", "x")]
STORE_B = [_gauge("ns-b", "p1", 5001), _gauge("ns-b", "p2", 5002), _pod("ns-b", "p1", "x"), _pod("ns-b", "p2", "y")]

# a family of metricsQuery templates, hostile ones included: each is served as its own metric
TEMPLATES = {
    "plain": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    "no_matchers": "sum(<<.Series>>) by (pod)",
    "other_namespace": 'sum(<<.Series>>{namespace="ns-b"}) by (pod)',
    "any_namespace": 'max(<<.Series>>{namespace=~".*",<<.LabelMatchers>>}) by (pod)',
    "not_mine": 'sum(<<.Series>>{namespace!="ns-a"}) by (pod)',
    "share_group_left": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) / on() group_left sum(<<.Series>>)",
    "or_other": 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) or sum(<<.Series>>{namespace="ns-b"}) by (pod)',
    "subquery": "max_over_time(sum(<<.Series>>{pod!=\"\"}) by (pod)[1m:5s])",
    "relabel_into_mine": 'max by (pod) (label_replace(<<.Series>>{pod!=""}, "namespace", "ns-a", "namespace", ".*"))',
    "values_by_name": 'sum(<<.Series>>{namespace="<<index .LabelValuesByName "namespace">>"}) by (pod)',
    "name_regex": 'sum({__name__=~"tenancy_.*",<<.LabelMatchers>>}) by (<<.GroupBy>>)',
}
EXTERNAL = {
    "ext_plain": "sum(<<.Series>>{<<.LabelMatchers>>})",
    "ext_everything": "sum(<<.Series>>)",  # a rule that ignores the namespace (resources.namespaced: false)
}


def _rules() -> str:
    out = ["""tenancy:
  tenants: {tenant-a: {}, tenant-b: {}}
  namespaces: {ns-a: tenant-a, ns-a2: tenant-a, ns-b: tenant-b}
  unmapped: deny
rules:"""]
    for name, query in TEMPLATES.items():
        out.append(f"""- seriesQuery: 'tenancy_gauge{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^tenancy_gauge$", as: "{name}"}}
  metricsQuery: '{query.replace("'", "''")}'""")
    out.append("externalRules:")
    for name, query in EXTERNAL.items():
        namespaced = "false" if name == "ext_everything" else "true"
        out.append(f"""- seriesQuery: 'tenancy_gauge{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}}}, namespaced: {namespaced}}}
  name: {{matches: "^tenancy_gauge$", as: "{name}"}}
  metricsQuery: '{query}'""")
    return "\n".join(out) + "\n"


@dataclass
class Stack:
    ad: Adapter
    proxy: TenantProxy


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Prometheus]]:
    """(tenant-a's Prometheus, tenant-b's Prometheus)."""
    tmp = tmp_path_factory.mktemp("tenant-stores")
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    with exporter_and_prometheus(tmp / "a", STORE_A, wait_for="tenancy_gauge", min_results=4) as (_, pa), \
            exporter_and_prometheus(tmp / "b", STORE_B, wait_for="tenancy_gauge", min_results=2) as (_, pb):
        yield pa, pb


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stores: tuple[Prometheus, Prometheus]) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("tenancy")
    rules = tmp / "rules.yaml"
    rules.write_text(_rules())
    pa, pb = stores
    with tenant_proxy({"tenant-a": pa.url, "tenant-b": pb.url}) as proxy, \
            adapter(tmp, proxy.url, "--config", str(rules)) as ad:
        yield Stack(ad, proxy)


def _values(doc: dict[str, object]) -> dict[str, float]:
    return {i["describedObject"]["name"]: parse_quantity(i["value"])  # type: ignore[index]
            for i in doc["items"]}  # type: ignore[union-attr]


def test_each_namespace_reads_its_own_tenant(stack: Stack) -> None:
    ad = stack.ad
    assert _values(get_ok(ad, f"{CM2}/namespaces/ns-a/pods/p1/plain")) == {"p1": 1}
    assert _values(get_ok(ad, f"{CM2}/namespaces/ns-a2/pods/p1/plain")) == {"p1": 201}
    assert _values(get_ok(ad, f"{CM2}/namespaces/ns-b/pods/p1/plain")) == {"p1": 5001}  # B's store, not A's 9001
    assert _values(get_ok(ad, f"{CM2}/namespaces/ns-a/pods/%2A/plain?labelSelector=app%3Dx")) == {"p1": 1}
    assert _values(get_ok(ad, f"{CM2}/namespaces/ns-b/pods/%2A/plain")) == {"p1": 5001, "p2": 5002}
    ext = get_ok(ad, f"{EM}/namespaces/ns-b/ext_everything")
    assert [parse_quantity(i["value"]) for i in ext["items"]] == [10003]  # type: ignore[index,union-attr]
    ext = get_ok(ad, f"{EM}/namespaces/ns-a/ext_plain")
    assert [parse_quantity(i["value"]) for i in ext["items"]] == [3]  # type: ignore[index,union-attr]
    # series discovery asked as each tenant, never without one
    with stack.proxy.lock:
        series = [r for r in stack.proxy.received if r.path == "/api/v1/series"]
    assert {r.tenant for r in series} == {"tenant-a", "tenant-b"}
    assert all(r.status == 200 for r in stack.proxy.received)


def test_unmapped_and_cluster_scoped_are_forbidden(stack: Stack) -> None:
    ad = stack.ad
    before = stack.proxy.mark()
    for path, reason in ((f"{CM2}/namespaces/elsewhere/pods/p1/plain", "unmapped"),
                         (f"{EM}/namespaces/elsewhere/ext_plain", "unmapped"),
                         (f"{CM2}/nodes/n1/plain", "cluster_scoped")):
        status, doc, _ = ad.get(path)
        assert status == 403, (path, doc)
        assert doc["kind"] == "Status" and doc["reason"] == "Forbidden" and doc["code"] == 403, doc
        assert ad.metric("accel_adapter_tenancy_denied_total", reason=reason) >= 1  # type: ignore[operator]
    assert stack.proxy.queries(before) == []  # nothing was asked for a denied request
    # logged once per namespace (per 5 minutes), however often denied
    denied = [line for line in ad.log_text().splitlines() if "request denied" in line]
    assert len([line for line in denied if "elsewhere" in line]) == 1, denied


# --- the property: whatever the selectors and the template, ns-a never sees another namespace -----------

_LABEL_SEL = st.one_of(
    st.just(""),
    st.builds(lambda k, op, v: f"{k}{op}{v}", st.sampled_from(["app", "namespace", "pod"]),
              st.sampled_from(["=", "!=", "=="]), st.sampled_from(["x", "y", "ns-b", "p1"])),
    st.builds(lambda k, op, vs: f"{k} {op} ({','.join(vs)})", st.sampled_from(["app", "pod"]),
              st.sampled_from(["in", "notin"]), st.lists(st.sampled_from(["x", "y", "p1", "p2"]), min_size=1,
                                                         max_size=2, unique=True)),
    st.sampled_from(["app", "!app", "app=x,app!=y"]),
)
_METRIC_SEL = st.one_of(
    st.just(""),
    st.builds(lambda k, op, v: f"{k}{op}{v}", st.sampled_from(["gpu", "namespace", "pod"]),
              st.sampled_from(["=", "!="]), st.sampled_from(["0", "1", "ns-b", "ns-a", "p1"])),
    st.sampled_from(["gpu in (0,1)", "namespace notin (ns-a)", "gpu", "!gpu"]),
)


@st.composite
def requests(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["name", "selector", "external"]))
    metric_sel = draw(_METRIC_SEL)
    if kind == "external":
        metric = draw(st.sampled_from(sorted(EXTERNAL)))
        query = {"labelSelector": metric_sel} if metric_sel else {}
        return f"{EM}/namespaces/ns-a/{metric}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    metric = draw(st.sampled_from(sorted(TEMPLATES)))
    query = {"metricLabelSelector": metric_sel} if metric_sel else {}
    if kind == "name":
        path = f"{CM2}/namespaces/ns-a/pods/{draw(st.sampled_from(['p1', 'p2']))}/{metric}"
    else:
        path = f"{CM2}/namespaces/ns-a/pods/%2A/{metric}"
        label_sel = draw(_LABEL_SEL)
        if label_sel:
            query["labelSelector"] = label_sel
    return path + (f"?{urllib.parse.urlencode(query)}" if query else "")


def test_namespace_a_never_reads_b(stack: Stack) -> None:
    seen_queries: set[str] = set()
    answered = 0

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(path=requests())
    def run(path: str) -> None:
        nonlocal answered
        mark = stack.proxy.mark()
        status, doc, _ = stack.ad.get(path)
        assert status in (200, 404), (path, status, doc)
        for r in stack.proxy.queries(mark):
            seen_queries.add(r.promql)
            assert r.tenant == "tenant-a", (path, r)
            assert confined_to(r.promql, "namespace", "ns-a"), (path, r.promql)
        if status == 200:
            answered += 1
            for item in doc["items"]:  # type: ignore[attr-defined]
                value = parse_quantity(item["value"])
                assert 0.1 <= value < 100, (path, item)
                if "describedObject" in item:
                    assert item["describedObject"]["namespace"] == "ns-a", (path, item)

    run()
    # the property was exercised: real queries were checked and real values answered
    assert len(seen_queries) >= 10 and answered >= 10, (len(seen_queries), answered)


def test_prom_label_proxy_style_namespace_parameter(tmp_path: Path, stores: tuple[Prometheus, Prometheus]) -> None:
    """Thanos + prom-label-proxy: no tenant header, the request's namespace as the ``namespace`` parameter
    (the docs' copy-paste config); the proxy routes by that parameter and refuses a request without it."""
    pa, pb = stores
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rules().replace("""  tenants: {tenant-a: {}, tenant-b: {}}
  namespaces: {ns-a: tenant-a, ns-a2: tenant-a, ns-b: tenant-b}
  unmapped: deny""", """  header: ""
  tenants:
    by-namespace: {params: {namespace: $namespace}}
  namespaces: {ns-a: by-namespace, ns-b: by-namespace}
  unmapped: deny"""))
    with tenant_proxy({"ns-a": pa.url, "ns-b": pb.url}, mode="param") as proxy, \
            adapter(tmp_path, proxy.url, "--config", str(rules)) as ad:
        assert _values(get_ok(ad, f"{CM2}/namespaces/ns-a/pods/%2A/plain?labelSelector=app")) == {"p1": 1, "p2": 2}
        assert _values(get_ok(ad, f"{CM2}/namespaces/ns-b/pods/p2/plain")) == {"p2": 5002}
        status, doc, _ = ad.get(f"{CM2}/namespaces/ns-a2/pods/p1/plain")
        assert status == 403, doc
        with proxy.lock:
            received = list(proxy.received)
        assert received and all(r.status == 200 for r in received), [r for r in received if r.status != 200]
        for r in received:
            if r.path == "/api/v1/query":
                assert confined_to(r.promql, "namespace", r.tenant), r


@pytest.mark.parametrize("metric", ["plain", "share_group_left", "or_other"])
def test_explain_raw_samples_are_confined_and_tenanted(stack: Stack, metric: str) -> None:
    """The explain API re-reads the raw samples behind a value: as the namespace's tenant, confined too."""
    mark = stack.proxy.mark()
    doc = get_ok(stack.ad, f"/apis/explain.accel-metrics.io/v1alpha1/namespaces/ns-a/pods/p1/{metric}")
    assert doc["kind"] == "Explanation", doc
    queries = stack.proxy.queries(mark)
    assert any(r.promql.startswith("timestamp(") for r in queries), queries  # the raw samples were read
    for r in queries:
        assert r.tenant == "tenant-a" and confined_to(r.promql, "namespace", "ns-a"), r


def test_cluster_mode_namespace_label_picks_the_tenant(tmp_path: Path, stores: tuple[Prometheus, Prometheus]) -> None:
    """In a cluster: the tenant comes from the namespace's label (a metadata-only watch of namespaces on
    the fake Kubernetes API), follows a relabelling, and an unlabelled namespace is denied."""
    pa, pb = stores
    pki = Pki(tmp_path / "pki")
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rules().replace(
        "  namespaces: {ns-a: tenant-a, ns-a2: tenant-a, ns-b: tenant-b}\n",
        "  namespaceLabel: example.com/tenant\n"))
    hpa = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    with FakeKube(tmp_path / "kube") as fk, tenant_proxy({"tenant-a": pa.url, "tenant-b": pb.url}) as proxy:
        fk.state.sar_rule = lambda spec: (spec["user"] == hpa, False, "")
        fk.set_auth_configmap(pki.auth_configmap_data())
        fk.put_namespace("ns-a", {"example.com/tenant": "tenant-a"})
        fk.put_namespace("ns-b", {"example.com/tenant": "tenant-b"})
        fk.put_namespace("ns-a2")
        for ns, pod in (("ns-a", "p1"), ("ns-a", "p2"), ("ns-b", "p1"), ("ns-a2", "p1")):
            fk.add_pod(ns, pod, {"app": "x"})
        port = free_port()
        log = tmp_path / "adapter.log"
        cmd = python_module("adapter", "serve", "--config", str(rules), "--prometheus-url", proxy.url,
                            "--secure-port", str(port), "--bind-address", "127.0.0.1",
                            "--tls-cert-file", str(pki.cert("serving")), "--tls-private-key-file",
                            str(pki.key("serving")), "--lister-kubeconfig", str(fk.kubeconfig),
                            "--metrics-relist-interval", "1s", "--metrics-max-age", "15s")
        with running(cmd, log) as proc, pki.client(f"https://127.0.0.1:{port}", "front-proxy-client") as c:
            wait_http(f"https://127.0.0.1:{port}/readyz", timeout=60, proc=proc)

            def get(path: str, want: int = 200) -> dict[str, object]:
                deadline = time.monotonic() + 20
                while True:
                    r = c.get(path, headers={"X-Remote-User": hpa})
                    if r.status_code == want or time.monotonic() > deadline:
                        assert r.status_code == want, (path, r.status_code, r.text, log.read_text()[-2000:])
                        return dict(r.json())

            assert _values(get(f"{CM2}/namespaces/ns-a/pods/%2A/plain?labelSelector=app%3Dx")) == {"p1": 1, "p2": 2}
            assert _values(get(f"{CM2}/namespaces/ns-b/pods/p1/plain")) == {"p1": 5001}
            assert get(f"{CM2}/namespaces/ns-a2/pods/p1/plain", 403)["reason"] == "Forbidden"
            fk.put_namespace("ns-a2", {"example.com/tenant": "tenant-b"})  # now tenant-b's: B has no ns-a2 data
            assert get(f"{CM2}/namespaces/ns-a2/pods/p1/plain", 404)["reason"] == "NotFound"
            fk.put_namespace("ns-a2", {"example.com/tenant": "tenant-a"})
            assert _values(get(f"{CM2}/namespaces/ns-a2/pods/p1/plain")) == {"p1": 201}
        with proxy.lock:
            assert all(r.tenant in ("tenant-a", "tenant-b") and r.status == 200 for r in proxy.received)
