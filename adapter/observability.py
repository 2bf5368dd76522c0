"""The adapter's own Prometheus metrics, bound to an injected ``CollectorRegistry``.

Never registers on prometheus_client's global registry: the composition root creates one
registry per process (tests one per test) and passes it in. All names start with
``accel_adapter_``; counters end in ``_total``, durations are ``_seconds`` histograms.

| metric | type | labels |
|---|---|---|
| accel_adapter_requests_total | counter | group, version, code |
| accel_adapter_request_duration_seconds | histogram | group, version, code |
| accel_adapter_prometheus_queries_total | counter | endpoint (query, series), outcome (success, error, ...) |
| accel_adapter_prometheus_query_duration_seconds | histogram | endpoint |
| accel_adapter_prometheus_query_errors_total | counter | endpoint, reason (failure kind / exception class) |
| accel_adapter_rule_queries_total | counter | source (preset:<name> or file), rule (rules[i]), outcome |
| accel_adapter_rule_query_duration_seconds | histogram | source, rule |
| accel_adapter_cache_{hits,misses,coalesced,evictions,refreshes}_total | counter | cache |
| accel_adapter_prometheus_up | gauge | 1 while Prometheus answers, 0 while it is unreachable (or answers 502-504) |
| accel_adapter_backend_up | gauge | backend: the same per backend of the rules file's ``backends:`` (and ``default``) |
| accel_adapter_backend_queries_total | counter | backend, endpoint (query, series), outcome |
| accel_adapter_relist_duration_seconds | histogram | |
| accel_adapter_relist_errors_total | counter | relists where at least one seriesQuery failed |
| accel_adapter_relist_last_success_timestamp_seconds | gauge | last relist where every seriesQuery succeeded |
| accel_adapter_series_discovery_errors_total | counter | source (file or preset:name), rule (e.g. rules[1]) |
| accel_adapter_series_discovery_ok | gauge | source, rule: 1 if the rule's last discovery succeeded |
| accel_adapter_series_discovered | gauge | |
| accel_adapter_metrics_discovered | gauge | api (custom, external) |
| accel_adapter_value_age_seconds | histogram | |
| accel_adapter_values_withheld_total | counter | reason (stale, no_sample_time, non_finite, out_of_range) |
| accel_adapter_config_last_reload_successful | gauge | 1 if the last rules (re)load succeeded, else 0 |
| accel_adapter_config_last_reload_success_timestamp_seconds | gauge | last successful rules (re)load |
| accel_adapter_config_reloads_total | counter | result (success, failure): reloads after the initial load |

With several backends, ``accel_adapter_prometheus_up`` is the ``default`` (command-line) backend's
and ``accel_adapter_prometheus_queries_total`` counts the calls to all of them, as before; the
``backend_*`` series tell them apart.

``group``/``version`` come from the URL (``custom.metrics.k8s.io``/``v1beta2``; ``""`` for
non-API paths) and ``code`` is the HTTP status code, so label cardinality stays small.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from adapter.model import DEFAULT_BACKEND

PREFIX = "accel_adapter"

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUERY_BUCKETS = REQUEST_BUCKETS
RELIST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Age of served values: from "just scraped" to the 5 min default --max-value-age and beyond.
VALUE_AGE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0)

ENDPOINTS = ("query", "series")
OUTCOMES = ("success", "error")
APIS = ("custom", "external")
WITHHELD_REASONS = ("stale", "no_sample_time", "non_finite", "out_of_range")
RELOAD_RESULTS = ("success", "failure")
_CACHE_EVENTS = {"hit": "hits", "miss": "misses", "coalesced": "coalesced", "evict": "evictions",
                 "refresh": "refreshes"}


DELEGATE_OUTCOMES = ("2xx", "3xx", "4xx", "5xx", "unreachable", "timeout", "too_large")

class Metrics:
    """All adapter metrics; one instance per registry."""

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time, caches: tuple[str, ...] = ("query",)) -> None:
        self.registry = registry
        self._clock = clock
        self._wall_clock = wall_clock
        p, r = PREFIX, registry
        self.requests = Counter(f"{p}_requests_total", "API requests served, by API group, version and "
                                "HTTP status code.", ("group", "version", "code"), registry=r)
        self.request_duration = Histogram(
            f"{p}_request_duration_seconds", "Time to serve an API request, by API group, version and code.",
            ("group", "version", "code"), buckets=REQUEST_BUCKETS, registry=r)
        self.prometheus_queries = Counter(
            f"{p}_prometheus_queries_total", "Requests sent to Prometheus, by API endpoint and outcome.",
            ("endpoint", "outcome"), registry=r)
        self.prometheus_query_duration = Histogram(
            f"{p}_prometheus_query_duration_seconds", "Duration of requests to Prometheus, by endpoint.",
            ("endpoint",), buckets=QUERY_BUCKETS, registry=r)
        self.prometheus_query_errors = Counter(
            f"{p}_prometheus_query_errors_total", "Failed requests to Prometheus, by endpoint and reason.",
            ("endpoint", "reason"), registry=r)
        self.rule_queries = Counter(
            f"{p}_rule_queries_total", "Value queries sent to Prometheus for a rule (cache misses), by the rule's "
            "source (preset:<name> or the rules file), the rule (rules[i] / externalRules[i]) and outcome.",
            ("source", "rule", "outcome"), registry=r)
        self.rule_query_duration = Histogram(
            f"{p}_rule_query_duration_seconds", "Duration of the value queries sent for a rule (the value and "
            "its data age), by source and rule.", ("source", "rule"), buckets=QUERY_BUCKETS, registry=r)
        self.cache_counters = {
            event: Counter(f"{p}_cache_{suffix}_total", f"Value cache {suffix}, by cache.", ("cache",),
                           registry=r)
            for event, suffix in _CACHE_EVENTS.items()
        }
        self.relist_duration = Histogram(
            f"{p}_relist_duration_seconds", "Duration of one series discovery (relist) pass.",
            buckets=RELIST_BUCKETS, registry=r)
        self.relist_errors = Counter(f"{p}_relist_errors_total", "Failed series discovery passes.",
                                     registry=r)
        self.relist_last_success = Gauge(
            f"{p}_relist_last_success_timestamp_seconds", "Unix time of the last successful relist.",
            registry=r)
        self.series_discovery_errors = Counter(
            f"{p}_series_discovery_errors_total", "Failed series discoveries, by rule (a failed rule keeps "
            "its last good series).", ("source", "rule"), registry=r)
        self.series_discovery_ok = Gauge(
            f"{p}_series_discovery_ok", "1 if the rule's last series discovery succeeded, else 0.",
            ("source", "rule"), registry=r)
        self.prometheus_up = Gauge(
            f"{p}_prometheus_up", "1 while Prometheus answers, 0 while it is unreachable or answers 502-504.",
            registry=r)
        self.backend_up = Gauge(
            f"{p}_backend_up", "1 while the backend answers, 0 while it is unreachable or answers 502-504, "
            "by backend (default: the --prometheus-* flags' one).", ("backend",), registry=r)
        self.backend_queries = Counter(
            f"{p}_backend_queries_total", "Requests sent to each backend, by backend, API endpoint and outcome.",
            ("backend", "endpoint", "outcome"), registry=r)
        self.series_discovered = Gauge(
            f"{p}_series_discovered", "Series found by the last successful relist.", registry=r)
        self.metrics_discovered = Gauge(
            f"{p}_metrics_discovered", "Metric names served after the last relist, by API.", ("api",),
            registry=r)
        self.value_age = CountedHistogram(
            f"{p}_value_age_seconds",
            "Age (now minus the time of the newest raw sample behind it) of every metric value served.",
            VALUE_AGE_BUCKETS)
        r.register(self.value_age)
        self.values_withheld = Counter(
            f"{p}_values_withheld_total", "Values not served (the object left out, the missing-data policy "
            "applied), by reason: stale (older than the age limit), no_sample_time (no raw sample behind "
            "it), non_finite (NaN/Inf), out_of_range (beyond Quantity's int64 milli range).",
            ("reason",), registry=r)
        for reason in WITHHELD_REASONS:
            self.values_withheld.labels(reason)
        self.delegated_requests = Counter(
            f"{p}_delegated_requests_total", "Requests forwarded to a delegate (metrics we do not serve), by API "
            "group and outcome: the delegate's status class (2xx, 3xx, 4xx, 5xx), or unreachable, timeout, too_large.",
            ("group", "outcome"), registry=r)
        self.delegate_discovery_up = Gauge(
            f"{p}_delegate_discovery_up", "1 if the delegate's last discovery fetch for the group version "
            "succeeded, else 0 (its last good list is kept for --delegate-discovery-max-age).",
            ("group", "version"), registry=r)
        self.tenancy_denials = Counter(
            f"{p}_tenancy_denied_total", "Requests answered 403 by tenancy, by reason: unmapped (the namespace "
            "maps to no tenant and tenancy.unmapped is deny), cluster_scoped (a cluster-scoped object, no "
            "tenancy.clusterScoped tenant).", ("reason",), registry=r)
        for reason in ("unmapped", "cluster_scoped"):
            self.tenancy_denials.labels(reason)
        # Prometheus's own config reload metrics, same meaning (prometheus_config_last_reload_*)
        self.config_last_reload_successful = Gauge(
            f"{p}_config_last_reload_successful", "Whether the last rules (re)load attempt succeeded (1) or "
            "failed and the previous rules are still served (0).", registry=r)
        self.config_last_reload_success = Gauge(
            f"{p}_config_last_reload_success_timestamp_seconds", "Unix time of the last successful rules (re)load.",
            registry=r)
        self.config_reloads = Counter(
            f"{p}_config_reloads_total", "Rules reloads after the initial load (changed file, SIGHUP or changed "
            "rule objects), by result.", ("result",), registry=r)
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result)
        # Pre-create the known label combinations so rates work from the first scrape.
        for endpoint in ENDPOINTS:
            self.prometheus_query_duration.labels(endpoint)
            for outcome in OUTCOMES:
                self.prometheus_queries.labels(endpoint, outcome)
        for cache in caches:
            for counter in self.cache_counters.values():
                counter.labels(cache)
        for api in APIS:
            self.metrics_discovered.labels(api)

    # -- API requests ----------------------------------------------------------------------

    def observe_request(self, group: str, version: str, code: int, seconds: float) -> None:
        labels = (group, version, str(code))
        self.requests.labels(*labels).inc()
        self.request_duration.labels(*labels).observe(seconds)

    # -- Prometheus queries ----------------------------------------------------------------

    def observe_query(self, endpoint: str, seconds: float, error: str | None = None) -> None:
        """One request to Prometheus; ``error`` is a short reason (e.g. exception class) or None."""
        self.prometheus_queries.labels(endpoint, "success" if error is None else "error").inc()
        self.prometheus_query_duration.labels(endpoint).observe(seconds)
        if error is not None:
            self.prometheus_query_errors.labels(endpoint, error).inc()

    def observe_rule_query(self, source: str, rule: str, outcome: str, seconds: float) -> None:
        """``QueryRunner(on_rule_query=...)``: one value query sent for a rule; outcome success or error."""
        self.rule_queries.labels(source, rule, outcome).inc()
        self.rule_query_duration.labels(source, rule).observe(seconds)

    def prometheus_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """``PrometheusBackend(on_call=metrics.prometheus_call)``: outcome ``success`` or a failure kind
        (``timeout``, ``unreachable``, ``error``), used as-is for ``outcome`` and as the error ``reason``."""
        self.prometheus_queries.labels(endpoint, outcome).inc()
        self.prometheus_query_duration.labels(endpoint).observe(seconds)
        if outcome != "success":
            self.prometheus_query_errors.labels(endpoint, outcome).inc()

    @contextlib.contextmanager
    def time_query(self, endpoint: str) -> Iterator[None]:
        """Wrap one Prometheus call: records duration and outcome; an exception counts as an error."""
        start = self._clock()
        try:
            yield
        except BaseException as e:
            self.observe_query(endpoint, self._clock() - start, error=type(e).__name__)
            raise
        self.observe_query(endpoint, self._clock() - start)

    # -- cache -----------------------------------------------------------------------------

    def cache_event(self, name: str, cache: str = "query") -> None:
        """``QueryCache(on_event=metrics.cache_event)``: counts hit/miss/coalesced/evict."""
        counter = self.cache_counters.get(name)
        if counter is None:
            raise ValueError(f"unknown cache event {name!r}; expected one of {sorted(_CACHE_EVENTS)}")
        counter.labels(cache).inc()

    def cache_observer(self, cache: str) -> Callable[[str], None]:
        """An ``on_event`` callback for a cache other than the default ``query`` one."""
        for counter in self.cache_counters.values():
            counter.labels(cache)
        return lambda name: self.cache_event(name, cache)

    # -- discovery -------------------------------------------------------------------------

    def observe_relist(self, seconds: float, *, series: int, metrics: Mapping[str, int],
                       complete: bool = True) -> None:
        """A relist: its duration, the series indexed and metric names per API; ``complete`` when every
        seriesQuery succeeded (else it counts as a relist error)."""
        self.relist_duration.observe(seconds)
        if complete:
            self.relist_last_success.set(self._wall_clock())
        else:
            self.relist_errors.inc()
        self.series_discovered.set(series)
        for api, count in metrics.items():
            self.metrics_discovered.labels(api).set(count)

    def rules_known(self, rules: Iterable[tuple[str, str]]) -> None:
        """Pre-create the per-rule series (``(source, rule)``) so rates work from the first scrape."""
        for source, rule in rules:
            self.series_discovery_errors.labels(source, rule)
            self.series_discovery_ok.labels(source, rule).set(0)

    def observe_rule_discovery(self, source: str, rule: str, ok: bool) -> None:
        self.series_discovery_ok.labels(source, rule).set(1 if ok else 0)
        if not ok:
            self.series_discovery_errors.labels(source, rule).inc()

    def rules_retired(self, rules: Iterable[tuple[str, str]]) -> None:
        """Drop the per-rule discovery series of rules a reload removed (a stale 0 would alert forever)."""
        for source, rule in rules:
            for family in (self.series_discovery_errors, self.series_discovery_ok):
                with contextlib.suppress(KeyError):
                    family.remove(source, rule)

    # -- rules reloads ---------------------------------------------------------------------

    def config_loaded(self, ok: bool, *, initial: bool = False) -> None:
        """A rules load: the initial one (only the gauges) or a reload (also counted by result)."""
        self.config_last_reload_successful.set(1 if ok else 0)
        if ok:
            self.config_last_reload_success.set(self._wall_clock())
        if not initial:
            self.config_reloads.labels("success" if ok else "failure").inc()

    def set_prometheus_up(self, up: bool) -> None:
        self.prometheus_up.set(1 if up else 0)

    def backends_known(self, names: Iterable[str]) -> None:
        """Pre-create the per-backend series so rates work from the first scrape."""
        for name in names:
            self.backend_up.labels(name)
            for endpoint in ENDPOINTS:
                for outcome in OUTCOMES:
                    self.backend_queries.labels(name, endpoint, outcome)

    def backend_call(self, backend: str, endpoint: str, outcome: str, seconds: float) -> None:
        """``Backends(on_call=...)``: one call to ``backend``, counted in the all-backends series too."""
        self.observe_query(endpoint, seconds, None if outcome == "success" else outcome)
        self.backend_queries.labels(backend, endpoint, "success" if outcome == "success" else "error").inc()

    def set_backend_up(self, backend: str, up: bool) -> None:
        """``Backends(on_reachable=...)``: the default backend's state is also ``prometheus_up``."""
        self.backend_up.labels(backend).set(1 if up else 0)
        if backend == DEFAULT_BACKEND:
            self.set_prometheus_up(up)

    def delegates_known(self, groups: Iterable[str]) -> None:
        """Pre-create each delegated group's outcome counters (rates work from the first scrape)."""
        for group in groups:
            for outcome in DELEGATE_OUTCOMES:
                self.delegated_requests.labels(group, outcome)

    def observe_delegated(self, group: str, outcome: str) -> None:
        self.delegated_requests.labels(group, outcome).inc()

    def set_delegate_discovery_up(self, group: str, version: str, up: bool) -> None:
        self.delegate_discovery_up.labels(group, version).set(1 if up else 0)

    def relist_failed(self, seconds: float) -> None:
        self.relist_duration.observe(seconds)
        self.relist_errors.inc()

    # -- values ----------------------------------------------------------------------------

    def observe_value_age(self, seconds: float, count: int = 1) -> None:
        """``count`` values of the same age (a response's items usually share one sample time)."""
        self.value_age.observe(max(seconds, 0.0), count)

    def withheld(self, reason: str, count: int = 1) -> None:
        self.values_withheld.labels(reason).inc(count)

    def tenancy_denied(self, reason: str) -> None:
        self.tenancy_denials.labels(reason).inc()

    # -- exposition ------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """``(body, content_type)`` for ``GET /metrics``; OpenMetrics when ``accept`` asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class CountedHistogram(Collector):
    """A histogram that takes ``observe(value, count)``: one update for many equal observations.

    A response with 2,000 items of one sample time costs one update instead of 2,000."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self._name = name
        self._doc = documentation
        self._upper = [*buckets, float("inf")]
        self._counts = [0] * len(self._upper)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, count: int = 1) -> None:
        i = bisect.bisect_left(self._upper, value)
        with self._lock:
            self._counts[i] += count
            self._sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, acc = [], 0
        for upper, c in zip(self._upper, counts, strict=True):
            acc += c
            cumulative.append(("+Inf" if upper == float("inf") else repr(upper), float(acc)))
        yield HistogramMetricFamily(self._name, self._doc, buckets=cumulative, sum_value=total)
