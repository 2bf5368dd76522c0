"""``accel-adapter demo``: simulator -> real Prometheus -> this adapter -> what an HPA would decide, live.

Starts three processes on 127.0.0.1 (the fleet simulator, Debian's ``prometheus`` with its own
temporary config and data directory, and ``accel-adapter serve`` with every preset), then polls
the exact URLs the HPA controller sends and prints, per workload, the value the HPA reads and the
replica count it would choose (``adapter.hpa``), with the metric and API path so a row maps to an
HPA manifest. The first table waits for the first samples. Ctrl-C (or ``--duration``) stops
everything, removes the temporary directory (nothing is left running) and writes a PNG timeline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from adapter.demo_hpa import HpaState, Workload
from adapter.demo_plot import write_plot

WORKLOADS: tuple[Workload, ...] = (  # replicas: the simulated Deployments' sizes (adapter.simulator.demo)
    Workload("vLLM llama3-8b: queue depth", "pods", "ml-serving", "vllm_requests_waiting",
             "app=llama3-8b", target=5.0, min_replicas=1, max_replicas=10, replicas=3),
    Workload("vLLM llama3-8b: GPU utilization %", "pods", "ml-serving", "nvidia_gpu_utilization_percent",
             "app=llama3-8b", target=60.0, min_replicas=1, max_replicas=10, replicas=3),
    Workload("Triton vision: pending requests", "pods", "ml-serving", "triton_pending_requests",
             "app=vision", target=4.0, min_replicas=1, max_replicas=8, replicas=2),
    Workload("vLLM on Neuron: NeuronCore utilization", "pods", "ml-serving",
             "neuron_core_utilization_ratio", "app=neuron-llama32-3b", target=0.7, min_replicas=1,
             max_replicas=6, replicas=1),
    Workload("TGI mistral-7b: queue per model", "external", "chat", "tgi_requests_waiting",
             "", target=8.0, min_replicas=1, max_replicas=8, average=True, replicas=2),
)
FIRST_SAMPLES_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Procs:
    tmp: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.children):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.children):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def _get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:  # noqa: S310 - loopback only
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def _wait(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, ctx: ssl.SSLContext | None = None,
          timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}); its log:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            if _get(url, ctx, timeout=2)[0] == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not become ready within {timeout:g}s; see {log}")


@contextlib.contextmanager
def stack(args: argparse.Namespace) -> Iterator[tuple[str, ssl.SSLContext]]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise RuntimeError("Debian's 'prometheus' is not installed: run scripts/setup (or apt-get install prometheus)")
    tmp = Path(tempfile.mkdtemp(prefix="accel-demo-"))
    procs = Procs(tmp)
    try:
        sim_port, prom_port, adapter_port = _free_port(), _free_port(), _free_port()
        sim = procs.start("simulator", [sys.executable, "-m", "adapter", "simulate", "--port", str(sim_port),
                                        "--curve", args.curve, "--period", args.period])
        _wait(f"http://127.0.0.1:{sim_port}/metrics", sim, "simulator", tmp / "simulator.log")
        (tmp / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "scrape_configs": [{"job_name": "fleet", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{sim_port}"]}]}]}))
        prom = procs.start("prometheus", [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
                                          f"--storage.tsdb.path={tmp / 'data'}",
                                          f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"])
        _wait(f"http://127.0.0.1:{prom_port}/-/ready", prom, "prometheus", tmp / "prometheus.log")
        time.sleep(5)  # two scrapes, so rate() and histogram_quantile() have data
        presets = [a for p in ("nvidia-dcgm", "aws-neuron", "vllm", "triton", "tgi") for a in ("--preset", p)]
        adapter = procs.start("adapter", [
            sys.executable, "-m", "adapter", "serve", *presets, "--prometheus-url", f"http://127.0.0.1:{prom_port}",
            "--secure-port", str(adapter_port), "--bind-address", "127.0.0.1", "--cert-dir", str(tmp / "certs"),
            "--authorization-mode", "AlwaysAllow", "--metrics-relist-interval", "10s", "--cache-ttl", "2s"])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        base = f"https://127.0.0.1:{adapter_port}"
        _wait(f"{base}/readyz", adapter, "adapter", tmp / "adapter.log", ctx)
        # readiness does not wait for Prometheus: wait for the first series discovery to serve a metric
        _wait(base + WORKLOADS[0].path(), adapter, "adapter's first series discovery", tmp / "adapter.log", ctx)
        # the server's own certificate is in cert-dir: from here on, verify it
        ctx = ssl.create_default_context(cafile=str(tmp / "certs" / "apiserver.crt"))
        ctx.check_hostname = False
        yield base, ctx
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_first_samples(base: str, ctx: ssl.SSLContext, states: list[HpaState],
                       timeout: float = FIRST_SAMPLES_TIMEOUT) -> float:
    """Poll every workload's URL until each has a value (bounded); returns the seconds waited."""
    print("waiting for the first scrapes (Prometheus needs two samples for rates and quantiles) ...",
          flush=True)
    start = time.monotonic()
    pending = {st.workload.path() for st in states}
    while pending and time.monotonic() - start < timeout:
        for path in sorted(pending):
            code, body = _get(base + path, ctx)
            items = json.loads(body or b"{}").get("items") if code == 200 else None
            if items:
                pending.discard(path)
        if pending:
            time.sleep(1.0)
    waited = time.monotonic() - start
    if pending:
        print(f"  still no value after {waited:.0f}s for: {', '.join(sorted(pending))}", flush=True)
    return waited


def _header(states: list[HpaState]) -> str:
    lines = ["each HPA reads one metric; the API path it sends (kubectl get --raw PATH shows the same):"]
    lines += [f"  {st.workload.title:<40} GET {st.workload.path()}" for st in states]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    stop = {"now": False}

    def on_signal(*_: object) -> None:
        stop["now"] = True
    signal.signal(signal.SIGTERM, on_signal)
    states = [HpaState(w) for w in WORKLOADS]
    started = time.monotonic()
    try:
        with stack(args) as (base, ctx):
            print(f"adapter ready at {base} (simulated fleet, real Prometheus); Ctrl-C stops everything\n", flush=True)
            print(_header(states) + "\n", flush=True)
            waited = wait_first_samples(base, ctx, states)
            print(f"first samples after {waited:.0f}s\n", flush=True)
            started = time.monotonic()
            while not stop["now"] and (args.duration <= 0 or time.monotonic() - started < args.duration):
                now = time.monotonic() - started
                print(f"--- t={now:5.0f}s " + "-" * 86, flush=True)
                for st in states:
                    code, body = _get(base + st.workload.path(), ctx)
                    st.observe(code, json.loads(body or b"{}"), now)
                    print(st.render(args.show_paths), flush=True)
                time.sleep(max(0.0, args.interval))
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    ok = all(st.successes > 0 for st in states)
    print("\nsummary: " + ", ".join(f"{st.workload.metric}={st.successes} reads" for st in states), flush=True)
    if args.plot and any(st.history for st in states):
        try:
            print(f"plot of each workload's metric, target and replicas: {write_plot(states, Path(args.plot))}",
                  flush=True)
        except ImportError:
            print("no plot: matplotlib is missing (pip install 'accel-metrics-adapter[demo]')", flush=True)
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="simulated fleet -> real Prometheus -> this adapter -> HPA decisions, live")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between HPA syncs (default 5)")
    p.add_argument("--curve", default="spike", help="simulator load curve (flat, ramp, spike, wave)")
    p.add_argument("--period", default="60s", help="simulator load curve period")
    p.add_argument("--show-paths", action="store_true", help="print the API path under every row")
    p.add_argument("--plot", default="accel-demo.png",
                   help="PNG written at the end (or on Ctrl-C): each workload's metric, target and replicas "
                        "over time (default accel-demo.png; '' for none)")
    p.set_defaults(func=run)

