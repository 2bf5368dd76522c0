"""``Explanation``: the document one explained metric request becomes (``kind: Explanation``).

Made by ``adapter.provider.explainer``; served by ``adapter.api.explain``, printed by ``adapter.explain``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from adapter.errors import AdapterError
from adapter.provider.trace import REASONS, ObjectTrace, Trace

GROUP = "explain.accel-metrics.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass
class Explanation:
    """What serving one metric request did, and why (``kind: Explanation``)."""

    api: str  # custom.metrics.k8s.io | external.metrics.k8s.io
    path: str  # the path the HPA controller calls
    namespace: str
    resource: str
    name: str
    metric: str
    selector: str
    metric_selector: str
    trace: Trace
    served: bool = False
    error: AdapterError | None = None
    diagnosis: list[str] = field(default_factory=list)
    rule: Mapping[str, object] | None = None
    now: float = 0.0

    @property
    def summary(self) -> str:
        objs = list(self.trace.objects.values())
        served = sum(1 for o in objs if o.served)
        missing: dict[str, int] = {}
        for o in objs:
            if not o.served:
                missing[o.reason or "unknown"] = missing.get(o.reason or "unknown", 0) + 1
        why = ", ".join(f"{n} {r}" for r, n in sorted(missing.items()))
        unit = "series" if self.api.startswith("external") else "objects"
        if self.error is not None:
            text = self.error.message + (f" ({len(objs)} {unit}, none served: {why})" if objs else "")
            return text + (f" ({self.diagnosis[0]})" if self.diagnosis else "")
        return f"served {served} of {len(objs)} {unit}" + (f"; without a value: {why}" if why else "")

    def to_dict(self) -> dict[str, object]:
        t = self.trace
        error = None if self.error is None else {"code": self.error.code, "reason": self.error.reason,
                                                 "message": self.error.message}
        return {
            "kind": "Explanation", "apiVersion": API_VERSION, "metadata": {},
            "request": {"api": self.api, "path": self.path, "namespace": self.namespace,
                        "resource": self.resource, "name": self.name, "metric": self.metric,
                        "labelSelector": self.selector, "metricLabelSelector": self.metric_selector},
            "served": self.served, "summary": self.summary, "error": error, "diagnosis": list(self.diagnosis),
            "rule": dict(self.rule) if self.rule is not None else None,
            "backend": "prometheus",
            "scope": t.mode, "ageLimitSeconds": t.age_limit, "missingData": t.missing_data or None,
            "queries": [{"promql": q.promql, "valueQuery": q.value_query, "ageQuery": q.age_query,
                         "backend": q.backend,
                         "cache": {"state": q.cache, "ageSeconds": _round(q.cache_age), "ttlSeconds": q.ttl},
                         "evaluatedAt": q.evaluated_at} for q in t.queries],
            "objects": [_object_doc(o, self.now) for o in t.objects.values()],
            "notSelected": list(t.not_selected), "unmappedSamples": t.unmapped,
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _object_doc(o: ObjectTrace, now: float) -> dict[str, object]:
    doc: dict[str, object] = {"name": o.name}
    if o.namespace:
        doc["namespace"] = o.namespace
    if o.labels:
        doc["labels"] = dict(o.labels)
    doc["computed"] = _num(o.value)
    doc["dataTime"] = o.data_time
    doc["ageSeconds"] = _round(now - o.data_time) if o.data_time is not None else None
    doc["served"] = o.served
    doc["value"] = _num(o.served_value) if o.served else None
    if o.reason:
        doc["reason"] = o.reason
        doc["message"] = REASONS.get(o.reason, f"substituted by missingData: {o.reason}")
    if o.detail:
        doc["detail"] = dict(o.detail)
    doc["samples"] = [{"labels": dict(s.labels), "value": _num(s.value), "timestamp": s.timestamp}
                      for s in o.samples]
    return doc


def _num(v: float | None) -> float | str | None:
    if v is None:
        return None
    return v if math.isfinite(v) else str(v)  # NaN/Inf as text (JSON has no such numbers)


def custom_path(version: str, resource: str, namespace: str, name: str, metric: str, selector: str,
                metric_selector: str) -> str:
    """The path the HPA controller (client-go) calls, ``*`` as ``%2A`` and the query re-encoded."""
    if resource == "namespaces" and not namespace:
        path = f"/apis/custom.metrics.k8s.io/{version}/namespaces/{name}/metrics/{metric}"
    else:
        scope = f"namespaces/{namespace}/" if namespace else ""
        path = f"/apis/custom.metrics.k8s.io/{version}/{scope}{resource}/{quote(name, safe='')}/{metric}"
    params = {k: v for k, v in (("labelSelector", selector), ("metricLabelSelector", metric_selector)) if v}
    return path + ("?" + urlencode(sorted(params.items())) if params else "")
