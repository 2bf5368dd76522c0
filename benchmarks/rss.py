"""``python -m benchmarks.rss``: where the adapter's memory goes, on 127.0.0.1.

Simulator (100 namespaces x 20 GPU pods) -> real Prometheus -> the adapter with nvidia-dcgm, then
VmRSS/VmHWM of the adapter after: start-up, two closed-loop runs with 16 connections, a run with
500 concurrent TLS connections, and a closed run after it (is the memory given back?).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.stack import discovered_pod_metrics
from tests.support.procs import free_port, python_module, running, wait_http
from tests.support.prometheus import prometheus


def rss(pid: int) -> str:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return f"VmRSS {fields['VmRSS'].strip():>10}  VmHWM {fields['VmHWM'].strip():>10}"


async def closed(url: str, paths: list[str], seconds: float, clients: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the adapter's own self-signed certificate, on loopback
    host, port = url.split("//")[1].split(":")
    end = time.monotonic() + seconds
    done = 0

    async def worker(i: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
        j = i
        while time.monotonic() < end:
            writer.write(f"GET {paths[j % len(paths)]} HTTP/1.1\r\nHost: adapter\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            done += 1
            j += clients
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return done


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="accel-rss-"))
    sim_port, adapter_port = free_port(), free_port()
    sim_cmd = python_module("adapter", "simulate", "--port", str(sim_port), "--namespaces", "100",
                            "--pods-per-namespace", "20")
    with running(sim_cmd, tmp / "simulator.log") as sim:
        wait_http(f"http://127.0.0.1:{sim_port}/metrics", proc=sim)
        with prometheus(tmp, [f"127.0.0.1:{sim_port}"], scrape_interval="5s") as prom:
            prom.wait_for("DCGM_FI_DEV_GPU_UTIL", min_results=1000, timeout=60)
            cmd = python_module("adapter", "serve", "--preset", "nvidia-dcgm", "--prometheus-url", prom.url,
                                "--secure-port", str(adapter_port), "--bind-address", "127.0.0.1", "--cert-dir",
                                str(tmp / "certs"), "--authorization-mode", "AlwaysAllow")
            with running(cmd, tmp / "adapter.log") as ad:
                url = f"https://127.0.0.1:{adapter_port}"
                wait_http(f"{url}/readyz", proc=ad, timeout=60)
                discovered_pod_metrics(url)  # readiness does not wait for the first series discovery
                print(f"{'started':<34} {rss(ad.pid)}")
                text = urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/metrics").read().decode()
                apps = {line.split('namespace="')[1].split('"')[0]: line.split('label_app="')[1].split('"')[0]
                        for line in text.splitlines()
                        if line.startswith("kube_pod_labels") and 'namespace="bench' in line}
                paths = [f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/%2A/"
                         f"nvidia_gpu_utilization_percent?labelSelector=app%3D{app}" for ns, app in apps.items()]
                for label, seconds, clients in (("closed, 16 connections", 20, 16), ("closed again", 20, 16),
                                                ("500 concurrent connections", 10, 500),
                                                ("closed, 16 connections, after", 10, 16)):
                    n = asyncio.run(closed(url, paths, seconds, clients))
                    print(f"{label:<34} {rss(ad.pid)}  ({n / seconds:.0f} req/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
