"""A real Prometheus server for tests (Debian's ``prometheus`` package), on 127.0.0.1.

Each instance has its own temporary config and data directory; scrape interval is 1 s so
tests see data quickly. Fails with an install hint when the binary is missing.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import free_port, require_binary, running, wait_http


@dataclass
class Prometheus:
    url: str
    port: int
    log: Path

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 30.0, min_results: int = 1) -> list[dict[str, object]]:
        """Poll until ``promql`` returns at least ``min_results`` samples (bounded)."""
        deadline = time.monotonic() + timeout
        res: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            res = self.query(promql)
            if len(res) >= min_results:
                return res
            time.sleep(0.25)
        raise AssertionError(f"{promql!r} returned {len(res)} results after {timeout}s; see {self.log}")


@contextlib.contextmanager
def prometheus(tmp: Path, targets: list[str], scrape_interval: str = "1s",
               honor_labels: bool = True, extra_args: tuple[str, ...] = (),
               port: int | None = None,
               extra_scrape_configs: tuple[dict[str, object], ...] = ()) -> Iterator[Prometheus]:
    """Start Prometheus scraping ``targets`` (``host:port``) and wait until it is ready (on ``port``, e.g.
    one an adapter already points at, or a free one).

    ``extra_scrape_configs``: more ``scrape_configs`` entries as they are (e.g. an HTTPS target).
    """
    binary = require_binary("prometheus", "apt-get install -y prometheus")
    port = port or free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(json.dumps({
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": "test",
            "honor_labels": honor_labels,
            "static_configs": [{"targets": targets}],
        }, *extra_scrape_configs],
    }))
    data = tmp / "prom-data"
    data.mkdir(exist_ok=True)
    log = tmp / "prometheus.log"
    args = [binary, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *extra_args]
    with running(args, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", timeout=60, proc=proc)
        yield Prometheus(url=url, port=port, log=log)
