"""HTTP server for the simulated exporters (stdlib ``ThreadingHTTPServer``).

``/metrics``  the whole fleet in Prometheus text format 0.0.4
``/-/ready``, ``/healthz``  ``ok``
``/truth``    JSON ground truth at the current time (``?window=60``), keys ``namespace/name``
"""

from __future__ import annotations

import json
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from adapter.simulator.fleet import Fleet

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def truth_json(fleet: Fleet, now: float, window: float) -> dict[str, object]:
    t = fleet.truth(now, window)

    def table(tbl: dict[str, dict[tuple[str, str], float]]) -> dict[str, dict[str, float]]:
        return {m: {f"{ns}/{name}": v for (ns, name), v in sorted(vals.items())} for m, vals in sorted(tbl.items())}

    return {"time": now, "window": window, "custom": table(t.custom), "external": table(t.external)}


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fleet: Fleet) -> None:
        self.fleet = fleet
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/metrics"


class _Handler(BaseHTTPRequestHandler):
    server: SimulatorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return  # scrapes every second would flood the terminal

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/metrics":
            self._send(200, self.server.fleet.render(time.time()).encode(), CONTENT_TYPE)
        elif url.path in ("/-/ready", "/-/healthy", "/healthz", "/readyz"):
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif url.path == "/truth":
            q = urllib.parse.parse_qs(url.query)
            try:
                window = float(q.get("window", ["60"])[0])
            except ValueError:
                self._send(400, b"window: not a number\n", "text/plain; charset=utf-8")
                return
            body = json.dumps(truth_json(self.server.fleet, time.time(), window), indent=1).encode()
            self._send(200, body, "application/json")
        else:
            self._send(404, b"not found: try /metrics\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET
