"""Start the real pieces on 127.0.0.1: fleet simulator(s), Prometheus, the adapter. Bounded waits.

The main fleet (50 namespaces x 40 pods by default) is scraped as job ``fleet``. A second
simulator instance (one namespace of 2,000 pods) is scraped as job ``big`` with its
``namespace`` label rewritten to ``big-<ns>`` by ``metric_relabel_configs``, so one HPA can
select 2,000 pods in one namespace whatever the simulator's own naming is.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import free_port, require_binary, running, wait_http

BIG_PREFIX = "big-"
PRESET = "nvidia-dcgm"
FALLBACK_RULES = Path(__file__).with_name("rules-dcgm.yaml")


class StackError(RuntimeError):
    """A piece of the stack is missing or did not come up; the message says which and why."""


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def _http_json(url: str, timeout: float = 10.0) -> object:
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
        return json.load(r)


def _wait_log(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        m = rx.search(text)
        if m:
            return m
        if proc.poll() is not None:
            raise StackError(f"{proc.args!r} exited with {proc.returncode}; log {log}:\n{text[-2000:]}")
        time.sleep(0.05)
    raise StackError(f"no line matching {pattern!r} in {log} within {timeout}s")


# -- simulator ---------------------------------------------------------------------------------

def simulator_command() -> tuple[list[str], str]:
    """The simulator's command line prefix and its flags help text (fallback: benchmarks.fleet)."""
    if importlib.util.find_spec("adapter.simulator") is not None:
        cmd = [sys.executable, "-m", "adapter.simulator"]
    else:
        cmd = [sys.executable, "-m", "benchmarks.fleet"]
    help_text = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=30,
                               check=False).stdout
    if "--namespaces" not in help_text:
        cmd = [sys.executable, "-m", "benchmarks.fleet"]
        help_text = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=30,
                                   check=False).stdout
    return cmd, help_text


@contextlib.contextmanager
def simulator(tmp: Path, name: str, namespaces: int, pods_per_namespace: int,
              pods_per_deployment: int | None = None, seed: int = 1) -> Iterator[Proc]:
    """One simulator process in synthetic scale mode (one deployment per namespace)."""
    cmd, help_text = simulator_command()
    args = [*cmd, "--port", "0", "--namespaces", str(namespaces), "--pods-per-namespace",
            str(pods_per_namespace)]
    if pods_per_deployment is not None and "--pods-per-deployment" in help_text:
        args += ["--pods-per-deployment", str(pods_per_deployment)]
    if "--seed" in help_text:
        args += ["--seed", str(seed)]
    log = tmp / f"{name}.log"
    with running(args, log) as proc:
        m = _wait_log(log, r"listening on (http://127\.0\.0\.1:\d+)(/\S*)?", proc, timeout=60)
        yield Proc(name, proc, m.group(1) + (m.group(2) or "/metrics"), log)


# -- Prometheus --------------------------------------------------------------------------------

