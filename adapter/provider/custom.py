"""custom.metrics.k8s.io use cases: values of named objects, and of objects selected by labels."""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

from adapter.errors import AdapterError, MetricNotFound, NotFound, Unavailable
from adapter.model import (
    DEFAULT_TARGET,
    CustomMetricInfo,
    CustomValue,
    ObjectRef,
    QueryResult,
    ResourceInfo,
    Sample,
    Selector,
    Target,
)
from adapter.naming.query import CLUSTER, NAMES, NAMESPACE, MetricNamer
from adapter.naming.resources import NAMESPACES
from adapter.naming.shape import QueryPlan
from adapter.ports import ObjectResolver, ResourceMapper
from adapter.provider.discovery import Relister
from adapter.provider.plans import Plans
from adapter.provider.runner import QueryRunner
from adapter.provider.tenancy import Tenancy
from adapter.provider.trace import current as current_trace
from adapter.provider.values import Freshness, Policy
from adapter.settings import parse_duration

log = logging.getLogger(__name__)

# above this many names, one namespace-wide query filtered in-process replaces a long =~ alternation
MAX_NAMES_IN_QUERY = 100
# bounds of the per-request-shape memo: entries, and their estimated bytes (see _memo_cost)
MEMO_MAX_ENTRIES = 4096
MEMO_MAX_BYTES = 16 * 1024 * 1024
# one memo entry beyond its strings and values (tracemalloc): key and entry tuples, the OrderedDict
# slot and link, the weakref with its callback, the ages dict, the list
MEMO_ENTRY_BYTES = 700
# one memoized value: the CustomValue, its two floats, the list slot (ObjectRefs are shared via _refs)
MEMO_VALUE_BYTES = 140
# bound of the ObjectRef memo (each about 330 bytes with its key); dropped whole when full
REFS_MAX = 20_000


def _memo_cost(key: tuple[object, ...], values: list[CustomValue]) -> int:
    """Estimated bytes held by one memo entry: the key's own strings (a request's text), the names
    tuple of a by-name or resolved-selector key, the values list."""
    size = MEMO_ENTRY_BYTES + MEMO_VALUE_BYTES * len(values)
    for part in key:
        if isinstance(part, str):
            size += 50 + len(part)
        elif isinstance(part, tuple):
            size += 50 + sum(58 + len(n) for n in part if isinstance(n, str))
    return size


