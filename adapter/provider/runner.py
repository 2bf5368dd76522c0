"""Runs PromQL for the providers: result cache with TTL, single-flight, and freshness accounting."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from adapter.cache import QueryCache
from adapter.model import QueryResult

QueryFn = Callable[[str], Awaitable[QueryResult]]


# what a parsed result holds (tracemalloc over decoded Prometheus answers): per sample the Sample,
# its two floats and its labels dict; per label the value string and the dict slot (names are
# shared within one answer, counted anyway); within 10% above the real size for 2 to 10 labels
RESULT_BYTES = 200
SAMPLE_BYTES = 280
LABEL_BYTES = 60
# one cache entry beyond its result: the OrderedDict slot and link, the entry record, the heap record
ENTRY_BYTES = 350


def _size_of(result: QueryResult) -> int:
    return RESULT_BYTES + sum(SAMPLE_BYTES + sum(LABEL_BYTES + len(k) + len(v) for k, v in s.labels.items())
                              for s in result.samples)


class QueryRunner:
    """``run(promql)`` -> QueryResult, shared by identical concurrent requests and cached for the TTL.

    A hit in the last 20% of an entry's TTL reloads it in the background (refresh-ahead), so the
    HPA's steady request pattern never waits for an expired entry. With ``ttl == 0`` nothing is
    stored (prometheus-adapter's behaviour: one query per request), but identical requests in
    flight at the same moment still share one query.
    """

    def __init__(self, query: QueryFn, *, ttl: float, max_entries: int,
                 on_event: Callable[[str], None] | None = None,
                 clock: Callable[[], float] | None = None, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._query = query
        self.ttl = ttl
        kwargs = {"clock": clock} if clock is not None else {}
        self.cache: QueryCache[str, QueryResult] = QueryCache(
            ttl=ttl, max_entries=max_entries, on_event=on_event, size_of=_size_of, max_bytes=max_bytes,
            refresh_ahead=0.2, entry_bytes=ENTRY_BYTES,
            **kwargs)

    @property
    def caching(self) -> bool:
        return self.ttl > 0

    async def run(self, promql: str, ttl: float | None = None) -> QueryResult:
        key = sys.intern(promql) if len(promql) < 512 else promql
        return await self.cache.get_or_load(key, lambda: self._query(promql), ttl)
