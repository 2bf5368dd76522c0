"""``check-config --prometheus-url``: run each rule's seriesQuery once and say what it found.

Per rule: how many series the seriesQuery returned, how many the rule's filters and naming accept,
the metric names it produces (``pods/gpu_utilization``; an external metric by its name), which of
them a later rule overrides, or the error. For an operator at a terminal, so an error also shows
its cause (the Prometheus answer), which the API never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from adapter.backends.reachability import short_reason
from adapter.errors import AdapterError
from adapter.model import Target
from adapter.naming.query import MetricNamer
from adapter.provider.discovery import SeriesFn, series_of
from adapter.provider.registry import SeriesIndex, build_index


@dataclass(frozen=True)
class RuleReport:
    where: str
    error: str = ""  # "" when the seriesQuery succeeded
    series: int = 0  # series the seriesQuery returned
    accepted: int = 0  # series this rule names
    metrics: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()  # its metrics that a later rule produces instead

    def line(self) -> str:
        if self.error:
            return f"{self.where}: error: {self.error}"
        text = f"{self.where}: {self.series} series, {self.accepted} named"
        if not self.metrics:
            return text + ", no metrics"
        text += f", {len(self.metrics)} metrics: {', '.join(self.metrics)}"
        return text + (f" (overridden by a later rule: {', '.join(self.overridden)})" if self.overridden else "")


def _error(e: BaseException) -> str:
    message = e.message if isinstance(e, AdapterError) else type(e).__name__
    cause = e.__cause__
    if cause is None:
        return message
    text = str(cause)
    why = short_reason(cause) if "[Errno" in text else text[:300]  # a failed connect: just the OS error
    return f"{message} ({why})" if why else message


async def probe(custom: Sequence[MetricNamer], external: Sequence[MetricNamer], series: SeriesFn,
                max_age: float) -> list[RuleReport]:
    """One report per rule, custom rules first, in rule order."""
    queries = sorted({(n.target, n.series_query) for n in (*custom, *external)}, key=lambda k: (k[0].backend, k[1]))
    results = await asyncio.gather(*(series_of(series, q, max_age, t) for t, q in queries), return_exceptions=True)
    found: dict[tuple[Target, str], list[dict[str, str]] | BaseException] = dict(zip(queries, results, strict=True))
    ok = {q: r for q, r in found.items() if not isinstance(r, BaseException)}
    full = build_index(((n, list(ok.get((n.target, n.series_query), []))) for n in custom),
                       ((n, list(ok.get((n.target, n.series_query), []))) for n in external))
    return [_report(n, found[n.target, n.series_query], full, n in external) for n in (*custom, *external)]


def _report(namer: MetricNamer, result: list[dict[str, str]] | BaseException, full: SeriesIndex,
            is_external: bool) -> RuleReport:
    if isinstance(result, BaseException):
        return RuleReport(namer.where, error=_error(result))
    own = build_index([], [(namer, list(result))]) if is_external else build_index([(namer, list(result))], [])
    if is_external:
        names = sorted(own.external)
        lost = [m for m in names if full.external[m].namer is not namer]
    else:
        names = [f"{i.group_resource}/{i.metric}" for i in own.custom_infos()]
        lost = sorted(f"{key[0]}/{key[2]}" for key in own.custom if full.custom[key].namer is not namer)
    return RuleReport(namer.where, series=len(result), accepted=own.series_count, metrics=tuple(names),
                      overridden=tuple(lost))