class CustomMetricsProvider:
    def __init__(self, relister: Relister, mapper: ResourceMapper, resolver: ObjectResolver,
                 runner: QueryRunner, freshness: Freshness,
                 policy_for: Callable[[MetricNamer], Policy], tenancy: Tenancy | None = None) -> None:
        self.relister = relister
        self.tenancy = tenancy
        self.mapper = mapper
        self.resolver = resolver
        self.runner = runner
        self.freshness = freshness
        self.policy_for = policy_for
        # rules whose query drops the namespace label when grouped cluster-wide: per-namespace queries
        self._not_cluster_groupable: set[str] = set()
        self._index = ResultIndex()
        # per request shape: the values answered over a result object (held weakly: an entry whose
        # result the query cache has dropped can never hit again and is evicted like any other)
        self._memo: OrderedDict[tuple[object, ...], tuple[weakref.ref[QueryResult], list[CustomValue],
                                                          dict[float, int], float]] = OrderedDict()
        self._memo_bytes = 0
        self._refs: dict[tuple[str, str, str, str], ObjectRef] = {}
        self._plans = Plans()

    def list_metrics(self) -> list[CustomMetricInfo]:
        return self.relister.index.custom_infos()

    def serves(self, resource: str, namespace: str, metric: str) -> bool:
        """Whether ``metric`` of ``resource`` (asked in ``namespace``) is ours, as ``_entry`` finds it: discovered
        (a MetricRule's in its own namespace only), or one of our rules may produce it once its series
        discovery succeeds (we then answer 503 ourselves). Anything else may be delegated."""
        try:
            gr = self.mapper.resolve(resource).group_resource
        except NotFound:
            return False  # a resource we cannot map: never ours
        return (self.relister.index.lookup(gr, bool(namespace), metric, namespace) is not None
                or self.relister.unavailable(metric, gr, namespace) is not None)

    def _entry(self, info: ResourceInfo, namespace: str, metric: str, name: str = "", selector: str = ""
               ) -> tuple[MetricNamer, str]:
        entry = self.relister.index.lookup(info.group_resource, bool(namespace), metric, namespace)
        if entry is None:
            why = self.relister.unavailable(metric, info.group_resource, namespace)
            if why:
                raise Unavailable(f"the metric {metric} for {info.group_resource} is unavailable: {why}")
            raise MetricNotFound(metric, str(info.group_resource), name, selector)
        return entry.namer, entry.series

    async def _query(self, namer: MetricNamer, plan: QueryPlan, policy: Policy, target: Target) -> QueryResult:
        try:
            return await self.runner.run_plan(plan, policy.cache_ttl, namer.rule_label, target)
        except AdapterError as e:
            # an outage is logged once by the backend when it starts; each failed query only counts
            log.log(logging.DEBUG if isinstance(e, Unavailable) else logging.WARNING, "query failed",
                    extra={"rule": namer.where, "promql": plan.send, "error": e.message, "code": e.code})
            raise

    def _ref(self, info: ResourceInfo, namespace: str, name: str) -> ObjectRef:
        key = (info.group_resource.group, info.kind, namespace, name)
        ref = self._refs.get(key)
        if ref is None:
            # CMA builds apiVersion as group + "/" + version, so core kinds read "/v1" on the wire
            ref = ObjectRef(info.kind, name, f"{info.group_resource.group}/{info.version}", namespace)
            if len(self._refs) >= REFS_MAX:
                self._refs.clear()
            self._refs[key] = ref
        return ref

    async def get_by_name(self, resource: str, namespace: str, name: str, metric: str,
                          metric_selector: Selector) -> CustomValue:
        info = self.mapper.resolve(resource)
        target = await self._target(info, namespace, name)
        namer, series = self._entry(info, namespace, metric, name)
        # the rule's backend (without tenancy: its own target, no call)
        target = namer.target if self.tenancy is None else await self._on_backend(namer, target, info, namespace, name)
        if await self.resolver.exists(info, namespace, name) is False:
            raise NotFound(f'{info.group_resource.resource} "{name}" not found',
                           details={"name": name, "kind": info.group_resource.resource})
        policy = self.policy_for(namer)
        values = await self._values(namer, series, info, namespace, policy, [name], metric, metric_selector,
                                    target)
        if not values:
            raise MetricNotFound(metric, str(info.group_resource), name)
        return values[0]

    async def get_by_selector(self, resource: str, namespace: str, selector: Selector, metric: str,
                              metric_selector: Selector) -> list[CustomValue]:
        info = self.mapper.resolve(resource)
        target = await self._target(info, namespace)
        namer, series = self._entry(info, namespace, metric, selector=selector.raw)
        target = namer.target if self.tenancy is None else await self._on_backend(namer, target, info, namespace)
        policy = self.policy_for(namer)
        names = await self.resolver.names(info, namespace, selector)
        if names is not None and not names:
            raise MetricNotFound(metric, str(info.group_resource), selector=selector.raw)
        values = await self._values(namer, series, info, namespace, policy, names, metric, metric_selector,
                                    target)
        if not values:
            raise MetricNotFound(metric, str(info.group_resource), selector=selector.raw or "")
        return values

    async def _target(self, info: ResourceInfo, namespace: str, name: str = "", backend: str | None = None
                      ) -> Target:
        """Tenancy (before anything else, so a denied namespace learns nothing, not even which metrics
        exist): the target this request's queries go to; ``Forbidden`` when denied. One Namespace
        object by name (``namespaces/<ns>/metrics/<metric>``) goes as that namespace's tenant.
        ``backend``: the rule's, once known (else one tenancy applies to, for the early check)."""
        if self.tenancy is None:
            return DEFAULT_TARGET
        backend = backend or self.tenancy.checked_backend
        if info.group_resource == NAMESPACES and name:
            return await self.tenancy.target(name, backend)
        return await self.tenancy.target(namespace if info.namespaced else "", backend)

    async def _on_backend(self, namer: MetricNamer, target: Target, info: ResourceInfo, namespace: str,
                          name: str = "") -> Target:
        """The request's target (under tenancy) on the rule's backend."""
        if target.backend == namer.target.backend:
            return target
        return await self._target(info, namespace, name, namer.target.backend)

    def _mode(self, namer: MetricNamer, info: ResourceInfo, namespace: str, names: Sequence[str] | None) -> str:
        """How wide this request's query is.

        ``names``: exactly prometheus-adapter's query (the namespace and the object names). ``namespace``
        (every object of the namespace) and ``cluster`` (every object of every namespace, grouped by
        namespace and object, split here) only for templates proven to compute each object from its
        own series (``MetricNamer.wide_reason``): then N HPAs on a metric cost one query per TTL and
        every object still gets prometheus-adapter's value. Without a cluster and without a selector
        the objects are not known beforehand: every object of the namespace that has series."""
        gr = info.group_resource
        if names is None:
            return NAMESPACE
        if (namespace and self.runner.caching and namer.where not in self._not_cluster_groupable
                and self.tenancy is None  # one query over every namespace would span tenants
                and namer.wide_reason(gr, cluster=True) is None):
            return CLUSTER
        if (self.runner.caching or len(names) > MAX_NAMES_IN_QUERY) and namer.wide_reason(gr, cluster=False) is None:
            return NAMESPACE
        return NAMES

    async def _run(self, namer: MetricNamer, series: str, info: ResourceInfo, namespace: str,
                   names: Sequence[str] | None, metric_selector: Selector, policy: Policy, target: Target
                   ) -> tuple[QueryResult, str, bool]:
        gr = info.group_resource
        mode = self._mode(namer, info, namespace, names)
        rendered = namer.render_custom(series, gr, namespace, names or (), metric_selector, mode=mode)
        trace = current_trace()
        if trace is not None:
            trace.mode, trace.query = mode, rendered.query
            trace.label_matchers, trace.group_by = rendered.label_matchers, rendered.group_by
        # tenancy: every selector of every query sent carries the namespace, whatever the template does
        scope = namespace or (names[0] if gr == NAMESPACES and names is not None and len(names) == 1 else "")
        confined = {namer.namespace_label(): scope} if self.tenancy is not None and scope else None
        plan = self._plans.get(namer, rendered, confined=confined)
        if confined and trace is not None:
            trace.query = plan.value
        result = await self._query(namer, plan, policy, target)
        if mode == CLUSTER:
            index = self._index.get(result, namer.namespace_label(), namer.resource_label(gr))
            if "" in index:  # some samples carry no namespace label
                log.info("rule drops the namespace label when grouped cluster-wide; using per-namespace "
                         "queries for it", extra={"rule": namer.where})
                self._not_cluster_groupable.add(namer.where)
                return await self._run(namer, series, info, namespace, names, metric_selector, policy, target)
        return result, plan.value, mode == CLUSTER

    async def _values(self, namer: MetricNamer, series: str, info: ResourceInfo, namespace: str,
                      policy: Policy, names: Sequence[str] | None, metric: str,
                      metric_selector: Selector, target: Target) -> list[CustomValue]:
        label = namer.resource_label(info.group_resource)
        ns_label = namer.namespace_label()
        gr = str(info.group_resource)
        promql = ""
        cluster_wide = False
        try:
            result: QueryResult | None
            result, promql, cluster_wide = await self._run(namer, series, info, namespace, names,
                                                           metric_selector, policy, target)
        except AdapterError:
            if policy.missing != "lastKnown" or names is None:
                raise
            result = None  # Prometheus failed: lastKnown may still answer
        now = self.freshness.clock()
        limit = self.freshness.limit(policy)
        memo_key = (namer.where, gr, namespace, tuple(names) if names is not None else None, metric,
                    metric_selector.raw)
        trace = current_trace()
        if trace is not None:  # explaining: the same values, computed object by object (no memo)
            trace.rule, trace.series = namer.where, series
            trace.age_limit, trace.missing_data = limit, policy.missing
            trace.object_label, trace.namespace_label = label, ns_label
        if result is not None and trace is None:
            hit = self._memo.get(memo_key)
            # the same answer while the same result object serves and its oldest value is within the limit
            if hit is not None and hit[0]() is result and now - hit[3] <= limit:
                self._memo.move_to_end(memo_key)
                self.freshness.observe_ages(hit[2])
                return hit[1]
        by_name: dict[str, tuple[float, float]] = {}
        if result is not None:
            scope_label = ns_label if cluster_wide else ""
            scope = namespace if cluster_wide else ""
            samples = self._index.get(result, scope_label, label).get(scope, {})
            times = self._index.get(result, scope_label, label, ages=True).get(scope, {})
            for obj in (samples if names is None else names):
                s = samples.get(obj)
                if s is None:
                    continue
                t = times.get(obj)
                data_time = t.value if t is not None else None
                if self.freshness.check(s.value, data_time, now, limit, f"{gr}/{namespace}/{obj}", promql):
                    assert data_time is not None
                    by_name[obj] = (s.value, data_time)
            if trace is not None:
                trace.custom_values(names, namespace, samples, times, by_name, result)
        elif trace is not None:
            trace.custom_values(names, namespace, {}, {}, {}, None)
        wanted = list(names) if names is not None else sorted(by_name)
        sel = metric_selector if not metric_selector.empty else None
        out: list[CustomValue] = []
        remember = policy.missing == "lastKnown"
        substituted = False
        ages: dict[float, int] = {}
        for name in wanted:
            found: tuple[float, float] | None = by_name.get(name)
            key = (metric, gr, namespace, name, metric_selector.raw, namer.target.backend)
            if found is None:
                found = self._missing(key, policy, result)
                if found is None:
                    continue
                substituted = True
                if trace is not None:
                    trace.substituted(name, policy.missing, found[0], found[1])
            elif remember:
                self.freshness.store.put(key, found[0], found[1])
            ages[found[1]] = ages.get(found[1], 0) + 1
            out.append(CustomValue(self._ref(info, namespace, name), metric, found[1], found[0], sel))
        self.freshness.observe_ages(ages)
        if result is not None and not substituted:
            # the same request shape over the same result object answers with the same list (and the
            # api layer with the same bytes) until the result is replaced or its oldest value too old
            self._remember(memo_key, result, out, ages, min(ages, default=now))
        return out

    def _remember(self, key: tuple[object, ...], result: QueryResult, out: list[CustomValue],
                  ages: dict[float, int], oldest: float) -> None:
        old = self._memo.pop(key, None)
        if old is not None:
            self._memo_bytes -= _memo_cost(key, old[1])
        # the entry's own weakref calls back when the result goes; an entry evicted earlier takes its
        # weakref (and callback) with it, so nothing accumulates while a result lives
        ref = weakref.ref(result, lambda r, k=key: self._forget(k, r))  # type: ignore[misc]
        self._memo[key] = (ref, out, ages, oldest)
        self._memo_bytes += _memo_cost(key, out)
        while self._memo_bytes > MEMO_MAX_BYTES or len(self._memo) > MEMO_MAX_ENTRIES:
            k, entry = self._memo.popitem(last=False)
            self._memo_bytes -= _memo_cost(k, entry[1])

    def _forget(self, key: tuple[object, ...], ref: weakref.ref[QueryResult]) -> None:
        """The result behind a memo entry is gone: drop the entry (unless it was replaced since)."""
        entry = self._memo.get(key)
        if entry is not None and entry[0] is ref:
            del self._memo[key]
            self._memo_bytes -= _memo_cost(key, entry[1])

    def _missing(self, key: tuple[str, ...], policy: Policy, result: QueryResult | None) -> tuple[float, float] | None:
        if policy.missing == "zero" and result is not None:
            return (0.0, result.evaluated_at)
        if policy.missing == "lastKnown":
            return self.freshness.last_known(key, policy)
        return None


