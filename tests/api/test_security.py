"""SecurityMiddleware at the ASGI level: identity in scope state, RequestInfo from the raw path, passthrough."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from adapter.api.authn import ANONYMOUS
from adapter.api.requestinfo import RequestInfo
from adapter.api.security import SecurityMiddleware
from adapter.errors import Unauthorized
from adapter.model import Identity


class FixedAuthn:
    def __init__(self, who: Identity | None) -> None:
        self.who = who

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Identity:
        if self.who is None:
            raise Unauthorized("Unauthorized")
        return self.who


class RecordingAuthz:
    def __init__(self) -> None:
        self.seen: list[RequestInfo] = []

    async def authorize(self, identity: Identity, info: RequestInfo) -> None:
        self.seen.append(info)


def call(mw: SecurityMiddleware, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    asyncio.run(mw(scope, receive, send))
    return sent


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["state"]["identity"].user.encode()})


def test_identity_stored_and_raw_path_parsed() -> None:
    authz = RecordingAuthz()
    mw = SecurityMiddleware(ok_app, FixedAuthn(Identity("bob")), authz)
    scope = {"type": "http", "method": "GET", "path": "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/*/m",
             "raw_path": b"/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/%2A/m",
             "query_string": b"labelSelector=x%3Dy", "headers": []}
    sent = call(mw, scope)
    assert sent[1]["body"] == b"bob"
    assert scope["state"]["identity"] == Identity("bob")
    assert (authz.seen[0].name, authz.seen[0].verb, authz.seen[0].label_selector) == ("*", "get", "")


def test_unauthorized_status_and_non_http_passthrough() -> None:
    mw = SecurityMiddleware(ok_app, FixedAuthn(None), RecordingAuthz())
    sent = call(mw, {"type": "http", "method": "GET", "path": "/x", "headers": [], "state": {}})
    assert sent[0]["status"] == 401
    seen: list[str] = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(SecurityMiddleware(lifespan_app, FixedAuthn(ANONYMOUS), RecordingAuthz())(
        {"type": "lifespan"}, lambda: None, lambda m: None))  # type: ignore[arg-type,return-value]
    assert seen == ["lifespan"]


def test_empty_path_segment_is_not_found_before_authorization() -> None:
    """``pods/*//m`` would be authorized as ``pods`` without subresource, ``namespaces//ns1/...`` as
    cluster-scoped: neither reaches the authorizer or the app."""
    for raw in (b"/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/%2A//m",
                b"/apis/custom.metrics.k8s.io/v1beta2/namespaces//ns1/pods/p1/m",
                b"/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/p1%2F%2Fm",
                b"/apis//"):
        authz = RecordingAuthz()
        mw = SecurityMiddleware(ok_app, FixedAuthn(Identity("bob")), authz)
        sent = call(mw, {"type": "http", "method": "GET", "path": raw.decode(), "raw_path": raw,
                         "query_string": b"", "headers": []})
        assert sent[0]["status"] == 404, raw
        assert b'"code":404' in sent[1]["body"] and b'"kind":"Status"' in sent[1]["body"]
        assert authz.seen == [], raw
