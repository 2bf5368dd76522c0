"""Freshness: what may be served, logged once per object and reason in a window, counted every time."""

from __future__ import annotations

import logging

import pytest

from adapter.cache import LastKnownStore
from adapter.provider.values import LOG_WINDOW_SECONDS, Freshness, Policy


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Freshness, Clock, list[tuple[str, int]]]:
    clock = Clock()
    counted: list[tuple[str, int]] = []
    return (Freshness(LastKnownStore(max_entries=10), 300, clock, None, lambda r, n: counted.append((r, n))),
            clock, counted)


@pytest.mark.parametrize(("value", "data_time", "reason"), [
    (float("nan"), 9_990.0, "non_finite"),
    (float("inf"), 9_990.0, "non_finite"),
    (9.3e15, 9_990.0, "out_of_range"),
    (1.0, None, "no_sample_time"),
    (1.0, 10_000.0 - 301, "stale"),
])
def test_withheld_reasons(value: float, data_time: float | None, reason: str) -> None:
    fresh, clock, counted = make()
    assert not fresh.check(value, data_time, clock.now, 300, "pods/ns/p", "q")
    assert counted == [(reason, 1)]


def test_served_up_to_the_limit() -> None:
    fresh, clock, counted = make()
    assert fresh.check(1.0, clock.now - 300, clock.now, 300, "pods/ns/p", "q")
    assert counted == []


def test_logged_once_per_object_and_reason_in_the_window(caplog: pytest.LogCaptureFixture) -> None:
    fresh, clock, counted = make()
    with caplog.at_level(logging.WARNING, logger="adapter.provider.values"):
        for _ in range(5):
            fresh.check(1.0, clock.now - 999, clock.now, 300, "pods/ns/p", "q")
        fresh.check(1.0, clock.now - 999, clock.now, 300, "pods/ns/other", "q")
        assert len(caplog.records) == 2
        clock.now += LOG_WINDOW_SECONDS
        fresh.check(1.0, clock.now - 999, clock.now, 300, "pods/ns/p", "q")
        assert len(caplog.records) == 3
    assert sum(n for _, n in counted) == 7


def test_rule_max_age_only_tightens_the_global_limit() -> None:
    fresh, _, _ = make()
    assert fresh.limit(Policy(max_age=60)) == 60
    assert fresh.limit(Policy(max_age=3600)) == 300
