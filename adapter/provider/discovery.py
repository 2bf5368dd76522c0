"""Background series discovery: one ``/api/v1/series`` call per distinct (backend, ``seriesQuery``).

``update_now()`` runs every seriesQuery, builds a new index aside and swaps it in atomically. Each
seriesQuery stands alone: one that fails keeps its last good series (a query that never succeeded
contributes none) while the others are indexed with what they found, so one broken rule or a
Prometheus hiccup never empties or freezes the whole index; with several backends (the rules file's
``backends:``), each rule's seriesQuery goes to its own backend, so one backend down leaves the
others' metrics alone. A rule's failure is logged when it
starts, changes or ends (not at every relist) and reported per rule through ``on_relist``.

``unavailable()`` tells the providers when an unknown metric may only be unknown because a rule's
discovery has not succeeded yet: the request then answers 503 instead of a wrong 404.

``run()`` repeats ``update_now()`` every relist interval (every 5 s at most while some rule has never
succeeded). Tests call ``update_now()`` directly; nothing here sleeps on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from adapter.errors import AdapterError
from adapter.model import DEFAULT_BACKEND, GroupResource, Target
from adapter.naming.query import MetricNamer
from adapter.provider.registry import SeriesIndex, build_index

log = logging.getLogger(__name__)

# ``series(match, max_age)`` for the default backend, ``series(match, max_age, target)`` for any other
SeriesFn = Callable[..., Awaitable[list[dict[str, str]]]]
Key = tuple[Target, str]  # (where, seriesQuery): one discovery state each
SeriesList = list[Mapping[str, str]]
PENDING = "series discovery has not completed yet"


@dataclass
class QueryState:
    """One seriesQuery's discovery: its last good series (None until one succeeds) and its last error."""

    series: SeriesList | None = None
    error: str = PENDING  # "" when the last attempt succeeded


# (namer, its error or "" when its last discovery succeeded), for every rule, after each relist
RuleStatus = Sequence[tuple[MetricNamer, str]]


