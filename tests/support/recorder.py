"""A recording HTTPS server on 127.0.0.1 playing a delegate metrics server.

Records every request (path with query string, headers) and answers what the test sets: one
``(status, body, content type, extra headers)`` for every path, or per path; ``stall`` holds
requests (a hung delegate; setting it to 0 releases them).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Reply = tuple[int, bytes, str, dict[str, str]]
RESOURCE_LIST = (b'{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"external.metrics.k8s.io/v1beta1",'
                 b'"resources":[{"name":"keda-metric","singularName":"","namespaced":true,'
                 b'"kind":"ExternalMetricValueList","verbs":["get"]}]}')


@dataclass
class Recorder:
    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    reply: Reply = (200, b'{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",'
                         b'"metadata":{},"items":[]}', "application/json", {})
    replies: dict[str, Reply] = field(default_factory=dict)  # path (without the query string) -> reply
    stall: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def metric_requests(self) -> list[tuple[str, dict[str, str]]]:
        """The requests for metric values (not the discovery fetches)."""
        with self.lock:
            return [r for r in self.requests if "/namespaces/" in r[0]]


@contextlib.contextmanager
def recorder(cert: Path, key: Path) -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with rec.lock:
                rec.requests.append((self.path, dict(self.headers.items())))
                reply = rec.replies.get(self.path.split("?", 1)[0], rec.reply)
            held = time.monotonic()
            while rec.stall and time.monotonic() - held < rec.stall:
                time.sleep(0.05)
            status, body, ctype, extra = reply
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    rec.url = f"https://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield rec
    finally:
        rec.stall = 0
        server.shutdown()
        server.server_close()
