"""The Kubernetes backend through the real ``kubernetes`` client against the fake API over HTTPS."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapter.backends.kube_client import METADATA_LIST, METADATA_WATCH
from adapter.backends.kube_objects import KubeObjectResolver, collection_path
from adapter.backends.kubernetes import KubeClients, connect, decode_auth_configmap
from adapter.errors import ConfigError, NotFound, Unavailable
from adapter.model import GroupResource, Identity, Requirement, ResourceInfo, Selector
from tests.fakekube import FakeKube, Recorded

PODS = ResourceInfo(GroupResource("", "pods"), "Pod", "pod", "v1", True)
NODES = ResourceInfo(GroupResource("", "nodes"), "Node", "node", "v1", False)
DEPLOYS = ResourceInfo(GroupResource("apps", "deployments"), "Deployment", "deployment", "v1", True)


def wait_until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def sel(**labels: str) -> Selector:
    return Selector(tuple(Requirement(k, "=", (v,)) for k, v in labels.items()))


@pytest.fixture
def fk(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(tmp_path / "kube") as fake:
        yield fake


def names(kube: KubeClients, info: ResourceInfo, ns: str, selector: Selector) -> list[str]:
    got = asyncio.run(kube.objects.names(info, ns, selector))
    assert got is not None
    return list(got)


def test_no_cluster_without_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert connect(None) is None


def test_bad_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "kc"
    bad.write_text("{not yaml: [")
    with pytest.raises(ConfigError):
        connect(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("pods", ("", "pods", "pod", "Pod", "v1", True)),
    ("pod", ("", "pods", "pod", "Pod", "v1", True)),
    ("Pods", ("", "pods", "pod", "Pod", "v1", True)),
    ("deployments.apps", ("apps", "deployments", "deployment", "Deployment", "v1", True)),
    ("deployment.apps", ("apps", "deployments", "deployment", "Deployment", "v1", True)),
    ("deployments", ("apps", "deployments", "deployment", "Deployment", "v1", True)),
    ("job", ("batch", "jobs", "job", "Job", "v1", True)),  # singular derived from the kind
    ("nodes", ("", "nodes", "node", "Node", "v1", False)),
    ("pods.metrics.k8s.io", ("metrics.k8s.io", "pods", "podmetrics", "PodMetrics", "v1beta1", True)),
])
def test_mapper_spellings(kube: KubeClients, text: str, expected: tuple[object, ...]) -> None:
    kube.mapper.refresh_now()
    info = kube.mapper.resolve(text)
    got = (info.group_resource.group, info.group_resource.resource, info.singular, info.kind, info.version,
           info.namespaced)
    assert got == expected


@pytest.mark.parametrize("text", ["widgets", "pods/status", "status", "deployments.batch", ""])
def test_mapper_unknown(kube: KubeClients, text: str) -> None:
    kube.mapper.refresh_now()
    with pytest.raises(NotFound):
        kube.mapper.resolve(text)


def test_mapper_label_resource(kube: KubeClients, fk: FakeKube) -> None:
    kube.mapper.start()
    info = kube.mapper.resolve_label_resource("apps", "deployment")
    assert info is not None and str(info.group_resource) == "deployments.apps"
    assert kube.mapper.resolve_label_resource("", "pod") == kube.mapper.resolve("pods")
    assert kube.mapper.resolve_label_resource("apps", "widget") is None
    calls = len(fk.state.requests)
    for _ in range(100):
        kube.mapper.resolve("pods")
    assert len(fk.state.requests) == calls  # resolve never does I/O


def test_collection_paths() -> None:
    deploy = ResourceInfo(GroupResource("apps", "deployments"), "Deployment", "deployment", "v1", True)
    assert collection_path(PODS, "ns1") == "/api/v1/namespaces/ns1/pods"
    assert collection_path(PODS, "") == "/api/v1/pods"
    assert collection_path(NODES, "ns1") == "/api/v1/nodes"
    assert collection_path(deploy, "ns1") == "/apis/apps/v1/namespaces/ns1/deployments"


def test_watch_cache_add_relabel_delete(kube: KubeClients, fk: FakeKube) -> None:
    fk.add_pod("ns1", "a1", {"app": "a"})
    fk.add_pod("ns1", "b1", {"app": "b"})
    fk.add_pod("ns2", "a2", {"app": "a"})
    assert names(kube, PODS, "ns1", sel(app="a")) == ["a1"]
    assert names(kube, PODS, "ns1", Selector()) == ["a1", "b1"]
    fk.add_pod("ns1", "a3", {"app": "a"})
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="a")) == ["a1", "a3"], what="ADDED")
    fk.relabel_pod("ns1", "b1", {"app": "a"})
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="a")) == ["a1", "a3", "b1"], what="MODIFIED")
    fk.delete_pod("ns1", "a1")
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="a")) == ["a3", "b1"], what="DELETED")
    assert asyncio.run(kube.objects.exists(PODS, "ns1", "b1")) is True
    assert asyncio.run(kube.objects.exists(PODS, "ns1", "a1")) is False
    assert len(fk.list_calls("/api/v1/pods")) == 1  # one cluster-wide informer, indexed by namespace
    assert [r for r in fk.state.requests if r.path.startswith("/api/v1/namespaces/")] == []


def test_thousand_resolutions_cost_no_api_calls(kube: KubeClients, fk: FakeKube) -> None:
    for i in range(50):
        fk.add_pod("ns1", f"p{i}", {"app": "a" if i % 2 else "b"})
    assert len(names(kube, PODS, "ns1", sel(app="a"))) == 25
    wait_until(lambda: len(fk.watch_calls("/api/v1/pods")) == 1, what="watch")
    before = len(fk.state.requests)

    async def many() -> None:
        for _ in range(1000):
            got = await kube.objects.names(PODS, "ns1", sel(app="a"))
            assert got is not None and len(got) == 25

    asyncio.run(many())
    assert len(fk.state.requests) == before
    assert len(fk.list_calls("/api/v1/pods")) == 1


def informer_threads(before: frozenset[threading.Thread] = frozenset()) -> list[threading.Thread]:
    """The informer threads alive now (that were not in ``before``)."""
    return [t for t in threading.enumerate() if t.name.startswith("informer ") and t not in before]


def test_thousand_namespaces_one_watch_per_resource(kube: KubeClients, fk: FakeKube) -> None:
    """Issue 10: every namespace asked about (existing or not) used to cost a thread and a WATCH.
    A named object and a selector in 1,000 namespaces, for two resources: one informer each."""
    fk.add_pod("ns7", "p", {"app": "a"})
    fk.store.put("apps", "deployments", {"metadata": {"name": "d", "namespace": "ns7", "labels": {"app": "a"}}})
    threads_before, informers_before = threading.active_count(), frozenset(informer_threads())

    async def ask() -> None:
        for i in range(1000):
            ns, here = f"ns{i}", i == 7
            for info, name in ((PODS, "p"), (DEPLOYS, "d")):
                assert await kube.objects.exists(info, ns, name) is here
                assert await kube.objects.names(info, ns, sel(app="a")) == ([name] if here else [])

    asyncio.run(ask())
    wait_until(lambda: fk.state.open_watches == 2, what="the two watches")
    threads = informer_threads(informers_before)
    assert len(threads) == 2, [t.name for t in threads]
    assert threading.active_count() - threads_before <= 2
    assert fk.state.peak_watches <= 2
    assert len(fk.list_calls("/api/v1/pods")) == len(fk.list_calls("/apis/apps/v1/deployments")) == 1


def test_object_caches_transfer_metadata_only(kube: KubeClients, fk: FakeKube) -> None:
    """A cluster-wide cache of every pod needs names and labels, not specs: LIST and WATCH ask for
    PartialObjectMetadata (falling back to full objects where a server cannot send it)."""
    fk.add_pod("ns1", "a1", {"app": "a"})
    assert names(kube, PODS, "ns1", sel(app="a")) == ["a1"]
    wait_until(lambda: len(fk.watch_calls("/api/v1/pods")) == 1, what="watch")
    assert fk.list_calls("/api/v1/pods")[0].accept == METADATA_LIST
    assert fk.watch_calls("/api/v1/pods")[0].accept == METADATA_WATCH
    fk.relabel_pod("ns1", "a1", {"app": "b"})
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="b")) == ["a1"], what="MODIFIED as metadata")
    listed = kube.lister.get("/api/v1/pods", accept=METADATA_LIST)
    assert listed["kind"] == "PartialObjectMetadataList"
    assert [set(o) for o in listed["items"]] == [{"kind", "apiVersion", "metadata"}]
    full = kube.lister.get("/api/v1/pods", accept="application/json;as=Table;g=meta.k8s.io;v=v1,application/json")
    assert full["kind"] == "PodList" and "spec" in full["items"][0]


def test_list_is_paged(kube: KubeClients, fk: FakeKube) -> None:
    for i in range(1201):
        fk.add_pod(f"ns{i % 3}", f"p{i:04d}", {"app": "a"})
    assert len(names(kube, PODS, "ns1", sel(app="a"))) == 400
    assert len(names(kube, PODS, "", Selector())) == 1201
    lists = fk.list_calls("/api/v1/pods")
    assert [r.query["limit"] for r in lists] == [["500"]] * 3
    assert "continue" not in lists[0].query and all(r.query["continue"][0] for r in lists[1:])


def test_expired_continue_token_lists_again(kube: KubeClients, fk: FakeKube) -> None:
    """A snapshot compacted between two pages (410 on the continue token) starts the list again, as
    client-go's pager does; the reader waiting for the first list gets its answer, not a 503."""
    for i in range(1201):
        fk.add_pod("ns1", f"p{i:04d}")
    compacted: list[Recorded] = []

    def compact_once(r: Recorded) -> None:
        if "continue" in r.query and not compacted:
            compacted.append(r)
            fk.store.compact()

    fk.state.on_request = compact_once
    assert len(names(kube, PODS, "ns1", Selector())) == 1201
    assert ["continue" in r.query for r in fk.list_calls("/api/v1/pods")] == [False, True, False, True, True]


