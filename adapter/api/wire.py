"""Wire format: Quantity strings, timestamps and the MetricValueList / ExternalMetricValueList JSON.

Key order and presence follow the Go types (protocol.md §1.7): list ``kind, apiVersion, metadata, items``;
v1beta1 items ``describedObject, metricName, timestamp, [window], value, selector``; v1beta2 items
``describedObject, metric{name, selector}, timestamp, [windowSeconds], value``; external items
``metricName, metricLabels, timestamp, [window], value``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from adapter.model import CustomValue, ExternalValue, ObjectRef
from adapter.naming.selectors import to_label_selector_json

_SUFFIX = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


def milli_to_quantity(milli: int) -> str:
    """Canonical DecimalSI form of ``milli`` thousandths (apimachinery ``CanonicalizeBytes``)."""
    if milli == 0:
        return "0"
    mant, exp = milli, -3
    while mant % 10 == 0:
        mant //= 10
        exp += 1
    r = exp % 3
    if r == 1:
        mant, exp = mant * 10, exp - 1
    elif r == 2:
        mant, exp = mant * 100, exp - 2
    return f"{mant}{_SUFFIX[exp]}"


def quantity(value: float) -> str:
    """A finite float -> Quantity string, rounded to the nearest milli-unit (callers filter NaN/Inf)."""
    return milli_to_quantity(round(value * 1000))


def rfc3339(ts: float) -> str:
    """RFC 3339 UTC with whole seconds, as metav1.Time marshals."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _ref(ref: ObjectRef) -> dict[str, str]:
    out = {"kind": ref.kind}
    if ref.namespace:
        out["namespace"] = ref.namespace
    out["name"] = ref.name
    out["apiVersion"] = ref.api_version
    return out


def custom_list(version: str, values: Sequence[CustomValue]) -> dict[str, object]:
    items: list[dict[str, object]] = []
    sel_cache: dict[int, object] = {}
    for v in values:
        selector: object = None
        if v.selector is not None:
            key = id(v.selector)
            if key not in sel_cache:
                sel_cache[key] = to_label_selector_json(v.selector)
            selector = sel_cache[key]
        item: dict[str, object] = {"describedObject": _ref(v.described)}
        if version == "v1beta1":
            item["metricName"] = v.metric
            item["timestamp"] = rfc3339(v.timestamp)
            if v.window_seconds is not None:
                item["window"] = v.window_seconds
            item["value"] = quantity(v.value)
            item["selector"] = selector
        else:
            item["metric"] = {"name": v.metric, "selector": selector}
            item["timestamp"] = rfc3339(v.timestamp)
            if v.window_seconds is not None:
                item["windowSeconds"] = v.window_seconds
            item["value"] = quantity(v.value)
        items.append(item)
    return {"kind": "MetricValueList", "apiVersion": f"custom.metrics.k8s.io/{version}",
            "metadata": {}, "items": items}


def external_list(values: Sequence[ExternalValue]) -> dict[str, object]:
    items: list[dict[str, object]] = []
    for v in values:
        item: dict[str, object] = {"metricName": v.metric, "metricLabels": dict(v.labels),
                                   "timestamp": rfc3339(v.timestamp)}
        if v.window_seconds is not None:
            item["window"] = v.window_seconds
        item["value"] = quantity(v.value)
        items.append(item)
    return {"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
            "metadata": {}, "items": items}


def dumps(doc: object, pretty: bool = False) -> bytes:
    """Compact JSON like Go's encoding/json, including its HTML-safe escaping of < > &."""
    text = json.dumps(doc, indent=2 if pretty else None, separators=(",", ": ") if pretty else (",", ":"),
                      ensure_ascii=False)
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode()
