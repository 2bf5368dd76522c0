"""A real VictoriaMetrics single-node server for tests (Debian's ``victoria-metrics``), on 127.0.0.1.

A second Prometheus-compatible engine next to ``tests.support.prometheus``: it scrapes targets
itself (``-promscrape.config``), serves ``/api/v1/query`` and ``/api/v1/series``. Each instance has
its own temporary config and data directory. ``-search.latencyOffset=0s``: by default VictoriaMetrics
hides the last 30 s of samples from instant queries, which would make every fresh value look missing.
Fails with an install hint when the binary is missing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import free_port, require_binary, running, wait_http
from tests.support.prometheus import Prometheus


@contextlib.contextmanager
def victoria(tmp: Path, targets: list[str], scrape_interval: str = "1s", port: int | None = None
             ) -> Iterator[Prometheus]:
    """Start VictoriaMetrics scraping ``targets`` (``host:port``) and wait until it answers (bounded).
    The handle is ``tests.support.prometheus.Prometheus``: the same query API."""
    binary = require_binary("victoria-metrics", "apt-get install -y victoria-metrics")
    port = port or free_port()
    home = tmp / f"victoria-{port}"
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "scrape.yml"
    cfg.write_text(json.dumps({
        "global": {"scrape_interval": scrape_interval},
        "scrape_configs": [{"job_name": "test", "honor_labels": True, "static_configs": [{"targets": targets}]}],
    }))
    log = home / "victoria.log"
    args = [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={home / 'data'}",
            f"-promscrape.config={cfg}", "-search.latencyOffset=0s", "-search.disableCache",
            "-loggerLevel=WARN", "-retentionPeriod=1d"]
    with running(args, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", timeout=60, proc=proc)
        yield Prometheus(url=url, port=port, log=log)
