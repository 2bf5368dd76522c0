"""A tenant-enforcing proxy on 127.0.0.1 in front of real Prometheus servers, one per tenant.

``mode="header"`` (Mimir/Cortex): the ``X-Scope-OrgID`` header (configurable) picks the tenant's
Prometheus; a request without it is answered 401 ``no org id`` and one naming an unknown tenant 403,
as Mimir's gateway does. ``mode="param"`` (prom-label-proxy in front of Thanos): the ``namespace``
query parameter (in the URL, as prom-label-proxy reads it) picks the upstream; without it, 400.

Every API request is recorded (path, tenant, the PromQL or ``match[]`` it carried) for the tests to
check on this side of the wire, with ``promql_parser``, what the adapter really sent.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import promql_parser as pp

from tests.support.proxy import forward, serving


@dataclass(frozen=True)
class Received:
    path: str
    tenant: str  # the header's (or parameter's) value, "" when absent
    promql: str  # query= of /api/v1/query, match[]= of /api/v1/series
    status: int


@dataclass
class TenantProxy:
    url: str
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queries(self, since: int = 0) -> list[Received]:
        with self.lock:
            return [r for r in self.received[since:] if r.path == "/api/v1/query"]

    def mark(self) -> int:
        with self.lock:
            return len(self.received)


def selector_branches(promql: str) -> list[list[tuple[str, str, str]]]:
    """Every vector selector's matcher sets (one per ``or`` branch of ``{a="1" or b="2"}``), each as
    ``(label, op, value)``, from promql_parser's own tree (independent of the adapter's code)."""
    out: list[list[tuple[str, str, str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector):
            ms = node.matchers
            groups = ms.or_matchers if ms.or_matchers else [ms.matchers]
            for group in groups:
                out.append([(m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in group])
            if node.name:
                for group in out[len(out) - len(groups):]:
                    group.append(("__name__", "Equal", node.name))

    pp.walk(pp.parse(promql), pre_visit=visit)
    return out


def confined_to(promql: str, label: str, value: str) -> bool:
    """Whether every selector (every branch) of ``promql`` carries ``label="value"``."""
    branches = selector_branches(promql)
    return bool(branches) and all((label, "Equal", value) in b for b in branches)


@contextlib.contextmanager
def tenant_proxy(upstreams: Mapping[str, str], *, mode: str = "header", header: str = "X-Scope-OrgID",
                 param: str = "namespace") -> Iterator[TenantProxy]:
    """``upstreams``: tenant (header mode) or parameter value (param mode) -> Prometheus URL."""
    proxy = TenantProxy(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            args = urllib.parse.parse_qs(parsed.query)
            form = urllib.parse.parse_qs(body.decode()) if body else {}
            promql = (args.get("query") or form.get("query") or args.get("match[]") or form.get("match[]")
                      or [""])[0]
            tenant = self.headers.get(header, "") if mode == "header" else (args.get(param) or [""])[0]
            upstream = upstreams.get(tenant)
            if not tenant:
                status, data = (401, b"no org id") if mode == "header" else \
                    (400, f'the "{param}" query parameter must be provided'.encode())
            elif upstream is None:
                status, data = 403, b"unknown tenant"
            else:
                status, data = forward(upstream, self, body)
            with proxy.lock:
                proxy.received.append(Received(parsed.path, tenant, promql, status))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = _forward
        do_POST = _forward

        def log_message(self, *_: object) -> None:
            return

    with serving(Handler) as proxy.url:
        yield proxy
