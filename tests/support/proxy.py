"""A counting (and optionally stalling) HTTP proxy on 127.0.0.1 in front of a real Prometheus.

Counts requests per path, so tests can assert how many queries reached Prometheus, and can hold
requests to ``stall_paths`` (``/api/v1/query`` unless set) for ``stall`` seconds to play a hung
Prometheus; ``in_flight`` counts the requests being held or forwarded, per path; ``answers`` records
each query with Prometheus's answer.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Proxy:
    url: str
    counts: Counter[str] = field(default_factory=Counter)
    queries: list[str] = field(default_factory=list)
    answers: list[tuple[str, int, bytes]] = field(default_factory=list)  # (query, status, body) per query
    stall: float = 0.0
    stall_paths: frozenset[str] = frozenset({"/api/v1/query"})
    in_flight: Counter[str] = field(default_factory=Counter)
    methods: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.queries.clear()
            self.answers.clear()
            self.methods.clear()
            self.auth.clear()
            self.headers.clear()


@contextlib.contextmanager
def counting_proxy(upstream: str) -> Iterator[Proxy]:
    proxy = Proxy(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with proxy.lock:
                proxy.counts[path] += 1
                proxy.methods.append(f"{self.command} {path}")
                proxy.auth.append(self.headers.get("Authorization", ""))
                proxy.headers.append(dict(self.headers.items()))
                if path == "/api/v1/query":
                    proxy.queries.append(self.path + ((" " + body.decode()) if body else ""))
                proxy.in_flight[path] += 1
            try:
                held = time.monotonic()
                while path in proxy.stall_paths and time.monotonic() - held < proxy.stall:
                    time.sleep(0.05)  # setting stall to 0 releases every held request
                status, data = self._upstream(body)
                if path == "/api/v1/query":
                    with proxy.lock:
                        proxy.answers.append((self.path + ((" " + body.decode()) if body else ""), status, data))
            finally:
                with proxy.lock:
                    proxy.in_flight[path] -= 1
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: fine
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def _upstream(self, body: bytes | None) -> tuple[int, bytes]:
            return forward(upstream, self, body)

        do_GET = _forward
        do_POST = _forward

        def log_message(self, *_: object) -> None:
            return

    with serving(Handler) as proxy.url:
        try:
            yield proxy
        finally:
            proxy.stall = 0


def forward(upstream: str, request: BaseHTTPRequestHandler, body: bytes | None) -> tuple[int, bytes]:
    """``request`` (its method, path and Content-Type) sent on to ``upstream``: (status, body); 502 when
    the upstream cannot be reached."""
    req = urllib.request.Request(upstream + request.path, data=body or None, method=request.command)
    if body:
        req.add_header("Content-Type", request.headers.get("Content-Type", ""))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 502, b"upstream unreachable"


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threading HTTP server with ``handler`` on a free 127.0.0.1 port: its base URL, shut down after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