class ResultIndex:
    """Query results split by (namespace label, object label), computed once per result object.

    Entries hold the result weakly and disappear with it: the index never keeps a result alive
    after the query cache has dropped it."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, str, str, bool],
                         tuple[weakref.ref[QueryResult], dict[str, dict[str, Sample]]]] = {}

    def get(self, result: QueryResult, ns_label: str, label: str, *, ages: bool = False
            ) -> dict[str, dict[str, Sample]]:
        """Samples (or, with ``ages``, the data-time elements) by namespace label and object label."""
        key = (id(result), ns_label, label, ages)
        hit = self._memo.get(key)
        if hit is not None and hit[0]() is result:
            return hit[1]
        index: dict[str, dict[str, Sample]] = {}
        for s in (result.ages if ages else result.samples):
            obj = s.labels.get(label)
            if obj is None:
                continue
            ns = s.labels.get(ns_label, "") if ns_label else ""
            index.setdefault(ns, {}).setdefault(obj, s)  # first sample wins, as before
        self._memo[key] = (weakref.ref(result), index)
        weakref.finalize(result, self._memo.pop, key, None)
        return index

    def __len__(self) -> int:
        return len(self._memo)


def policies(default: Policy) -> Callable[[MetricNamer], Policy]:
    """Per-rule policy: the rule's ``missingData``/``maxAge``/``cacheTTL`` over the global defaults."""
    cache: dict[str, Policy] = {}

    def policy_for(namer: MetricNamer) -> Policy:
        p = cache.get(namer.where)
        if p is None:
            rule = namer.sourced.rule
            p = Policy(
                missing=rule.missing_data or default.missing,
                max_age=parse_duration(rule.max_age, "maxAge") if rule.max_age else default.max_age,
                cache_ttl=parse_duration(rule.cache_ttl, "cacheTTL") if rule.cache_ttl else default.cache_ttl,
            )
            cache[namer.where] = p
        return p
    return policy_for
