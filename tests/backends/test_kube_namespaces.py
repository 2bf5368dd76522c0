"""Tenancy by namespace label or annotation, read from a metadata-only list+watch of namespaces on the
fake Kubernetes API (real HTTPS, the real ``kubernetes`` client)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.backends.kube_client import METADATA_LIST, METADATA_WATCH
from adapter.backends.kubernetes import KubeClients, connect
from adapter.errors import Forbidden
from adapter.model import Tenant
from adapter.provider.tenancy import Tenancy
from adapter.rules import parse_rules_text
from tests.backends.test_kubernetes import wait_until
from tests.fakekube import FakeKube

RULES = """
tenancy:
  tenants: {team-a: {}, team-b: {orgID: b-prod}}
  namespaces: {pinned: team-b}
  {key}: example.com/tenant
  unmapped: deny
"""


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, KubeClients]]:
    with FakeKube(tmp_path / "kube") as fk:
        clients = connect(fk.kubeconfig, timeout=5)
        assert clients is not None and clients.namespaces is not None
        try:
            yield fk, clients
        finally:
            clients.close()


def tenancy(clients: KubeClients, key: str) -> Tenancy:
    cfg = parse_rules_text(RULES.replace("{key}", key), "rules.yaml").tenancy
    assert cfg is not None
    return Tenancy(cfg, clients.namespaces)


def tenant_of(t: Tenancy, ns: str) -> str | None:
    try:
        tenant = asyncio.run(t.target(ns)).tenant
    except Forbidden:
        return None
    assert tenant is not None
    return tenant.name


def test_fake_api_serves_namespaces_as_kube_apiserver_does(kube: tuple[FakeKube, KubeClients]) -> None:
    fk, _ = kube
    stored = fk.put_namespace("ns1", {"kubernetes.io/metadata.name": "spoofed", "x": "1"})
    assert stored["metadata"]["labels"] == {"kubernetes.io/metadata.name": "ns1", "x": "1"}
    assert "namespace" not in stored["metadata"] and stored["status"]["phase"] == "Active"


def test_label_maps_and_follows_relabelling(kube: tuple[FakeKube, KubeClients]) -> None:
    fk, clients = kube
    fk.put_namespace("app-a", {"example.com/tenant": "team-a"})
    fk.put_namespace("app-b", {"example.com/tenant": "team-b"})
    fk.put_namespace("no-label")
    fk.put_namespace("bad-value", {"example.com/tenant": "team-zzz"})
    fk.put_namespace("pinned", {"example.com/tenant": "team-a"})  # the static map wins
    t = tenancy(clients, "namespaceLabel")
    assert tenant_of(t, "app-a") == "team-a"
    assert tenant_of(t, "app-b") == "team-b"
    assert tenant_of(t, "no-label") is None
    assert tenant_of(t, "bad-value") is None  # a value naming no configured tenant is unmapped
    assert tenant_of(t, "missing") is None  # no such namespace
    assert tenant_of(t, "pinned") == "team-b"
    fk.put_namespace("app-a", {"example.com/tenant": "team-b"})
    wait_until(lambda: tenant_of(t, "app-a") == "team-b", what="the relabelled namespace's new tenant")
    fk.store.delete("", "namespaces", "", "app-b")
    wait_until(lambda: tenant_of(t, "app-b") is None, what="the deleted namespace to be unmapped")
    # one metadata-only list and watch of /api/v1/namespaces, whatever was asked
    lists = fk.list_calls("/api/v1/namespaces")
    assert len(lists) == 1 and lists[0].accept.startswith(METADATA_LIST)
    assert all(w.accept.startswith(METADATA_WATCH) for w in fk.watch_calls("/api/v1/namespaces"))
    # discovery asks each tenant once per distinct tenant (both are plain header tenants)
    assert t.discovery_tenants() == [Tenant("team-a", (("X-Scope-OrgID", "team-a"),)),
                                     Tenant("team-b", (("X-Scope-OrgID", "b-prod"),))]


def test_annotation_maps(kube: tuple[FakeKube, KubeClients]) -> None:
    fk, clients = kube
    fk.put_namespace("app-a", labels={"example.com/tenant": "team-b"},
                     annotations={"example.com/tenant": "team-a"})
    t = tenancy(clients, "namespaceAnnotation")
    assert tenant_of(t, "app-a") == "team-a"


def test_prom_label_proxy_default_tenant_discovers_per_namespace(kube: tuple[FakeKube, KubeClients]) -> None:
    """``unmapped: by-namespace`` with ``namespace: $namespace``: every namespace of the cluster is its own
    tenant, and series discovery asks each (once the namespace list has arrived)."""
    fk, clients = kube
    for ns in ("app-a", "app-b"):
        fk.put_namespace(ns)
    cfg = parse_rules_text("""
tenancy:
  header: ""
  tenants: {by-namespace: {params: {namespace: $namespace}}}
  unmapped: by-namespace
""", "rules.yaml").tenancy
    assert cfg is not None
    t = Tenancy(cfg, clients.namespaces)
    assert asyncio.run(t.target("app-a")).tenant == Tenant("by-namespace", (), (("namespace", "app-a"),))
    wait_until(lambda: len(t.discovery_tenants()) == 2, what="the namespace list")
    assert t.discovery_tenants() == [Tenant("by-namespace", (), (("namespace", ns),)) for ns in ("app-a", "app-b")]
