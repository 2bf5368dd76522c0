"""Prometheus reachability: one log line per change of state, and no urllib3 retry line per call."""

from __future__ import annotations

import asyncio
import logging

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adapter.backends.prometheus import PrometheusBackend, PrometheusConfig
from adapter.backends.reachability import Reachability
from adapter.errors import Unavailable
from tests.support.procs import free_port

LOGGER = "adapter.backends.prometheus"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def backend_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_state_changes_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    ups: list[bool] = []
    r = Reachability("http://prom", ups.append, clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        r.success()
        r.success()
        for _ in range(100):
            r.failure("[Errno 111] Connection refused", r.started())
        r.success()
        r.success()
    assert ups == [True, False, True]
    assert backend_lines(caplog) == [
        ("INFO", "Prometheus is reachable"),
        ("WARNING", "Prometheus is unreachable; requests answer 503 Status until it is back"),
        ("INFO", "Prometheus is reachable again"),
    ]
    down = next(rec for rec in caplog.records if rec.levelname == "WARNING")
    assert getattr(down, "reason", "") == "[Errno 111] Connection refused"


def test_a_slow_call_while_others_succeed_is_not_an_outage() -> None:
    clock = Clock()
    ups: list[bool] = []
    r = Reachability("http://prom", ups.append, clock)
    slow_started = r.started()
    clock.now += 1
    r.success()  # another call answered while the slow one was running
    clock.now += 9
    r.failure("no answer within 10s", slow_started, timeout=True)
    assert ups == [True] and r.up is True
    r.failure("no answer within 10s", r.started(), timeout=True)  # nothing answered since it started
    assert ups == [True, False]


def test_an_outage_under_load_logs_one_line_and_no_urllib3_retries(caplog: pytest.LogCaptureFixture) -> None:
    ups: list[bool] = []
    backend = PrometheusBackend(PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", timeout=2,
                                                 max_concurrency=4), on_reachable=ups.append)

    async def load() -> list[BaseException | object]:
        return await asyncio.gather(*(backend.query(f"up{{i=\"{i}\"}}") for i in range(40)),
                                    *(backend.series("up", 60) for _ in range(4)), return_exceptions=True)
    try:
        with caplog.at_level(logging.DEBUG - 1):
            caplog.set_level(logging.WARNING, logger="urllib3")
            results = asyncio.run(load())
    finally:
        backend.close()
    assert all(isinstance(r, Unavailable) and r.message == "Prometheus is unreachable" for r in results)
    assert ups == [False]
    warnings = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [(LOGGER, "Prometheus is unreachable; requests answer 503 Status until it is back")]


def test_other_sessions_keep_their_urllib3_retry_warnings(caplog: pytest.LogCaptureFixture) -> None:
    PrometheusBackend(PrometheusConfig(url="http://127.0.0.1:1")).close()  # installs our filter
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=1, connect=1, backoff_factor=0)))
    with caplog.at_level(logging.WARNING, logger="urllib3"), pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    session.close()
    assert any("Retrying" in r.getMessage() for r in caplog.records)
