"""One simulator process and one real Prometheus scraping it (every 1 s) for this directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simulator.stack import CURVE, SEED, Stack
from tests.support.procs import free_port, python_module, running, wait_http
from tests.support.prometheus import prometheus


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from adapter.simulator import Fleet

    tmp: Path = tmp_path_factory.mktemp("simstack")
    port = free_port()
    args = python_module("adapter.simulator", "--port", str(port), "--seed", str(SEED), "--curve", CURVE.shape)
    with running(args, tmp / "simulator.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30, proc=proc)
        with prometheus(tmp, [f"127.0.0.1:{port}"]) as prom:
            # bounded: first scrape lands within ~1-2 s of Prometheus being ready
            res = prom.wait_for("timestamp(kube_node_info)", timeout=30)
            first = min(float(r["value"][1]) for r in res)  # type: ignore[index]
            prom.wait_for("vllm:num_requests_waiting", timeout=15)
            time.sleep(2.5)  # a few more samples so rate() windows have >= 2 points
            fleet = Fleet.build(seed=SEED, curve=CURVE)
            yield Stack(prom=prom, fleet=fleet, sim_url=f"http://127.0.0.1:{port}/metrics", first_sample=first)
