"""An exporter process serving a JSON-described set of series, and a real Prometheus scraping it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.adapter import Adapter
from tests.support.procs import free_port, python_module, running
from tests.support.prometheus import Prometheus, prometheus

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def exporter_and_prometheus(tmp: Path, series: Sequence[dict[str, object]], *,
                            wait_for: str = "gpu_util", min_results: int = 1) -> Iterator[tuple[Path, Prometheus]]:
    """(series file, Prometheus): rewrite the file to change what the exporter serves on the next scrape."""
    file = tmp / "series.json"
    file.write_text(json.dumps(list(series)))
    port = free_port()
    with running(python_module("tests.support.exporter", "--port", str(port), "--file", str(file)),
                 tmp / "exporter.log", env={"PYTHONPATH": str(ROOT)}), \
            prometheus(tmp, [f"127.0.0.1:{port}"]) as prom:
        prom.wait_for(wait_for, min_results=min_results)
        yield file, prom


def get_ok(ad: Adapter, path: str, timeout: float = 20) -> dict[str, object]:
    """GET until 200 (bounded), e.g. while the first relist or scrape lands."""
    deadline = time.monotonic() + timeout
    status, doc = 0, dict[str, object]()
    while time.monotonic() < deadline:
        status, doc, _ = ad.get(path)
        if status == 200:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"{path}: last answer {status} {doc}")
