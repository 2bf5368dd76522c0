"""The requests the HPA controller makes for each ``spec.metrics[]`` entry (and their explain twins).

As client-go builds them: ``*`` as ``%2A``, selectors as ``labels.Selector.String()``, the query
encoded with sorted keys (``url.Values.Encode``), empty selectors left out (protocol.md §1.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

Doc = Mapping[str, Any]


def selector_string(ls: Doc | None) -> str:
    """``metav1.LabelSelectorAsSelector(ls).String()``: requirements sorted by key."""
    if not ls:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (ls.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in ls.get("matchExpressions") or ():
        k, op, vals = e["key"], e["operator"], sorted(e.get("values") or ())
        text = {"In": f"{k} in ({','.join(vals)})", "NotIn": f"{k} notin ({','.join(vals)})",
                "Exists": k, "DoesNotExist": f"!{k}"}[op]
        reqs.append((k, text))
    return ",".join(t for _, t in sorted(reqs))


def metric_request(ns: str, spec: Doc, scale_selector: str, resource_of: Mapping[str, str]) -> tuple[str, str, str]:
    """(api path the controller calls, metric name, explain path) for one ``spec.metrics[]`` entry."""
    kind = spec.get("type")
    if kind == "Pods":
        m = spec["pods"]["metric"]
        q = {"labelSelector": scale_selector, "metricLabelSelector": selector_string(m.get("selector"))}
        rest = f"namespaces/{ns}/pods/%2A/{m['name']}"
    elif kind == "Object":
        m, obj = spec["object"]["metric"], spec["object"]["describedObject"]
        q = {"metricLabelSelector": selector_string(m.get("selector"))}
        if obj.get("kind") == "Namespace" and "/" not in obj.get("apiVersion", "v1"):
            rest = f"namespaces/{ns}/metrics/{m['name']}"
        else:
            res = resource_of.get(f"{obj.get('apiVersion', '')}/{obj['kind']}", obj["kind"].lower() + "s")
            rest = f"namespaces/{ns}/{res}/{quote(obj['name'], safe='')}/{m['name']}"
    elif kind == "External":
        m = spec["external"]["metric"]
        q = {"labelSelector": selector_string(m.get("selector"))}
        qs = urlencode(sorted((k, v) for k, v in q.items() if v))
        path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{m['name']}"
        explain = f"/apis/explain.accel-metrics.io/v1alpha1/namespaces/{ns}/externalmetrics/{m['name']}"
        return path + (f"?{qs}" if qs else ""), m["name"], explain + (f"?{qs}" if qs else "")
    else:
        name = (spec.get("resource") or spec.get("containerResource") or {}).get("name", "?")
        return "", str(name), ""
    qs = urlencode(sorted((k, v) for k, v in q.items() if v))
    tail = f"?{qs}" if qs else ""
    return (f"/apis/custom.metrics.k8s.io/v1beta2/{rest}{tail}", m["name"],
            f"/apis/explain.accel-metrics.io/v1alpha1/{rest}{tail}")