@contextlib.contextmanager
def prometheus(tmp: Path, fleet: str, big: str | None, scrape_interval: str = "5s") -> Iterator[Proc]:
    binary = require_binary("prometheus", "apt-get install -y prometheus")
    port = free_port()

    def job(name: str, url: str, relabel: list[dict[str, object]]) -> dict[str, object]:
        u = urllib.parse.urlsplit(url)
        return {"job_name": name, "honor_labels": True, "metrics_path": u.path or "/metrics",
                "static_configs": [{"targets": [u.netloc]}], "metric_relabel_configs": relabel,
                "scrape_timeout": "4s"}

    jobs = [job("fleet", fleet, [])]
    if big is not None:
        # Same simulator, second instance: prefix its namespaces (both attribution layouts) and
        # tag every series, so nothing collides with the main fleet's identical names.
        relabel: list[dict[str, object]] = [
            {"source_labels": [label], "regex": "(.+)", "target_label": label,
             "replacement": BIG_PREFIX + "$1"} for label in ("namespace", "exported_namespace")]
        relabel.append({"target_label": "bench_fleet", "replacement": "big"})
        jobs.append(job("big", big, relabel))
    cfg = tmp / "prometheus.yml"
    cfg.write_text(json.dumps({"global": {"scrape_interval": scrape_interval,
                                          "evaluation_interval": scrape_interval},
                               "scrape_configs": jobs}))
    data = tmp / "prom-data"
    data.mkdir(exist_ok=True)
    log = tmp / "prometheus.log"
    args = [binary, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with running(args, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", timeout=60, proc=proc)
        yield Proc("prometheus", proc, url, log)


def prom_query(url: str, promql: str) -> list[dict[str, object]]:
    body = _http_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert isinstance(body, dict) and body.get("status") == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def wait_series(url: str, promql: str, want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        res = prom_query(url, promql)
        got = int(float(res[0]["value"][1])) if res else 0  # type: ignore[index]
        if got >= want:
            return
        time.sleep(0.5)
    raise StackError(f"Prometheus: {promql} = {got}, wanted {want} within {timeout}s")


_REQ = re.compile(r'^prometheus_http_requests_total\{([^}]*)\}\s+(\S+)', re.M)


def prom_handler_counts(url: str) -> dict[str, float]:
    """Prometheus's own ``prometheus_http_requests_total`` summed by handler (reads /metrics,
    so reading it does not count as a query)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for labels, value in _REQ.findall(text):
        m = re.search(r'handler="([^"]*)"', labels)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(value)
    return out


def settle(url: str, timeout: float = 60.0) -> float:
    """Wait (bounded) until Prometheus runs no queries (``prometheus_engine_queries`` = 0), so a
    scenario does not inherit the previous one's backlog. Returns the seconds waited."""
    start = time.monotonic()
    rx = re.compile(r"^prometheus_engine_queries\s+(\S+)", re.M)
    while time.monotonic() - start < timeout:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            m = rx.search(r.read().decode())
        if m is None or float(m.group(1)) == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - start


# -- adapter -----------------------------------------------------------------------------------

def preset_available() -> bool:
    try:
        from adapter import rules

        return PRESET in rules.available_presets()
    except Exception:
        return False


def rules_args() -> list[str]:
    """``--preset nvidia-dcgm`` when it exists, else our fallback rules file."""
    return ["--preset", PRESET] if preset_available() else ["--config", str(FALLBACK_RULES)]


def rules_text() -> str:
    if preset_available():
        from adapter import rules

        return rules.preset_text(PRESET)
    return FALLBACK_RULES.read_text()


def adapter_available() -> str | None:
    """None when ``python -m adapter serve`` exists, else the reason it cannot run."""
    if importlib.util.find_spec("adapter.__main__") is None:
        return "adapter/__main__.py does not exist yet (python -m adapter serve)"
    r = subprocess.run([sys.executable, "-m", "adapter", "serve", "--help"], capture_output=True,
                       text=True, timeout=60, check=False)
    if r.returncode != 0:
        return f"`python -m adapter serve --help` failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}"
    return None


@contextlib.contextmanager
def adapter(tmp: Path, name: str, prom_url: str, cache_ttl: str, extra: tuple[str, ...] = (),
            ready_timeout: float = 90.0) -> Iterator[Proc]:
    reason = adapter_available()
    if reason:
        raise StackError(f"adapter not runnable: {reason}")
    port = free_port()
    certs = tmp / f"{name}-certs"
    certs.mkdir(exist_ok=True)
    # as shipped: the default relist interval (1m); the fleet is complete before the adapter starts,
    # and the first relist runs at start-up
    args = [sys.executable, "-m", "adapter", "serve", *rules_args(),
            "--prometheus-url", prom_url, "--secure-port", str(port), "--bind-address", "127.0.0.1",
            "--cert-dir", str(certs), "--authorization-mode", "AlwaysAllow",
            "--cache-ttl", cache_ttl, "--log-level", "warning", *extra]
    log = tmp / f"{name}.log"
    with running(args, log) as proc:
        url = f"https://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/readyz", timeout=ready_timeout, proc=proc)
        except RuntimeError as e:
            raise StackError(f"adapter {name} not ready: {e}; log {log}:\n"
                             f"{log.read_text(errors='replace')[-2000:]}") from e
        yield Proc(name, proc, url, log)


def discovered_pod_metrics(url: str, want: int = 1, timeout: float = 60.0) -> list[str]:
    """Pods metric names from the v1beta2 discovery document (waits for the first relist)."""
    deadline = time.monotonic() + timeout
    names: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            doc = _http_json(f"{url}/apis/custom.metrics.k8s.io/v1beta2")
            assert isinstance(doc, dict)
            names = sorted({r["name"].split("/", 1)[1] for r in doc.get("resources", [])
                            if r.get("name", "").startswith("pods/")})
            if len(names) >= want:
                return names
        time.sleep(0.5)
    raise StackError(f"adapter at {url} lists {len(names)} pods metrics after {timeout}s (wanted {want})")