def test_paged_list_continues_one_snapshot(kube: KubeClients, fk: FakeKube) -> None:
    """The fake's continuation reads the first page's snapshot, as etcd serves it, and 410s once it is
    compacted (what an informer relists on)."""
    for name in ("a", "b", "c"):
        fk.add_pod("ns1", name)
    first = kube.lister.get("/api/v1/pods", {"limit": "2"})
    assert [o["metadata"]["name"] for o in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    token, rv = first["metadata"]["continue"], first["metadata"]["resourceVersion"]
    fk.delete_pod("ns1", "c")
    fk.add_pod("ns1", "d")
    rest = kube.lister.get("/api/v1/pods", {"limit": "2", "continue": token})
    assert [o["metadata"]["name"] for o in rest["items"]] == ["c"]
    assert rest["metadata"]["resourceVersion"] == rv and "continue" not in rest["metadata"]
    fk.store.compact()
    with pytest.raises(Unavailable, match="410"):
        kube.lister.get("/api/v1/pods", {"limit": "2", "continue": token})


def test_idle_informer_stops_and_restarts(kube: KubeClients, fk: FakeKube) -> None:
    fk.add_pod("ns1", "a1", {"app": "a"})
    before = frozenset(informer_threads())
    objects = KubeObjectResolver(kube.lister, idle=0.5, watch_timeout=1)
    try:
        assert asyncio.run(objects.names(PODS, "ns1", sel(app="a"))) == ["a1"]
        wait_until(lambda: not informer_threads(before) and fk.state.open_watches == 0, what="idle informer stopped")
        fk.add_pod("ns1", "a2", {"app": "a"})
        assert asyncio.run(objects.names(PODS, "ns1", sel(app="a"))) == ["a1", "a2"]  # a fresh LIST
        assert asyncio.run(objects.exists(PODS, "ns1", "a2")) is True
        assert len(fk.list_calls("/api/v1/pods")) == 2
    finally:
        objects.stop()


def test_watch_dropped_resumes_without_relist(kube: KubeClients, fk: FakeKube) -> None:
    fk.add_pod("ns1", "a1", {"app": "a"})
    assert names(kube, PODS, "ns1", sel(app="a")) == ["a1"]
    path = "/api/v1/pods"
    wait_until(lambda: len(fk.watch_calls(path)) == 1, what="first watch")
    fk.state.drop_watches()
    wait_until(lambda: len(fk.watch_calls(path)) == 2, what="re-watch")
    fk.add_pod("ns1", "a2", {"app": "a"})
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="a")) == ["a1", "a2"], what="event after re-watch")
    second = fk.watch_calls(path)[1]
    assert int(second.query["resourceVersion"][0]) >= 101  # resumed from the last resourceVersion
    assert len(fk.list_calls(path)) == 1


