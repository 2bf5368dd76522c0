"""A counting (and optionally stalling) HTTP proxy on 127.0.0.1 in front of a real Prometheus.

Counts requests per path (and records each query with Prometheus's answer), so tests can assert how
many queries reached Prometheus and what they were, and can hold
``/api/v1/query`` requests for ``stall`` seconds to play a hung Prometheus.
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
            if path == "/api/v1/query" and proxy.stall:
                time.sleep(proxy.stall)
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command)
            if body:
                req.add_header("Content-Type", self.headers.get("Content-Type", ""))
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            except OSError:
                status, data = 502, b"upstream unreachable"
            if path == "/api/v1/query":
                with proxy.lock:
                    proxy.answers.append((self.path + ((" " + body.decode()) if body else ""), status, data))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _forward
        do_POST = _forward

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield proxy
    finally:
        proxy.stall = 0
        server.shutdown()
        server.server_close()
