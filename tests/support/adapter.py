"""Start the real ``accel-adapter serve`` process over HTTPS on 127.0.0.1 and talk to it."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tests.support.procs import free_port, python_module, running, wait_http


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


@contextlib.contextmanager
def adapter(tmp: Path, prometheus_url: str, *args: str, ready: bool = True,
            port: int | None = None) -> Iterator[Adapter]:
    port = port or free_port()
    log = tmp / f"adapter-{port}.log"
    cmd = python_module("adapter", "serve", "--prometheus-url", prometheus_url, "--secure-port", str(port),
                        "--bind-address", "127.0.0.1", "--cert-dir", str(tmp / "certs"),
                        "--authorization-mode", "AlwaysAllow", "--metrics-relist-interval", "1s", *args)
    with running(cmd, log) as proc:
        url = f"https://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/readyz" if ready else f"{url}/livez", timeout=60, proc=proc)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n--- adapter log ---\n{log.read_text(errors='replace')[-3000:]}") from e
        yield Adapter(url, log, proc)