def test_gone_410_relists(kube: KubeClients, fk: FakeKube) -> None:
    fk.add_pod("ns1", "a1", {"app": "a"})
    assert names(kube, PODS, "ns1", sel(app="a")) == ["a1"]
    path = "/api/v1/pods"
    wait_until(lambda: len(fk.watch_calls(path)) == 1, what="first watch")
    fk.add_pod("ns1", "a2", {"app": "a"})
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="a")) == ["a1", "a2"], what="a2")
    fk.store.compact()  # history gone: resuming from our resourceVersion now gets 410
    fk.store.bump()
    fk.state.drop_watches()
    wait_until(lambda: len(fk.list_calls(path)) == 2, what="relist after 410")
    fk.delete_pod("ns1", "a1")
    wait_until(lambda: names(kube, PODS, "ns1", sel(app="a")) == ["a2"], what="events after relist")


def test_watch_from_list_version_sees_changes_made_in_between(kube: KubeClients, fk: FakeKube) -> None:
    """A change between an informer's LIST and its WATCH must still arrive (the watch starts from the
    LIST's resourceVersion and the API replays from there, filtering on the object before and after)."""
    fk.add_pod("ns1", "a1", {"app": "a"})
    fk.add_pod("ns1", "b1", {"app": "b"})
    path = "/api/v1/namespaces/ns1/pods"
    listed = kube.lister.get(path, {"labelSelector": "app=a"})
    rv = listed["metadata"]["resourceVersion"]
    assert [o["metadata"]["name"] for o in listed["items"]] == ["a1"]
    fk.delete_pod("ns1", "a1")
    fk.relabel_pod("ns1", "b1", {"app": "a"})
    fk.relabel_pod("ns1", "b1", {"app": "c"})
    seen = []
    for event in kube.lister.watch(path, {"labelSelector": "app=a", "resourceVersion": rv, "timeoutSeconds": "1"},
                                   read_timeout=10):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
    assert seen == [("DELETED", "a1"), ("ADDED", "b1"), ("DELETED", "b1")]


