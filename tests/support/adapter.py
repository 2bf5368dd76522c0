"""Start the real ``accel-adapter serve`` process over HTTPS on 127.0.0.1 and talk to it."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tests.support.procs import free_port, python_module, running, wait_http

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Adapter:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def raw_get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
        """(status, response headers, body as sent) without raising on 4xx/5xx."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object], str]:
        """(status, parsed JSON or {}, content type) without raising on 4xx/5xx."""
        status, head, body = self.raw_get(path, headers)
        try:
            doc = json.loads(body) if body else {}
        except json.JSONDecodeError:
            doc = {"_text": body.decode()}
        return status, doc, head.get("Content-Type", "")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one of the adapter's own /metrics series (None when absent)."""
        _, _, body = self.raw_get("/metrics")
        for line in body.decode().splitlines():
            series, _, value = line.rpartition(" ")
            base, _, rest = series.partition("{")
            if base == name and dict(_LABEL.findall(rest)) == labels:
                return float(value)
        return None

    def wait_metric(self, name: str, ok: Callable[[float], bool], timeout: float = 60, **labels: str) -> float:
        """Poll /metrics until ``name{labels}`` satisfies ``ok`` (bounded)."""
        deadline = time.monotonic() + timeout
        value: float | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"adapter exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            value = self.metric(name, **labels)
            if value is not None and ok(value):
                return value
            time.sleep(0.2)
        raise AssertionError(f"{name}{labels or ''} = {value} after {timeout}s\n{self.log_text()[-3000:]}")


@contextlib.contextmanager
def adapter(tmp: Path, prometheus_url: str, *args: str, ready: bool = True,
            env: dict[str, str] | None = None, port: int | None = None) -> Iterator[Adapter]:
    """The adapter serving; with ``ready`` also after its first complete series discovery (readiness
    itself never waits for Prometheus). ``port``: a port chosen beforehand (e.g. one a Prometheus
    already scrapes), else a free one."""
    port = port or free_port()
    log = tmp / f"adapter-{port}.log"
    # relist every second, but look back 15 s: on a loaded machine a 1 s scrape can land late, and a
    # 1 s look-back would drop a series from discovery for that relist
    relist = [] if "--metrics-relist-interval" in args else ["--metrics-relist-interval", "1s"]
    look_back = [] if not relist or "--metrics-max-age" in args else ["--metrics-max-age", "15s"]
    cmd = python_module("adapter", "serve", "--prometheus-url", prometheus_url, "--secure-port", str(port),
                        "--bind-address", "127.0.0.1", "--cert-dir", str(tmp / "certs"),
                        "--authorization-mode", "AlwaysAllow", *relist, *look_back, *args)
    with running(cmd, log, env=env) as proc:
        url = f"https://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/readyz" if ready else f"{url}/livez", timeout=60, proc=proc)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n--- adapter log ---\n{log.read_text(errors='replace')[-3000:]}") from e
        ad = Adapter(url, log, proc)
        if ready:
            ad.wait_metric("accel_adapter_relist_last_success_timestamp_seconds", lambda v: v > 0)
        yield ad
