"""What one metric request did, recorded by the serving path itself while someone asks (issue 12).

The serving path (``custom``, ``external``, ``runner``, ``values``) calls ``current()`` once per
request; it is None unless an explanation is being made (``recording()``), so nobody pays for a
trace nobody asked for: one ``ContextVar.get`` per request. While recording, the same code that
answers the HPA notes the rule it looked up, the plan it sent, whether the cache answered (age,
TTL), and for every object the value it served or why it withheld one. ``adapter.provider.explainer``
turns a finished trace into an ``Explanation``; nothing here does I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from adapter.model import DEFAULT_BACKEND, QueryResult, Sample

_CURRENT: ContextVar[Trace | None] = ContextVar("accel_trace", default=None)

# reason codes of an object without a value, with the sentence shown to people
REASONS = {
    "no_series": "no series for this object in the query's answer",
    "stale": "its newest raw sample is older than the age limit",
    "no_sample_time": "no raw sample behind the value (its age cannot be known)",
    "non_finite": "the query computed NaN or ±Inf",
    "out_of_range": "the value is out of Quantity range (|v| > 9.2e15)",
    "query_failed": "the query failed",
}


def current() -> Trace | None:
    """The trace being recorded in this task, or None (the usual case: nobody asked)."""
    return _CURRENT.get()


@contextlib.contextmanager
def recording(trace: Trace) -> Iterator[Trace]:
    token = _CURRENT.set(trace)
    try:
        yield trace
    finally:
        _CURRENT.reset(token)


@dataclass
class QueryTrace:
    """One query plan as sent, and where its answer came from."""

    promql: str  # exactly as sent (value + age query when combined)
    value_query: str
    age_query: str | None
    cache: str  # "hit" (cached result), "miss" (sent now), "coalesced" (joined a query in flight), "off"
    cache_age: float | None = None  # seconds since the cached result's query started
    ttl: float | None = None
    evaluated_at: float | None = None
    backend: str = DEFAULT_BACKEND  # the backend it was sent to (``backends:`` of the rules file)


@dataclass
class ObjectTrace:
    """One object (custom) or series (external): its value and whether it was served."""

    name: str
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None  # what the value query computed for it
    data_time: float | None = None  # newest raw sample behind it
    served: bool = False
    served_value: float | None = None
    served_time: float | None = None
    reason: str = ""  # code from REASONS when not served (or "zero"/"lastKnown" when substituted)
    detail: dict[str, object] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)  # raw samples behind the value (explainer)


@dataclass
class Trace:
    """Filled in by the serving path while ``recording()``; read by the explainer afterwards."""

    rule: str = ""  # "<file or preset:name>: rules[i]"
    series: str = ""
    mode: str = ""  # names | namespace | cluster | external
    query: str = ""  # the rendered metricsQuery (value query)
    label_matchers: str = ""
    group_by: tuple[str, ...] = ()
    object_label: str = ""
    namespace_label: str = ""
    age_limit: float | None = None
    missing_data: str = ""
    queries: list[QueryTrace] = field(default_factory=list)
    objects: dict[str, ObjectTrace] = field(default_factory=dict)
    not_selected: list[str] = field(default_factory=list)  # objects with series the selector did not pick
    unmapped: int = 0  # value samples without the object label
    _reasons: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)

    # -- hooks called by the serving path ------------------------------------------------------

    def sent(self, q: QueryTrace) -> None:
        self.queries.append(q)

    def answered(self, result: QueryResult) -> None:
        if self.queries:
            self.queries[-1].evaluated_at = result.evaluated_at

    def withheld(self, what: str, reason: str, extra: Mapping[str, object]) -> None:
        self._reasons.append((what, reason, {k: v for k, v in extra.items() if k != "promql"}))

    def custom_values(self, wanted: Sequence[str] | None, namespace: str, samples: Mapping[str, Sample],
                      times: Mapping[str, Sample], served: Mapping[str, tuple[float, float]],
                      result: QueryResult | None) -> None:
        """Per object of the request: the computed value, its data time, served or the reason why not."""
        reasons = {what.rsplit("/", 1)[-1]: (reason, extra) for what, reason, extra in self._reasons}
        names = list(wanted) if wanted is not None else sorted(samples)
        for name in names:
            s, t = samples.get(name), times.get(name)
            o = ObjectTrace(name, namespace, dict(s.labels) if s else {}, s.value if s else None,
                            t.value if t else None)
            if name in served:
                o.served, (o.served_value, o.served_time) = True, served[name]
            elif result is None:
                o.reason = "query_failed"
            elif s is None:
                o.reason = "no_series"
            else:
                o.reason, o.detail = reasons.get(name, ("", {}))
            self.objects[name] = o
        if wanted is not None:
            chosen = set(wanted)
            self.not_selected = sorted(n for n in samples if n not in chosen)[:50]
        if result is not None and self.object_label:
            self.unmapped = sum(1 for x in result.samples if self.object_label not in x.labels)

    def substituted(self, name: str, policy: str, value: float, ts: float) -> None:
        o = self.objects.get(name)
        if o is not None:
            o.served, o.served_value, o.served_time, o.reason = True, value, ts, policy

    def external_value(self, sample: Sample, data_time: float | None, ok: bool) -> None:
        key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) or "{}"
        o = ObjectTrace(key, labels=dict(sample.labels), value=sample.value, data_time=data_time, served=ok)
        if ok:
            o.served_value, o.served_time = sample.value, data_time
        elif self._reasons:
            _, o.reason, o.detail = self._reasons[-1]
        self.objects[key] = o
