"""Fallback synthetic GPU fleet exporter, used only when ``adapter.simulator`` is not available.

Same command-line contract as the simulator (``--port 0 --namespaces N --pods-per-namespace M``,
prints ``simulator listening on http://127.0.0.1:PORT/metrics``). Exposes, per pod, 8 DCGM
gauges with dcgm-exporter's label set as scraped with ``honorLabels: true`` (``namespace``,
``pod``, ``container``), and ``kube_pod_labels{namespace,pod,label_app}`` as kube-state-metrics
does. Pods are grouped in deployments of ``--pods-per-deployment`` pods: pod
``<ns>-d<j>-<i>`` carries ``label_app="<ns>-d<j>"``.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = (
    ("DCGM_FI_DEV_GPU_UTIL", 0, 100),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", 0, 100),
    ("DCGM_FI_DEV_FB_USED", 1000, 80000),
    ("DCGM_FI_DEV_FB_FREE", 1000, 80000),
    ("DCGM_FI_DEV_POWER_USAGE", 60, 400),
    ("DCGM_FI_DEV_GPU_TEMP", 30, 85),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0, 1),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0, 1),
)


def pods(namespaces: int, per_ns: int, per_deploy: int) -> list[tuple[str, str, str]]:
    out = []
    for n in range(namespaces):
        ns = f"ns-{n:03d}"
        for i in range(per_ns):
            app = f"{ns}-d{i // per_deploy:02d}"
            out.append((ns, f"{app}-{i % per_deploy:03d}", app))
    return out


def render(fleet: list[tuple[str, str, str]], now: float) -> bytes:
    lines: list[str] = []
    for name, lo, hi in METRICS:
        lines.append(f"# TYPE {name} gauge")
        for k, (ns, pod, _) in enumerate(fleet):
            v = lo + (hi - lo) * (0.5 + 0.4 * math.sin(now / 60 + k))
            lines.append(f'{name}{{gpu="0",UUID="GPU-{k:08d}",device="nvidia0",modelName="NVIDIA A100",'
                         f'Hostname="node-{k // 8:04d}",namespace="{ns}",pod="{pod}",container="main"}} '
                         f"{v:.3f}")
    lines.append("# TYPE kube_pod_labels gauge")
    for ns, pod, app in fleet:
        lines.append(f'kube_pod_labels{{namespace="{ns}",pod="{pod}",label_app="{app}",uid="{pod}"}} 1')
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fleet")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--pods-per-namespace", type=int, default=40)
    ap.add_argument("--pods-per-deployment", type=int, default=20)
    args = ap.parse_args()
    fleet = pods(args.namespaces, args.pods_per_namespace, args.pods_per_deployment)
    state = {"body": render(fleet, time.time()), "at": time.monotonic()}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                if time.monotonic() - state["at"] > 1.0:  # type: ignore[operator]
                    state["body"], state["at"] = render(fleet, time.time()), time.monotonic()
                body = state["body"]
            assert isinstance(body, bytes)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"simulator listening on http://127.0.0.1:{server.server_address[1]}/metrics", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
