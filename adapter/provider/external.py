"""external.metrics.k8s.io use case: every sample of the rule's query becomes an item."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from adapter.cache import key_bytes
from adapter.errors import AdapterError, NotFound, Unavailable
from adapter.model import DEFAULT_TARGET, ExternalMetricInfo, ExternalValue, QueryResult, Selector
from adapter.naming.query import MetricNamer
from adapter.provider.discovery import Relister
from adapter.provider.plans import Plans
from adapter.provider.runner import QueryRunner
from adapter.provider.tenancy import Tenancy
from adapter.provider.trace import current as current_trace
from adapter.provider.values import Freshness, Policy

log = logging.getLogger(__name__)

# bounds of the lastKnown memory of external answers: answers kept, and their estimated bytes
LAST_MAX_ENTRIES = 10_000
LAST_MAX_BYTES = 8 * 1024 * 1024
# one answer beyond its key's strings (map slot and link, the tuple), and one item of it (the
# ExternalValue, its floats, its labels dict; per label the slot and the strings)
LAST_ENTRY_BYTES = 250
LAST_ITEM_BYTES = 300
LAST_LABEL_BYTES = 60


def _last_cost(key: tuple[str, str, str, str], items: tuple[ExternalValue, ...]) -> int:
    return LAST_ENTRY_BYTES + key_bytes(key) + sum(
        LAST_ITEM_BYTES + sum(LAST_LABEL_BYTES + len(k) + len(v) for k, v in it.labels.items()) for it in items)


class ExternalMetricsProvider:
    def __init__(self, relister: Relister, runner: QueryRunner, freshness: Freshness,
                 policy_for: Callable[[MetricNamer], Policy], tenancy: Tenancy | None = None) -> None:
        self.relister = relister
        self.tenancy = tenancy
        self.runner = runner
        self.freshness = freshness
        self.policy_for = policy_for
        self._last: OrderedDict[tuple[str, str, str, str], tuple[ExternalValue, ...]] = OrderedDict()
        self._last_bytes = 0
        self._plans = Plans()

    def list_metrics(self) -> list[ExternalMetricInfo]:
        return self.relister.index.external_infos()

    def serves(self, namespace: str, metric: str) -> bool:
        """Whether ``metric`` (asked in ``namespace``) is ours, as ``get`` finds it: discovered (a MetricRule's
        in its own namespace only), or a rule may produce it once its discovery succeeds."""
        return (self.relister.index.lookup_external(metric, namespace) is not None
                or self.relister.unavailable(metric, namespace=namespace) is not None)

    async def get(self, namespace: str, metric: str, selector: Selector) -> list[ExternalValue]:
        # tenancy first: a denied namespace learns nothing, not even which metrics exist
        target = DEFAULT_TARGET if self.tenancy is None else await self.tenancy.target(
            namespace, self.tenancy.checked_backend)
        entry = self.relister.index.lookup_external(metric, namespace)
        if entry is None:
            why = self.relister.unavailable(metric, namespace=namespace)
            if why:
                raise Unavailable(f"the metric {metric} is unavailable: {why}")
            raise NotFound(f"the server could not find the metric {metric} for namespace {namespace}")
        namer, series = entry.namer, entry.series
        if self.tenancy is None:
            target = namer.target
        elif target.backend != namer.target.backend:  # the rule's backend, as this namespace's tenant there
            target = await self.tenancy.target(namespace, namer.target.backend)
        policy = self.policy_for(namer)
        rendered = namer.render_external(series, namespace, selector)
        # tenancy: external metrics are namespaced too, even for a rule with resources.namespaced: false
        confined = {namer.namespace_label(): namespace} if self.tenancy is not None else None
        plan = self._plans.get(namer, rendered, external=True, confined=confined)
        key = (metric, namespace if namer.namespaced_external or confined else "", selector.raw, target.backend)
        trace = current_trace()
        if trace is not None:
            trace.rule, trace.series, trace.mode, trace.query = namer.where, series, "external", plan.value
            trace.label_matchers, trace.group_by = rendered.label_matchers, plan.age_group
            trace.age_limit, trace.missing_data = self.freshness.limit(policy), policy.missing
        try:
            result: QueryResult | None = await self.runner.run_plan(plan, policy.cache_ttl, namer.rule_label, target)
        except AdapterError as e:
            # an outage is logged once by the backend when it starts; each failed query only counts
            log.log(logging.DEBUG if isinstance(e, Unavailable) else logging.WARNING, "query failed",
                    extra={"rule": namer.where, "promql": plan.send, "error": e.message, "code": e.code})
            if policy.missing != "lastKnown":
                raise
            result = None
        now = self.freshness.clock()
        limit = self.freshness.limit(policy)
        items = []
        if result is not None:
            group = plan.age_group
            times = {tuple(a.labels.get(label, "") for label in group): a.value for a in result.ages}
            for s in result.samples:
                data_time = times.get(tuple(s.labels.get(label, "") for label in group))
                ok = self.freshness.check(s.value, data_time, now, limit, f"external/{namespace}/{metric}",
                                          plan.value)
                if trace is not None:
                    trace.external_value(s, data_time, ok)
                if ok:
                    assert data_time is not None
                    items.append(ExternalValue(metric, dict(s.labels), data_time, s.value))
        if items:
            if policy.missing == "lastKnown":
                self._remember(key, tuple(items))
            ages: dict[float, int] = {}
            for it in items:
                ages[it.timestamp] = ages.get(it.timestamp, 0) + 1
            self.freshness.observe_ages(ages)
            return items
        if policy.missing == "zero" and result is not None:
            return [ExternalValue(metric, {}, result.evaluated_at, 0.0)]
        if policy.missing == "lastKnown":
            last = self._last.get(key, ())
            if last:
                self._last.move_to_end(key)
            fresh = [it for it in last if now - it.timestamp <= limit]
            if fresh:
                return fresh
        raise NotFound(f"the server could not find the metric {metric} for namespace {namespace}"
                       + (f" with selector {selector.raw}" if selector.raw else ""))

    def _remember(self, key: tuple[str, str, str, str], items: tuple[ExternalValue, ...]) -> None:
        old = self._last.pop(key, None)
        if old is not None:
            self._last_bytes -= _last_cost(key, old)
        cost = _last_cost(key, items)
        if cost > LAST_MAX_BYTES:
            return
        self._last[key] = items
        self._last_bytes += cost
        while len(self._last) > LAST_MAX_ENTRIES or self._last_bytes > LAST_MAX_BYTES:
            k, v = self._last.popitem(last=False)
            self._last_bytes -= _last_cost(k, v)
