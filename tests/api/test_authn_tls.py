"""Delegated authentication over real TLS: front-proxy headers are trusted only from the right certificate.

Everything goes through a real uvicorn HTTPS server running ``TLSH11Protocol`` + ``SecurityMiddleware``
with the SubjectAccessReviews and TokenReviews answered by the fake Kubernetes API (real client).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.api.security import build_security
from adapter.api.tlsproto import TLSH11Protocol, build_server_ssl_context, tls_extension, tls_protocol_class
from adapter.backends.kubernetes import KubeClients
from adapter.settings import Settings
from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki, SecureServer

DISCOVERY = "/apis/custom.metrics.k8s.io/v1beta2"
SPOOF = [("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters")]
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


@pytest.fixture
def fk(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(tmp_path / "kube") as fake:
        # RBAC stand-in: alice, bob and the HPA may read; everyone else gets no opinion
        fake.state.sar_rule = lambda spec: (spec["user"] in ("alice", "bob", "carol"), False, "")
        fake.state.users["good-token"] = {"username": "carol", "uid": "c-1", "groups": ["ci"]}
        yield fake


def flag_settings(pki: Pki, **kw: Any) -> Settings:
    base = Settings(requestheader_client_ca_file=pki.cert("front-proxy-ca"),
                    requestheader_allowed_names=("front-proxy-client",),
                    client_ca_file=pki.cert("client-ca"))
    return replace(base, **kw)


def serve(pki: Pki, settings: Settings, kube: KubeClients | None,
          protocol: type[Any] = TLSH11Protocol) -> SecureServer:
    authn, authz = build_security(settings, kube.auth if kube else None)
    ca_pems = asyncio.run(authn.trust_bundle())
    ctx = build_server_ssl_context(str(pki.cert("serving")), str(pki.key("serving")), ca_pems)
    authn.attach_ssl_context(ctx)
    return SecureServer(pki, ctx, authn, authz, protocol=protocol)


@pytest.fixture(params=["h11", "httptools"])
def server(request: pytest.FixtureRequest, pki: Pki, kube: KubeClients) -> Iterator[SecureServer]:
    # both protocol classes serve the real adapter: h11 always, httptools (what serve picks) when installed
    protocol = TLSH11Protocol if request.param == "h11" else tls_protocol_class()
    assert request.param == "h11" or protocol.__name__ == "TLSHttpToolsProtocol", "pip install httptools"
    with serve(pki, flag_settings(pki), kube, protocol) as srv:
        yield srv


def get(srv: SecureServer, cert: str | None, path: str = DISCOVERY,
        headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    with srv.client(cert) as c:
        return c.get(path, headers=headers or [])


def test_front_proxy_identity_with_repeated_groups_and_encoded_extra(server: SecureServer, fk: FakeKube) -> None:
    headers = [("X-Remote-User", "bob"), ("X-Remote-Group", "g1,with-comma"), ("X-Remote-Group", "g2"),
               ("X-Remote-Uid", "ignored-without-uid-headers"),
               ("X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id", "JTI=1"),
               ("X-Remote-Extra-Scopes", "a"), ("X-Remote-Extra-Scopes", "b")]
    r = get(server, "front-proxy-client", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["identity"] == {"user": "bob", "groups": ["g1,with-comma", "g2", "system:authenticated"],
                                "uid": "", "extra": {"authentication.kubernetes.io/credential-id": ["JTI=1"],
                                                     "scopes": ["a", "b"]}}
    assert not [h for h, _ in body["headers"] if h.startswith("x-remote-")]  # removed before the app
    assert body["tls"] is True
    assert fk.state.sars()[-1] == {
        "nonResourceAttributes": {"path": DISCOVERY, "verb": "get"}, "user": "bob",
        "groups": ["g1,with-comma", "g2", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": ["JTI=1"], "scopes": ["a", "b"]}}


def test_aggregator_availability_check_needs_no_sar(server: SecureServer, fk: FakeKube) -> None:
    r = get(server, "front-proxy-client", headers=[("X-Remote-User", "system:kube-aggregator"),
                                                   ("X-Remote-Group", "system:masters")])
    assert r.status_code == 200
    assert r.json()["identity"]["groups"] == ["system:masters", "system:authenticated"]
    assert fk.state.sars() == []


def test_spoofed_headers_without_certificate_are_anonymous(server: SecureServer, fk: FakeKube) -> None:
    r = get(server, None, headers=SPOOF)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    assert r.json()["message"] == f'forbidden: User "system:anonymous" cannot get path "{DISCOVERY}"'
    assert fk.state.sars() == [{"nonResourceAttributes": {"path": DISCOVERY, "verb": "get"},
                                "user": "system:anonymous", "groups": ["system:unauthenticated"]}]


def test_spoofed_headers_with_cn_not_allowed_are_401(server: SecureServer, fk: FakeKube) -> None:
    r = get(server, "forbidden-cn", headers=SPOOF)
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert fk.state.sars() == []


def test_certificate_from_foreign_ca_is_401_not_a_handshake_failure(server: SecureServer, fk: FakeKube) -> None:
    # the TLS layer requests but does not verify (Go's tls.RequestClientCert); the authenticators
    # refuse the chain: an error, so 401 on every path, /healthz included, as k8s.io/apiserver's
    # FailOnError(Union(...)) does; a bearer token still authenticates the request
    for path in (DISCOVERY, "/healthz"):
        r = get(server, "foreign", path, headers=SPOOF)
        assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    r = get(server, "foreign", headers=[("Authorization", "Bearer good-token"), *SPOOF])
    assert (r.status_code, r.json()["identity"]["user"]) == (200, "carol")
    assert get(server, None, "/healthz").status_code == 200
    assert [s["user"] for s in fk.state.sars()] == ["carol"]


def test_front_proxy_cert_without_client_auth_usage_is_401(server: SecureServer, fk: FakeKube) -> None:
    r = get(server, "server-usage-only", headers=SPOOF)
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    assert fk.state.sars() == []


def test_client_certificate_identity_ignores_spoofed_headers(server: SecureServer, fk: FakeKube) -> None:
    r = get(server, "alice", headers=SPOOF)
    assert r.status_code == 200, r.text
    who = r.json()["identity"]
    assert (who["user"], who["groups"]) == ("alice", ["devs", "ops", "system:authenticated"])
    assert who["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("X509SHA256=")
    assert fk.state.sars()[-1]["user"] == "alice"


def test_allowed_proxy_cert_without_user_header_is_401(server: SecureServer) -> None:
    r = get(server, "front-proxy-client", headers=[("X-Remote-Group", "system:masters")])
    assert r.status_code == 401


def test_bearer_tokens_reviewed_and_cached(server: SecureServer, fk: FakeKube) -> None:
    for _ in range(3):
        r = get(server, None, headers=[("Authorization", "Bearer good-token"), *SPOOF])
        assert r.status_code == 200, r.text
        assert r.json()["identity"]["user"] == "carol"
        assert not [h for h, _ in r.json()["headers"] if h == "authorization"]
    for _ in range(2):
        r = get(server, None, headers=[("Authorization", "Bearer bad-token")])
        assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    reviews = fk.state.recorded("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
    assert [rv.body["spec"]["token"] for rv in reviews] == ["good-token", "bad-token"]


def test_health_for_probes_without_certificate(server: SecureServer, fk: FakeKube) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        r = get(server, None, path)
        assert r.status_code == 200
        assert r.json()["identity"]["user"] == "system:anonymous"
    assert get(server, None, "/healthz/extra").status_code == 403  # exact match only
    assert [s["nonResourceAttributes"]["path"] for s in fk.state.sars()] == ["/healthz/extra"]


def test_config_from_the_configmap_and_reread_on_change(pki: Pki, fk: FakeKube, kube: KubeClients) -> None:
    fk.set_auth_configmap(pki.auth_configmap_data())
    with serve(pki, Settings(), kube) as srv:
        r = get(srv, "front-proxy-client", headers=[("X-Remote-User", "bob")])
        assert (r.status_code, r.json()["identity"]["user"]) == (200, "bob")
        assert get(srv, "alice").json()["identity"]["user"] == "alice"
        assert get(srv, "forbidden-cn", headers=SPOOF).status_code == 401
        fk.set_auth_configmap({"requestheader-client-ca-file": pki.front_proxy_ca.cert_pem.decode(),
                               "requestheader-allowed-names": '["someone-else"]',
                               "requestheader-username-headers": '["X-Remote-User"]'})
        deadline = time.monotonic() + 5
        while get(srv, "front-proxy-client", headers=[("X-Remote-User", "bob")]).status_code != 401:
            assert time.monotonic() < deadline, "ConfigMap change not picked up"
            time.sleep(0.02)


def test_skip_lookup_and_no_cluster(pki: Pki) -> None:
    with serve(pki, flag_settings(pki, authorization_mode="AlwaysAllow"), None) as srv:
        assert get(srv, "front-proxy-client", headers=[("X-Remote-User", "bob")]).json()["identity"]["user"] == "bob"
        assert get(srv, None, headers=SPOOF).json()["identity"]["user"] == "system:anonymous"
        r = get(srv, None, headers=[("Authorization", "Bearer whatever")])  # no TokenReview without a cluster
        assert r.json()["identity"]["user"] == "system:anonymous"


def test_tls_extension_contents(pki: Pki) -> None:
    ctx = build_server_ssl_context(str(pki.cert("serving")), str(pki.key("serving")),
                                   [pki.front_proxy_ca.cert_pem])
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert tls_extension(None) is None
    assert tls_protocol_class().__name__ in ("TLSH11Protocol", "TLSHttpToolsProtocol")
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope["extensions"]["tls"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class Passthrough:
        async def authenticate(self, scope: Any) -> Any:
            from adapter.api.authn import ANONYMOUS
            return ANONYMOUS

    from adapter.api.authz import AlwaysAllow
    with SecureServer(pki, ctx, Passthrough(), AlwaysAllow(), app=app) as srv:
        assert get(srv, "front-proxy-client").status_code == 204
    assert seen["tls_version"] == 0x0304
    assert isinstance(seen["cipher_suite"], int)
    assert seen["client_cert_chain"] == [pki.cert("front-proxy-client").read_text()]
    assert seen["client_cert_name"] == "CN=front-proxy-client"
