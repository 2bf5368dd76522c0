"""QueryRunner: every query parsed before it is sent (one that does not parse is a bug, never sent),
and its size estimate against what a decoded Prometheus answer really holds."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import tracemalloc

import pytest

from adapter.backends.prometheus import parse_result
from adapter.errors import InternalError
from adapter.model import DEFAULT_TARGET, QueryResult, Target
from adapter.provider.runner import QueryRunner, _size_of


def make() -> tuple[QueryRunner, list[str]]:
    sent: list[str] = []

    async def query(promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
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



def _answer(samples: int, extra_labels: int) -> str:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"namespace": f"bench-{i % 100:03d}", "pod": f"gpu-app-hd2ptgdr4v-{i:05d}",
                    **{f"label_k{j}": f"value-{j}-{i % 7}" for j in range(extra_labels)}},
         "value": [1764655000.123, f"{i * 1.37:.4f}"]} for i in range(samples)]}})


@pytest.mark.parametrize(("samples", "extra_labels"), [(2000, 0), (2000, 8), (100, 0), (1, 0)])
def test_size_estimate_covers_a_decoded_result(samples: int, extra_labels: int) -> None:
    text = _answer(samples, extra_labels)
    # one decode first, so that one-time allocations of the process (interned keys, decoder state)
    # are not counted as the result's: the estimate is of what each cached result holds
    parse_result(json.loads(_answer(2, extra_labels))["data"]["result"], 0.0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = parse_result(json.loads(text)["data"]["result"], 0.0)
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert real <= _size_of(result) <= 1.3 * real, (real, _size_of(result))
