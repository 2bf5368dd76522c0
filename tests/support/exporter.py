"""A tiny Prometheus exporter for the core tests: serves the series described in a JSON file.

Run: ``python -m tests.support.exporter --port N --file series.json``. The file is re-read on every
scrape, so tests change values (or remove a series, or write "NaN") by rewriting it. Format:
``[{"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p1"}, "value": 87.5}, ...]``.
Optional per series: ``"age": 120`` exposes the sample with an explicit timestamp that many seconds
in the past (as a federated, remote-written or delayed exporter does); ``"per_second": 2`` makes the
value grow by that much per second of that timestamp (a counter).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(v: float | str) -> str:
    if isinstance(v, str):
        return v
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def render(series: list[dict[str, object]], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = []
    for s in series:
        labels = s.get("labels") or {}
        assert isinstance(labels, dict)
        lbl = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        value = s["value"]
        assert isinstance(value, float | int | str)
        age, per_second = s.get("age"), s.get("per_second")
        if age is None:
            lines.append(f"{s['name']}{{{lbl}}} {_fmt(value)}")
            continue
        assert isinstance(age, int | float)
        ts = now - age
        if per_second is not None:
            assert isinstance(per_second, int | float) and not isinstance(value, str)
            value = float(value) + float(per_second) * ts
        lines.append(f"{s['name']}{{{lbl}}} {_fmt(value)} {int(ts * 1000)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", required=True)
    args = ap.parse_args()
    path = Path(args.file)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render(json.loads(path.read_text())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