class Relister:
    def __init__(self, custom: Sequence[MetricNamer], external: Sequence[MetricNamer], series: SeriesFn,
                 interval: float, max_age: float,
                 on_relist: Callable[[float, SeriesIndex, RuleStatus], None] | None = None) -> None:
        self.custom = tuple(custom)
        self.external = tuple(external)
        self._series = series
        self.interval = interval
        self.max_age = max_age
        self.index = SeriesIndex()
        self._state: dict[Key, QueryState] = {_key(n): QueryState() for n in (*self.custom, *self.external)}
        self._on_relist = on_relist

    @property
    def complete(self) -> bool:
        """Every seriesQuery has succeeded at least once."""
        return all(s.series is not None for s in self._state.values())

    def statuses(self) -> RuleStatus:
        return [(n, self._state[_key(n)].error) for n in (*self.custom, *self.external)]

    def unavailable(self, metric: str, resource: GroupResource | None = None, namespace: str = "") -> str | None:
        """Why ``metric`` (custom for ``resource``, else external; asked in ``namespace``) may exist but is
        not known yet: the first rule that could produce it and whose discovery has never succeeded, with
        its error. A MetricRule's rule counts in its own namespace only."""
        namers = self.external if resource is None else self.custom
        for n in namers:
            if n.confined_to is not None and n.confined_to != namespace:
                continue
            state = self._state[_key(n)]
            if state.series is None and _could_produce(n, metric, resource):
                if state.error == PENDING:
                    backend = n.target.backend
                    return PENDING if backend == DEFAULT_BACKEND else f"{PENDING} (backend {backend!r})"
                return f"series discovery for {n.where} has not succeeded yet ({state.error})"
        return None

    def adopt(self, previous: Relister) -> None:
        """Start from ``previous``'s last good series for the seriesQueries both share (a rules reload): a
        query that fails on the first discovery keeps serving what it found before the reload."""
        for query, state in self._state.items():
            old = previous._state.get(query)
            if old is not None and old.series is not None:
                state.series, state.error = old.series, old.error

    async def update_now(self) -> SeriesIndex:
        start = time.perf_counter()
        queries = sorted(self._state, key=lambda k: (k[0].backend, k[1]))
        results = await asyncio.gather(*(series_of(self._series, q, self.max_age, t) for t, q in queries),
                                       return_exceptions=True)
        for q, r in zip(queries, results, strict=True):
            if isinstance(r, asyncio.CancelledError):
                raise r
            self._record(q, r)
        found = {q: s.series or [] for q, s in self._state.items()}
        index = build_index(((n, found[_key(n)]) for n in self.custom),
                            ((n, found[_key(n)]) for n in self.external))
        self.index = index  # atomic swap: readers see the old or the new index, never a mix
        took = time.perf_counter() - start
        if self._on_relist:
            self._on_relist(took, index, self.statuses())
        failed = sum(1 for s in self._state.values() if s.error)
        log.log(logging.DEBUG if failed else logging.INFO, "series discovery done", extra={
            "series_queries": len(queries), "failed_series_queries": failed, "series": index.series_count,
            "custom_metrics": len(index.custom), "external_metrics": len(index.external),
            "seconds": round(took, 3)})
        return index

    def _record(self, key: Key, result: list[dict[str, str]] | BaseException) -> None:
        state = self._state[key]
        query = key[1]
        before = state.error
        if isinstance(result, BaseException):
            state.error = result.message if isinstance(result, AdapterError) else f"unexpected {type(result).__name__}"
            if not isinstance(result, AdapterError):
                log.error("series discovery raised unexpectedly", exc_info=result,
                          extra={"series_query": query, "backend": key[0].backend})
        else:
            state.series, state.error = list(result), ""
        if state.error == before or (before == PENDING and not state.error):
            return
        rules = ", ".join(n.where for n in (*self.custom, *self.external) if _key(n) == key)
        if state.error:
            cause = result.__cause__ if isinstance(result, BaseException) else None
            log.warning("series discovery failed; %s", "serving the last series found" if state.series is not None
                        else "its metrics answer 503 until it succeeds",
                        extra={"rules": rules, "series_query": query, "backend": key[0].backend, "error": state.error,
                               "cause": str(cause)[:300] if cause is not None else ""})
        else:
            log.info("series discovery recovered", extra={"rules": rules, "series_query": query,
                                                          "backend": key[0].backend})

    async def run(self, *, first_now: bool = True) -> None:
        """Discover every interval; ``first_now=False`` waits one interval first (a discovery just ran)."""
        if not first_now:
            await asyncio.sleep(self.interval if self.complete else min(self.interval, 5.0))
        while True:
            try:
                await self.update_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("series discovery failed unexpectedly; keeping the previous index")
            await asyncio.sleep(self.interval if self.complete else min(self.interval, 5.0))


def series_of(series: SeriesFn, match: str, max_age: float, target: Target
              ) -> Awaitable[list[dict[str, str]]]:
    """``series`` called for ``target``: without it for the default backend (as before several)."""
    return series(match, max_age) if target.backend == DEFAULT_BACKEND else series(match, max_age, target)


def _key(namer: MetricNamer) -> Key:
    return namer.target, namer.series_query


def _could_produce(namer: MetricNamer, metric: str, resource: GroupResource | None) -> bool:
    """Whether ``namer`` may name a series ``metric`` (for ``resource``), judged without any series."""
    if "$" not in namer.name_as and namer.name_as != metric:
        return False  # a literal name.as names every series the same
    if not _fits_literal_ends(namer.name_as, metric):
        return False  # e.g. "queue_${1}" never names "keda-metric"
    return resource is None or namer.converter.label_for(resource) is not None


_GROUP_REF = re.compile(r"\$(?:\{\w*\}|\w+)")


def _fits_literal_ends(name_as: str, metric: str) -> bool:
    """Whether ``metric`` has the literal text before the first and after the last group reference of a
    ``name.as`` template (what every expansion keeps); true when the template escapes ``$$``."""
    if "$$" in name_as or "$" not in name_as:
        return True
    prefix = name_as.split("$", 1)[0]
    suffix = _GROUP_REF.split(name_as)[-1]
    return len(metric) >= len(prefix) + len(suffix) and metric.startswith(prefix) and metric.endswith(suffix)
