"""The HTTP layer over a fake provider (our own seam): what reaches the provider, and what never does."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.types import ASGIApp

from adapter.api.routes import Handlers
from adapter.app import create_app
from adapter.model import CustomMetricInfo, CustomValue, ExternalMetricInfo, ExternalValue, ObjectRef, Selector

CM = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"


class FakeCustom:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def list_metrics(self) -> list[CustomMetricInfo]:
        return []

    async def get_by_name(self, resource: str, namespace: str, name: str, metric: str,
                          metric_selector: Selector) -> CustomValue:
        self.calls.append(("name", resource, namespace, name, metric))
        return CustomValue(ObjectRef("Pod", name, "/v1", namespace), metric, 1.0, 1.0)

    async def get_by_selector(self, resource: str, namespace: str, selector: Selector, metric: str,
                              metric_selector: Selector) -> list[CustomValue]:
        self.calls.append(("selector", resource, namespace, selector.raw, metric))
        return [CustomValue(ObjectRef("Pod", "p1", "/v1", namespace), metric, 1.0, 1.0)]


class FakeExternal:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def list_metrics(self) -> list[ExternalMetricInfo]:
        return []

    async def get(self, namespace: str, metric: str, selector: Selector) -> list[ExternalValue]:
        self.calls.append((namespace, metric))
        return [ExternalValue(metric, {}, 1.0, 1.0)]


@pytest.fixture
def fakes() -> tuple[FakeCustom, FakeExternal]:
    return FakeCustom(), FakeExternal()


@dataclass
class Resp:
    status_code: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One GET through the ASGI app, the scope built as uvicorn builds it (path percent-decoded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def get(self, target: str, headers: dict[str, str] | None = None) -> Resp:
        raw_path, _, query = target.partition("?")
        hdrs = {"host": "adapter.example", **{k.lower(): v for k, v in (headers or {}).items()}}
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "https", "path": urllib.parse.unquote(raw_path), "raw_path": raw_path.encode(),
                 "root_path": "", "query_string": query.encode(), "server": ("127.0.0.1", 443),
                 "client": ("127.0.0.1", 5000), "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()]}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.app(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Resp(start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body)


@pytest.fixture
def client(fakes: tuple[FakeCustom, FakeExternal]) -> Client:
    return Client(create_app(Handlers(fakes[0], fakes[1], 5.0), lambda: (True, "")))


def assert_status(resp: Resp, code: int) -> dict[str, object]:
    assert resp.status_code == code, resp.body
    doc: dict[str, object] = json.loads(resp.body)
    assert doc["kind"] == "Status" and doc["code"] == code
    return doc


@pytest.mark.parametrize(("path", "code"), [
    (f"{CM}/namespaces/%22/pods/train-0/gpu", 404),
    (f"{CM}/namespaces/ml-a/pods/%29%26/gpu", 404),
    (f"{CM}/namespaces/%7D/pods/%22%7D%20or%20vector(1)%20%23/gpu", 404),
    (f"{CM}/namespaces/Ns1/pods/p1/gpu", 404),
    (f"{CM}/namespaces/{'a' * 64}/pods/p1/gpu", 404),
    (f"{CM}/namespaces/ns1/pods/{'a' * 254}/gpu", 404),
    (f"{CM}/namespaces/ns1/pods/p1/gpu%7Bx%7D", 404),
    (f"{CM}/namespaces/ns1/pods/p1/a%7Cb", 404),
    (f"{CM}/namespaces/%2E%2E/pods/p1/gpu", 400),
    (f"{CM}/namespaces/ns1/pods/%25/gpu", 400),
    (f"{CM}/namespaces/ns1/pods/p1/%2E", 400),
    (f"{CM}/nodes/node%5C1/temp", 404),
    (f"{CM}/namespaces/a%7Cb/metrics/gpu", 404),
    (f"{CM}/namespaces/ns1/services/1web/rps", 404),
    (f"{EM}/namespaces/%5Cd%2B/queue", 404),
    (f"{EM}/namespaces/ns1/queue%22", 404),
    (f"{EM}/namespaces/%25/queue", 400),
], ids=["ns-quote", "name-paren-amp", "injection", "ns-upper", "ns-64", "name-254", "metric-braces",
        "metric-pipe", "ns-dotdot", "name-percent", "metric-dot", "node-backslash", "ns-metric-pipe",
        "service-dns1035", "external-ns-regex", "external-metric-quote", "external-ns-percent"])
def test_invalid_names_answer_status_before_the_provider(client: Client, fakes: tuple[FakeCustom, FakeExternal],
                                                         path: str, code: int) -> None:
    assert_status(client.get(path), code)
    assert fakes[0].calls == [] and fakes[1].calls == []


@pytest.mark.parametrize(("path", "call"), [
    (f"{CM}/namespaces/ns1/pods/p2.dotted/gpu_util", ("name", "pods", "ns1", "p2.dotted", "gpu_util")),
    (f"{CM}/namespaces/ns1/pods/%2A/gpu_util", ("selector", "pods", "ns1", "", "gpu_util")),
    (f"{CM}/nodes/node-1.example/node:temp.celsius", ("name", "nodes", "", "node-1.example", "node:temp.celsius")),
    (f"{CM}/namespaces/ml-a/metrics/gpu", ("name", "namespaces", "", "ml-a", "gpu")),
    (f"{CM}/namespaces/ns1/pods/p1/gpu_util/", ("name", "pods", "ns1", "p1", "gpu_util")),
], ids=["pod", "all-pods", "node", "namespace-metric", "trailing-slash"])
def test_valid_names_reach_the_provider(client: Client, fakes: tuple[FakeCustom, FakeExternal], path: str,
                                        call: tuple[object, ...]) -> None:
    assert client.get(path).status_code == 200
    assert fakes[0].calls == [call]


@pytest.mark.parametrize("path", [
    f"{CM}/namespaces/ns1/pods/*//gpu_util",
    f"{CM}/namespaces//ns1/pods/p1/gpu_util",
    f"{CM}//namespaces/ns1/pods/p1/gpu_util",
    f"{CM}/namespaces/ns1/pods/p1/gpu_util//",
    f"{EM}/namespaces//ns1/queue",
], ids=["before-metric", "before-namespace", "after-version", "trailing-double", "external"])
def test_empty_path_segments_are_not_found(client: Client, fakes: tuple[FakeCustom, FakeExternal],
                                           path: str) -> None:
    assert_status(client.get(path), 404)
    assert fakes[0].calls == [] and fakes[1].calls == []


@pytest.mark.parametrize("path", ["/healthz/", "/readyz/", "/livez/", "/apis//", f"{CM}/namespaces/ns1/pods/p1//",
                                  "/apis/custom.metrics.k8s.io/"])
def test_no_slash_redirect_to_the_host_header(client: Client, path: str) -> None:
    resp = client.get(path, headers={"Host": "evil.example"})
    assert "location" not in resp.headers
    assert_status(resp, 404)


def test_external_valid_request_reaches_the_provider(client: Client, fakes: tuple[FakeCustom, FakeExternal]
                                                     ) -> None:
    assert client.get(f"{EM}/namespaces/ns1/queue_depth").status_code == 200
    assert fakes[1].calls == [("ns1", "queue_depth")]
