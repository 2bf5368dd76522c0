"""Background series discovery: one ``/api/v1/series`` call per distinct ``seriesQuery``.

``update_now()`` builds a new index aside and swaps it in atomically; if any seriesQuery fails the
previous index stays (as prometheus-adapter does). ``run()`` repeats it every relist interval.
Tests call ``update_now()`` directly; nothing here sleeps on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from adapter.naming.query import MetricNamer
from adapter.provider.registry import SeriesIndex, build_index

log = logging.getLogger(__name__)

SeriesFn = Callable[[str, float], Awaitable[list[dict[str, str]]]]
SeriesList = list[Mapping[str, str]]


class Relister:
    def __init__(self, custom: Sequence[MetricNamer], external: Sequence[MetricNamer], series: SeriesFn,
                 interval: float, max_age: float,
                 on_relist: Callable[[float, SeriesIndex], None] | None = None) -> None:
        self.custom = tuple(custom)
        self.external = tuple(external)
        self._series = series
        self.interval = interval
        self.max_age = max_age
        self.index = SeriesIndex()
        self.ready = False
        self.last_error: str = ""
        self._on_relist = on_relist

    async def update_now(self) -> SeriesIndex:
        start = time.perf_counter()
        queries = sorted({n.series_query for n in (*self.custom, *self.external)})
        results = await asyncio.gather(*(self._series(q, self.max_age) for q in queries),
                                       return_exceptions=True)
        by_query: dict[str, SeriesList] = {}
        for q, r in zip(queries, results, strict=True):
            if isinstance(r, BaseException):
                self.last_error = f"seriesQuery {q!r}: {r}"
                log.warning("series discovery failed; keeping the previous index",
                            extra={"series_query": q, "error": str(r)})
                raise r
            by_query[q] = list(r)
        index = build_index(((n, by_query[n.series_query]) for n in self.custom),
                            ((n, by_query[n.series_query]) for n in self.external))
        self.index = index  # atomic swap: readers see the old or the new index, never a mix
        self.ready = True
        self.last_error = ""
        took = time.perf_counter() - start
        if self._on_relist:
            self._on_relist(took, index)
        log.info("series discovery done", extra={
            "series_queries": len(queries), "series": index.series_count,
            "custom_metrics": len(index.custom), "external_metrics": len(index.external),
            "seconds": round(took, 3)})
        return index

    async def run(self) -> None:
        while True:
            try:
                await self.update_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("relist failed", exc_info=True)
            await asyncio.sleep(self.interval if self.ready else min(self.interval, 5.0))