def test_cluster_scoped_and_unlistable(kube: KubeClients, fk: FakeKube) -> None:
    fk.store.put("", "nodes", {"metadata": {"name": "n1", "labels": {"gpu": "a100"}}})
    fk.store.put("", "nodes", {"metadata": {"name": "n2", "labels": {}}})
    assert names(kube, NODES, "ignored", sel(gpu="a100")) == ["n1"]
    widgets = ResourceInfo(GroupResource("example.com", "widgets"), "Widget", "widget", "v1", True)
    with pytest.raises(Unavailable, match=r"cannot list widgets\.example\.com"):
        names(kube, widgets, "ns1", Selector())


def test_token_and_access_reviews(kube: KubeClients, fk: FakeKube) -> None:
    fk.state.users["good"] = {"username": "alice", "uid": "u1", "groups": ["dev"],
                              "extra": {"scopes": ["a", "b"]}}
    who = asyncio.run(kube.auth.review_token("good"))
    assert who == Identity("alice", ("dev",), "u1", {"scopes": ("a", "b")})
    assert asyncio.run(kube.auth.review_token("bad")) is None
    fk.state.sar_rule = lambda spec: (spec.get("user") == "alice", spec.get("user") == "mallory", "rbac says")
    spec = {"nonResourceAttributes": {"path": "/x", "verb": "get"}, "user": "alice"}
    decision = asyncio.run(kube.auth.review_access(spec))
    assert (decision.allowed, decision.denied, decision.reason) == (True, False, "rbac says")
    sent = fk.state.recorded("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews")[-1].body
    assert sent == {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                    "spec": spec, "status": {"allowed": False}}
    denied = asyncio.run(kube.auth.review_access({**spec, "user": "mallory"}))
    assert (denied.allowed, denied.denied) == (False, True)


def test_review_failures_become_unavailable(kube: KubeClients, fk: FakeKube) -> None:
    fk.state.fail_status["/apis/authorization.k8s.io/v1/subjectaccessreviews"] = 500
    with pytest.raises(Unavailable, match="500"):
        asyncio.run(kube.auth.review_access({"user": "x"}))
    assert len(fk.state.sars()) == 3  # bounded retry


def test_unauthorized_client_is_unavailable(tmp_path: Path, fk: FakeKube) -> None:
    kc = fk.write_kubeconfig(tmp_path / "wrong", "wrong-token")
    clients = connect(kc)
    assert clients is not None
    try:
        with pytest.raises(Unavailable, match="401"):
            clients.mapper.refresh_now()
    finally:
        clients.close()


def test_auth_configmap_read_and_reread(kube: KubeClients, fk: FakeKube) -> None:
    assert asyncio.run(kube.auth.authentication_config()) is None
    assert kube.auth.config.read_extension_apiserver_authentication() is None
    fk.set_auth_configmap({"client-ca-file": "PEM1", "requestheader-allowed-names": '["front-proxy-client"]',
                           "requestheader-username-headers": '["X-Remote-User"]',
                           "requestheader-extra-headers-prefix": "[]"})
    expected = {"client-ca-file": "PEM1", "requestheader-allowed-names": ("front-proxy-client",),
                "requestheader-username-headers": ("X-Remote-User",), "requestheader-extra-headers-prefix": ()}
    wait_until(lambda: asyncio.run(kube.auth.authentication_config()) == expected, what="configmap")
    first = asyncio.run(kube.auth.authentication_config())
    assert asyncio.run(kube.auth.authentication_config()) is first  # same object until it changes
    assert kube.auth.config.read_extension_apiserver_authentication() == expected
    fk.set_auth_configmap({"client-ca-file": "PEM2"})
    wait_until(lambda: asyncio.run(kube.auth.authentication_config()) == {"client-ca-file": "PEM2"},
               what="configmap change")
    assert decode_auth_configmap({"requestheader-group-headers": "not json"}) == {}
