"""QueryRunner parses every query before sending it; one that does not parse is a bug, never sent."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapter.errors import InternalError
from adapter.model import QueryResult
from adapter.provider.runner import QueryRunner


def make() -> tuple[QueryRunner, list[str]]:
    sent: list[str] = []

    async def query(promql: str) -> QueryResult:
        sent.append(promql)
        return QueryResult((), 1000.0)

    return QueryRunner(query, ttl=0, max_entries=10), sent


@pytest.mark.parametrize("promql", [
    'sum(x{namespace="}",pod=~""} or vector(1) #"}) by (pod)',
    'x{namespace="\\d+"}',
    "sum(x{pod=~\"\"}) by (",
    "",
], ids=["injected", "bad-escape", "unclosed", "empty"])
def test_unparsable_query_is_never_sent(promql: str, caplog: pytest.LogCaptureFixture) -> None:
    runner, sent = make()
    with caplog.at_level(logging.ERROR, logger="adapter.provider.runner"), pytest.raises(InternalError) as exc:
        asyncio.run(runner.run(promql, where="rules[3]"))
    assert sent == []
    assert exc.value.code == 500 and "unable to fetch metrics" in exc.value.message
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert getattr(record, "rule") == "rules[3]" and getattr(record, "promql") == promql  # noqa: B009


def test_query_that_parses_is_sent() -> None:
    runner, sent = make()
    asyncio.run(runner.run('avg(x{namespace="ns1",pod=~"p1|p2"}) by (pod)', where="rules[0]"))
    assert sent == ['avg(x{namespace="ns1",pod=~"p1|p2"}) by (pod)']
