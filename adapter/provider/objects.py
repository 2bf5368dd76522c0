"""Object resolution without a cluster: pods matching a label selector from kube-state-metrics.

``kube_pod_labels{namespace, pod, label_<name>...}`` carries each pod's labels with names sanitized
by kube-state-metrics (every character outside ``[a-zA-Z0-9_]`` becomes ``_``, prefixed ``label_``).
Only labels listed in kube-state-metrics' ``--metric-labels-allowlist`` are exported: a selector on
a label that is not exported matches nothing (documented in docs/presets.md and README).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from adapter.errors import BadRequest
from adapter.model import QueryResult, Requirement, ResourceInfo, Selector
from adapter.naming.confine import confine
from adapter.naming.validation import dns1123_label_problems, dns1123_subdomain_problems
from adapter.provider.runner import QueryRunner
from adapter.provider.tenancy import Tenancy

_SANITIZE = re.compile(r"[^a-zA-Z0-9_]")


def ksm_label(key: str) -> str:
    return "label_" + _SANITIZE.sub("_", key)


class KsmObjectResolver:
    """``ObjectResolver`` for running without a cluster.

    One ``kube_pod_labels`` query for every pod (cached for the TTL like any query) serves every
    namespace and selector: selectors are matched in-process on the sanitized label names, every
    operator included (``gt``/``lt`` compare the label value as an integer, as ``labels.Selector``
    does). A selector on another resource is a 400: without a cluster only pods can be selected."""

    QUERY = 'kube_pod_labels{namespace!="",pod!=""}'

    def __init__(self, runner: QueryRunner, tenancy: Tenancy | None = None) -> None:
        self._runner = runner
        self._tenancy = tenancy  # then one query per namespace, as its tenant, confined to it
        self._memo: tuple[QueryResult, dict[str, list[tuple[str, dict[str, str]]]]] | None = None
        self._names: dict[tuple[str, str], list[str]] = {}  # for the current result only

    def _pods(self, result: QueryResult) -> dict[str, list[tuple[str, dict[str, str]]]]:
        if self._memo is not None and self._memo[0] is result:
            return self._memo[1]
        self._names = {}
        by_ns: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for s in result.samples:
            ns, pod = s.labels.get("namespace", ""), s.labels.get("pod", "")
            # only names Kubernetes allows: they may be rendered unescaped (<<.LabelValuesByName>>)
            if ns and pod and not dns1123_label_problems(ns) and not dns1123_subdomain_problems(pod):
                by_ns.setdefault(ns, []).append((pod, dict(s.labels)))
        self._memo = (result, by_ns)
        return by_ns

    async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> Sequence[str] | None:
        if selector.empty:
            return None  # every object that has series
        if info.group_resource.resource != "pods" or info.group_resource.group:
            raise BadRequest(
                f"a labelSelector on {info.group_resource} needs a Kubernetes API (--lister-kubeconfig); "
                "without a cluster only pods can be selected (from kube-state-metrics' kube_pod_labels)")
        if self._tenancy is None:
            result = await self._runner.run(self.QUERY, where="kube-state-metrics pod labels")
        else:
            target = await self._tenancy.target(namespace)
            query = confine(self.QUERY, {"namespace": namespace}) if namespace else self.QUERY
            result = await self._runner.run(query, where="kube-state-metrics pod labels", target=target)
        by_ns = self._pods(result)
        key = (namespace, selector.raw)
        names = self._names.get(key)
        if names is None:
            sanitized = sanitize_selector(selector)
            pods = by_ns.get(namespace, []) if namespace else [p for ps in by_ns.values() for p in ps]
            names = sorted({pod for pod, labels in pods if sanitized.matches(labels)})
            if len(self._names) < 10000:
                self._names[key] = names
        return names

    async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
        return None


def sanitize_selector(selector: Selector) -> Selector:
    """The same selector over kube-state-metrics' label names (``app.kubernetes.io/name`` ->
    ``label_app_kubernetes_io_name``)."""
    return Selector(tuple(Requirement(ksm_label(r.key), r.operator, r.values) for r in selector.requirements),
                    selector.raw)
