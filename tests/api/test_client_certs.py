"""Front-proxy CAs made the ways real clusters make them, over real TLS (Go's verification rules).

Each style's CA is the request-header CA of a real uvicorn HTTPS server; its front-proxy client
certificate must authenticate (X-Remote-User honoured) and a certificate from another CA must get a
401 Status, not a reset handshake.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapter.api import tlsproto
from adapter.backends.kubernetes import KubeClients
from adapter.settings import Settings
from tests.api.test_authn_tls import DISCOVERY, UNAUTHORIZED, get, serve
from tests.fakekube import FakeKube
from tests.fakekube.tlsserver import Pki, SecureServer
from tests.support import x509build as xb


@pytest.fixture
def fk(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(tmp_path / "kube") as fake:
        fake.state.sar_rule = lambda spec: (spec["user"] in ("bob", "carol"), False, "")
        fake.state.users["good-token"] = {"username": "carol", "uid": "c-1", "groups": ["ci"]}
        yield fake


def _style(pki: Pki, style: str) -> tuple[Path, str]:
    """(request-header CA bundle, name of the client certificate in ``pki``) for one way of making the CA."""
    out = pki.root / style
    if style.startswith("openssl-req-x509"):  # the system's openssl.cnf defaults: no keyUsage; a v1 client, no EKU
        ca, crt, key = xb.openssl_ca(out, "openssl-front-proxy-ca", key="rsa" if style.endswith("rsa") else "ec")
    elif style == "openssl-noncritical-bc":  # basicConstraints not critical, no keyUsage
        ca, crt, key = xb.openssl_ca(out, "openssl-front-proxy-ca",
                                     ca_extensions="basicConstraints = CA:TRUE\nsubjectKeyIdentifier = hash")
    elif style == "kubeadm":
        kca = xb.kubeadm_ca()
        ca = kca.write(out, "ca")[0]
        crt, key = xb.kubeadm_client(kca).write(out, "client")
    else:  # cert-manager: the bundle holds the self-signed root; the client sends leaf + intermediate
        root, intermediate, leaf = xb.cert_manager_chain()
        ca = root.write(out, "ca")[0]
        crt, key = leaf.write(out, "client", chain=(intermediate,))
    name = f"{style}-client"
    crt.rename(pki.cert(name))
    key.rename(pki.key(name))
    return ca, name


STYLES = ["openssl-req-x509", "openssl-req-x509-rsa", "openssl-noncritical-bc", "kubeadm", "cert-manager"]


@pytest.mark.parametrize("style", STYLES)
def test_front_proxy_ca_as_clusters_make_it(style: str, pki: Pki, fk: FakeKube, kube: KubeClients) -> None:
    ca, client = _style(pki, style)
    settings = Settings(requestheader_client_ca_file=ca, requestheader_allowed_names=("front-proxy-client",),
                        client_ca_file=pki.cert("client-ca"))
    with serve(pki, settings, kube) as srv:
        r = get(srv, client, headers=[("X-Remote-User", "bob"), ("X-Remote-Group", "g1")])
        assert r.status_code == 200, r.text
        assert r.json()["identity"]["user"] == "bob"
        assert r.json()["identity"]["groups"] == ["g1", "system:authenticated"]
        # another CA's certificate, same CN: 401 Status, not a reset handshake; no certificate: health answers
        r = get(srv, "foreign", headers=[("X-Remote-User", "system:admin")])
        assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
        assert get(srv, None, "/healthz").status_code == 200
    assert [s["user"] for s in fk.state.sars()] == ["bob"]


def _server(pki: Pki, kube: KubeClients, ca: Path) -> SecureServer:
    return serve(pki, Settings(requestheader_client_ca_file=ca, requestheader_allowed_names=("front-proxy-client",)),
                 kube)


def test_rejection_logged_once_per_reason_and_subject(pki: Pki, fk: FakeKube, kube: KubeClients,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    ca = xb.kubeadm_ca()
    ca_file = ca.write(pki.root / "logged", "ca")[0]
    expired = xb.make("front-proxy-client", ca, eku=xb.CLIENT_AUTH, not_before=xb.NOW - dt.timedelta(days=2),
                      not_after=xb.NOW - dt.timedelta(days=1))
    expired.write(pki.root, "expired-proxy")
    caplog.set_level(logging.WARNING, logger="adapter.api.authn")
    with _server(pki, kube, ca_file) as srv:
        for _ in range(3):
            assert get(srv, "foreign", DISCOVERY, [("X-Remote-User", "bob")]).status_code == 401
            assert get(srv, "expired-proxy", DISCOVERY, [("X-Remote-User", "bob")]).status_code == 401
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.getMessage().startswith("client certificate rejected")]
    assert len(warnings) == 2, warnings
    foreign, old = warnings
    assert "subject='CN=front-proxy-client', issuer='CN=foreign-ca'" in foreign
    assert "x509: certificate signed by unknown authority" in foreign
    assert "requestheader-client-ca-file: CN=front-proxy-ca" in foreign
    assert "x509: certificate has expired or is not yet valid: current time" in old
    assert fk.state.sars() == []


def _raw_get(srv: SecureServer, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[bytes, ssl.SSLSession]:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
        tls.sendall(f"GET {DISCOVERY} HTTP/1.1\r\nHost: x\r\nX-Remote-User: bob\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        assert tls.session is not None and not tls.session_reused
        return data.split(b"\r\n", 1)[0], tls.session


def test_every_connection_presents_the_whole_chain(pki: Pki, fk: FakeKube, kube: KubeClients) -> None:
    """A resumed TLS session would carry the leaf alone (OpenSSL keeps no intermediates in a ticket):
    resumption is off, so the cert-manager chain verifies on every connection."""
    ca, client = _style(pki, "cert-manager")
    ctx = ssl.create_default_context(cafile=str(pki.cert("serving-ca")))
    ctx.load_cert_chain(pki.cert(client), pki.key(client))
    with _server(pki, kube, ca) as srv:
        status, session = _raw_get(srv, ctx, None)
        assert status == b"HTTP/1.1 200 OK"
        status, _ = _raw_get(srv, ctx, session)
        assert status == b"HTTP/1.1 200 OK"


def test_fallback_where_the_chain_cannot_be_left_to_python(pki: Pki, kube: KubeClients, fk: FakeKube,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Without the OpenSSL hook the context still requests certificates and OpenSSL verifies them
    against the loaded CAs: secure, a foreign certificate fails the handshake; said once at warning."""
    monkeypatch.setattr(tlsproto, "_leave_chain_to_python", lambda ctx: False)
    with _server(pki, kube, pki.cert("front-proxy-ca")) as srv:
        assert get(srv, "front-proxy-client", headers=[("X-Remote-User", "bob")]).json()["identity"]["user"] == "bob"
        with pytest.raises(httpx.HTTPError):
            get(srv, "foreign", headers=[("X-Remote-User", "bob")])
    assert [r.getMessage() for r in caplog.records if "cannot leave" in r.getMessage()] == [
        "cannot leave client-certificate verification to the authenticator on this Python/OpenSSL: "
        "certificates from CAs other than the client CAs fail the TLS handshake"]
