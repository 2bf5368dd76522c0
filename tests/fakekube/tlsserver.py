"""Test PKI and a real uvicorn HTTPS server running our TLS protocol class + SecurityMiddleware.

``Pki`` generates every certificate (serving CA, front-proxy CA, client CA, a foreign CA and the
client certificates) into a directory. ``SecureServer`` serves an echo app that answers the
identity and the headers left after authentication.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from adapter.api.security import Authenticates, SecurityMiddleware
from adapter.api.tlsproto import TLSH11Protocol
from adapter.certs import KeyPair, create_ca, issue
from tests.support.procs import free_port, uvicorn_in_thread


class Pki:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.serving_ca = create_ca("serving-ca")
        self.front_proxy_ca = create_ca("kh-front-proxy-ca")
        self.client_ca = create_ca("client-ca")
        self.foreign_ca = create_ca("foreign-ca")
        self.write("serving-ca", self.serving_ca)
        self.write("front-proxy-ca", self.front_proxy_ca)
        self.write("client-ca", self.client_ca)
        self.write("serving", issue(self.serving_ca, "custom-metrics-apiserver", ips=("127.0.0.1",),
                                    dns_names=("localhost", "custom-metrics-apiserver.custom-metrics.svc")))
        self.write("front-proxy-client", issue(self.front_proxy_ca, "front-proxy-client", client=True, server=False))
        self.write("forbidden-cn", issue(self.front_proxy_ca, "not-the-proxy", client=True, server=False))
        self.write("foreign", issue(self.foreign_ca, "front-proxy-client", client=True, server=False))
        self.write("alice", issue(self.client_ca, "alice", orgs=("devs", "ops"), client=True, server=False))
        self.write("server-usage-only", issue(self.front_proxy_ca, "front-proxy-client", server=True))

    def auth_configmap_data(self) -> dict[str, str]:
        """``kube-system/extension-apiserver-authentication`` as kube-apiserver writes it for this PKI."""
        return {
            "client-ca-file": self.client_ca.cert_pem.decode(),
            "requestheader-client-ca-file": self.front_proxy_ca.cert_pem.decode(),
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        }

    def write(self, name: str, kp: KeyPair) -> None:
        kp.write(self.root / f"{name}.crt", self.root / f"{name}.key")

    def cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def client(self, base_url: str, cert: str | None = None) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.cert("serving-ca")))
        if cert is not None:
            ctx.load_cert_chain(self.cert(cert), self.key(cert))
        return httpx.Client(base_url=base_url, verify=ctx, timeout=10)


async def echo_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """Answers ``{"identity": ..., "headers": [...], "tls": bool}``."""
    if scope["type"] != "http":
        return
    who = scope["state"]["identity"]
    body = json.dumps({"identity": {"user": who.user, "groups": list(who.groups), "uid": who.uid,
                                    "extra": {k: list(v) for k, v in who.extra.items()}},
                       "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                       "tls": "tls" in (scope.get("extensions") or {})}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class SecureServer:
    def __init__(self, pki: Pki, ctx: ssl.SSLContext, authenticator: Authenticates, authorizer: Any,
                 app: Any = echo_app, protocol: type[Any] = TLSH11Protocol) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.pki = pki
        config = uvicorn.Config(SecurityMiddleware(app, authenticator, authorizer), host="127.0.0.1", port=self.port,
                                http=protocol, ssl_context_factory=lambda cfg, default: ctx, lifespan="off",
                                log_level="critical", timeout_graceful_shutdown=1)
        self._serving = uvicorn_in_thread(config, "secure-server", start_timeout=10)

    def __enter__(self) -> SecureServer:
        self._serving.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._serving.__exit__(et, e, tb)

    def client(self, cert: str | None = None) -> httpx.Client:
        return self.pki.client(self.url, cert)
