"""Delegated authorization: the exact SubjectAccessReviews sent, caching, and Go's 403/500 answers.

Requests go through a real uvicorn HTTPS server (TLS protocol + SecurityMiddleware) as the
aggregator sends them (front-proxy certificate, X-Remote-* headers, ``%2A``); the SARs are
recorded by the fake Kubernetes API reached through the real client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.api.authz import AlwaysAllow, DelegatedAuthorizer, forbidden, go_quote
from adapter.api.requestinfo import request_info
from adapter.api.security import build_security
from adapter.api.status import status_dict
from adapter.api.tlsproto import build_server_ssl_context
from adapter.backends.kubernetes import KubeClients
from adapter.errors import ConfigError
from adapter.model import Identity
from adapter.settings import Settings
from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki, SecureServer

HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
HPA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
CM = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"
AS_HPA = [("X-Remote-User", HPA), ("X-Remote-Uid", "67d5"),
          ("X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id", "JTI=568c"),
          *[("X-Remote-Group", g) for g in HPA_GROUPS[:2]], ("X-Remote-Group", "system:authenticated")]


@pytest.fixture
def fk(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(tmp_path / "kube") as fake:
        fake.state.sar_rule = lambda spec: (spec["user"] == HPA, spec["user"] == "mallory", "")
        yield fake


def settings(pki: Pki, **kw: Any) -> Settings:
    return Settings(requestheader_client_ca_file=pki.cert("front-proxy-ca"),
                    requestheader_allowed_names=("front-proxy-client",), **kw)


@pytest.fixture
def server(pki: Pki, kube: KubeClients) -> Iterator[SecureServer]:
    authn, authz = build_security(settings(pki), kube.auth)
    ctx = build_server_ssl_context(str(pki.cert("serving")), str(pki.key("serving")), asyncio.run(authn.trust_bundle()))
    with SecureServer(pki, ctx, authn, authz) as srv:
        yield srv


def _ra(**kw: str) -> dict[str, Any]:
    return {"resourceAttributes": kw}


SAR_CASES = [
    ("hpa-pods", f"{CM}/namespaces/ns1/pods/%2A/gpu_util?labelSelector=app%3Dllm",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="pods",
         subresource="gpu_util", name="*")),
    ("object", f"{CM}/namespaces/ns1/deployments.apps/llm/queue_depth",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2",
         resource="deployments.apps", subresource="queue_depth", name="llm")),
    ("namespace-metric", f"{CM}/namespaces/ns1/metrics/queue_depth",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="metrics",
         name="queue_depth")),
    ("node", f"{CM}/nodes/node-1/gpu_util",
     _ra(verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="nodes",
         subresource="gpu_util", name="node-1")),
    ("external", f"{EM}/namespaces/ns1/vllm_queue_depth?labelSelector=model_name%3Dllama",
     {"resourceAttributes": {"namespace": "ns1", "verb": "list", "group": "external.metrics.k8s.io",
                             "version": "v1beta1", "resource": "vllm_queue_depth", "labelSelector": {
                                 "requirements": [{"key": "model_name", "operator": "In", "values": ["llama"]}]}}}),
    ("discovery", CM, {"nonResourceAttributes": {"path": CM, "verb": "get"}}),
]


@pytest.mark.parametrize(("url", "attrs"), [c[1:] for c in SAR_CASES], ids=[c[0] for c in SAR_CASES])
def test_sar_sent_exactly(server: SecureServer, fk: FakeKube, url: str, attrs: dict[str, Any]) -> None:
    with server.client("front-proxy-client") as c:
        assert c.get(url, headers=AS_HPA).status_code == 200
        assert c.get(url, headers=AS_HPA).status_code == 200  # cached: no second SAR
    expected = {**attrs, "user": HPA, "groups": HPA_GROUPS,
                "extra": {"authentication.kubernetes.io/credential-id": ["JTI=568c"]}}
    assert fk.state.sars() == [expected]  # no uid: no --requestheader-uid-headers flag (Go default)
    body = fk.state.recorded("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews")[0].body
    assert (body["kind"], body["apiVersion"], body["status"]) == ("SubjectAccessReview",
                                                                  "authorization.k8s.io/v1", {"allowed": False})


def test_403_bodies(server: SecureServer, fk: FakeKube) -> None:
    fk.state.sar_rule = lambda spec: (False, spec["user"] == "mallory", "RBAC: nope")
    with server.client("front-proxy-client") as c:
        r = c.get(f"{CM}/namespaces/ns1/pods/%2A/gpu_util", headers=[("X-Remote-User", HPA)])
        assert r.status_code == 403
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.json() == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'pods.custom.metrics.k8s.io "*" is forbidden: User "{HPA}" cannot get resource '
                       '"pods/gpu_util" in API group "custom.metrics.k8s.io" in the namespace "ns1": RBAC: nope',
            "reason": "Forbidden", "details": {"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"},
            "code": 403}
        r = c.get(f"{CM}/nodes/n1/gpu_util", headers=[("X-Remote-User", "mallory")])
        assert r.json()["message"] == ('nodes.custom.metrics.k8s.io "n1" is forbidden: User "mallory" cannot get '
                                       'resource "nodes/gpu_util" in API group "custom.metrics.k8s.io" at the '
                                       "cluster scope: RBAC: nope")
        r = c.get(f"{EM}/namespaces/ns1/q", headers=[("X-Remote-User", "a<b>&c")])
        assert r.json()["message"] == ('q.external.metrics.k8s.io is forbidden: User "a&lt;b&gt;&amp;c" cannot '
                                       'list resource "q" in API group "external.metrics.k8s.io" in the namespace '
                                       '"ns1": RBAC: nope')
        assert r.json()["details"] == {"group": "external.metrics.k8s.io", "kind": "q"}
    # denials are cached too
    before = len(fk.state.sars())
    with server.client("front-proxy-client") as c:
        c.get(f"{CM}/nodes/n1/gpu_util", headers=[("X-Remote-User", "mallory")])
    assert len(fk.state.sars()) == before


def test_sar_failure_is_500_status(server: SecureServer, fk: FakeKube) -> None:
    fk.state.fail_status["/apis/authorization.k8s.io/v1/subjectaccessreviews"] = 500
    with server.client("front-proxy-client") as c:
        r = c.get(f"{CM}/namespaces/ns1/pods/%2A/m?labelSelector=a%3Db", headers=[("X-Remote-User", HPA)])
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.text == ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                      '"message":"Internal error occurred: subject access review failed","reason":"InternalError",'
                      '"details":{"causes":[{"message":"subject access review failed"}]},"code":500}')


def test_forbidden_unit_forms() -> None:
    anon = Identity("system:anonymous", ("system:unauthenticated",))
    err = forbidden(anon, request_info("GET", "/openapi/v2"))
    assert status_dict(err)["message"] == 'forbidden: User "system:anonymous" cannot get path "/openapi/v2"'
    assert status_dict(err)["details"] == {}  # Go's NewForbidden always sets (empty) details
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def test_always_allow_and_config_errors(pki: Pki) -> None:
    _, authz = build_security(settings(pki, authorization_mode="AlwaysAllow"), None)
    assert isinstance(authz, AlwaysAllow)
    with pytest.raises(ConfigError, match=r"--authorization-mode AlwaysAllow.*--lister-kubeconfig"):
        build_security(settings(pki), None)
    bad = pki.root / "not-a-cert.pem"
    bad.write_text("hello")
    with pytest.raises(ConfigError, match="--client-ca-file"):
        build_security(Settings(client_ca_file=bad, authorization_mode="AlwaysAllow"), None)


def test_delegated_authorizer_groups_and_paths(kube: KubeClients, fk: FakeKube) -> None:
    authz = DelegatedAuthorizer(kube.auth, always_allow_paths=("/healthz", "/debug/*"))

    async def run() -> None:
        masters = Identity("x", ("system:masters",))
        await authz.authorize(masters, request_info("GET", f"{CM}/namespaces/a/pods/p/m"))
        anon = Identity("system:anonymous", ("system:unauthenticated",))
        await authz.authorize(anon, request_info("GET", "/debug/pprof"))
        await authz.authorize(anon, request_info("GET", "/healthz"))

    asyncio.run(run())
    assert fk.state.sars() == []
