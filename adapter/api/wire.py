"""Wire format: Quantity strings, timestamps and the MetricValueList / ExternalMetricValueList JSON.

Key order and presence follow the Go types (protocol.md §1.7): list ``kind, apiVersion, metadata, items``;
v1beta1 items ``describedObject, metricName, timestamp, [window], value, selector``; v1beta2 items
``describedObject, metric{name, selector}, timestamp, [windowSeconds], value``; external items
``metricName, metricLabels, timestamp, [window], value``.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class _Body:
    values: Sequence[CustomValue]
    body: bytes
    cost: int
    gz: bytes | None = None


# What a remembered body costs beyond its bytes (measured with tracemalloc): the key tuple and its
# strings' headers, the OrderedDict slot and link, the _Body, the bytes objects' headers ...
BODY_ENTRY_BYTES = 600
# ... and the values list it holds (kept alive by the entry once the provider has moved on): per item
# the list slot, the CustomValue and its two floats (ObjectRefs are shared with the provider)
BODY_VALUE_BYTES = 140


def _body_cost(key: tuple[str, ...], values: Sequence[CustomValue], body: bytes, gz: bytes | None) -> int:
    return (BODY_ENTRY_BYTES + sum(len(k) for k in key) + BODY_VALUE_BYTES * len(values) + len(body)
            + (len(gz) if gz is not None else 0))


# k8s.io/apiserver's response compression (responsewriters/writers.go): a body larger than 128 KiB is
# gzipped at level 1 when the request's Accept-Encoding lists the token "gzip"; the real aggregator
# forwards the HPA's "Accept-Encoding: gzip" (aggregator-capture.md).
GZIP_THRESHOLD = 128 * 1024
GZIP_LEVEL = 1


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Go's ``negotiateContentEncoding``: one comma-separated token equal to ``gzip``."""
    return bool(accept_encoding) and any(t.strip() == "gzip" for t in (accept_encoding or "").split(","))


def gzip_body(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def maybe_gzip(body: bytes, gzip_ok: bool) -> tuple[bytes, bool]:
    """(body, gzipped) under the apiserver's rule: gzip only above ``GZIP_THRESHOLD`` and when accepted."""
    if gzip_ok and len(body) > GZIP_THRESHOLD:
        return gzip_body(body), True
    return body, False


class _Fragments:
    """``key -> JSON fragment``, dropped whole when it reaches ``max_entries`` (a fragment is a
    re-derivation: cheap to rebuild, not worth an LRU's per-entry links)."""

    __slots__ = ("_items", "_max")

    def __init__(self, max_entries: int) -> None:
        self._items: dict[object, str] = {}
        self._max = max_entries

    def get(self, key: object) -> str | None:
        return self._items.get(key)

    def put(self, key: object, fragment: str) -> str:
        if len(self._items) >= self._max:
            self._items.clear()
        self._items[key] = fragment
        return fragment

    def __len__(self) -> int:
        return len(self._items)


class FastEncoder:
    """Byte-identical to ``dumps(custom_list(...))`` but built from memoized JSON fragments.

    Object references, timestamps and quantities repeat across responses (the same pods, one sample
    time per query), so each is encoded once (at most ``max_fragments`` of each kind, about 170 bytes
    apiece, are kept). A whole body is remembered per request shape (``shape``, given by the caller
    for list requests) together with the values list it encodes: the provider returns the same list
    object for the same request over the same query result, so the next request of that shape reuses
    the bytes (and the gzip form once a client asks for it, bodies above ``GZIP_THRESHOLD``), and a
    new list replaces the entry. At most ``max_bodies`` shapes are remembered, and at most
    ``max_body_bytes`` counting each entry's whole cost (bytes, key, values held, bookkeeping),
    least recently used dropped first."""

    def __init__(self, max_fragments: int = 8192, max_bodies: int = 2048,
                 max_body_bytes: int = 16 * 1024 * 1024) -> None:
        self._refs = _Fragments(max_fragments)
        self._ts = _Fragments(1024)
        self._qty = _Fragments(max_fragments)
        self._bodies: OrderedDict[tuple[str, ...], _Body] = OrderedDict()
        self._body_bytes = 0
        self._max_bodies = max_bodies
        self._max_body_bytes = max_body_bytes

    def _ref(self, ref: ObjectRef) -> str:
        return self._refs.get(ref) or self._refs.put(
            ref, json.dumps(_ref(ref), separators=(",", ":"), ensure_ascii=False))

    def _time(self, ts: float) -> str:
        key = int(ts)
        return self._ts.get(key) or self._ts.put(key, f'"{rfc3339(key)}"')

    def _quantity(self, value: float) -> str:
        milli = round(value * 1000)
        return self._qty.get(milli) or self._qty.put(milli, f'"{milli_to_quantity(milli)}"')

    def custom(self, version: str, values: Sequence[CustomValue], gzip_ok: bool = False,
               shape: tuple[str, ...] | None = None) -> tuple[bytes, bool]:
        """(body, gzipped): the encoded list, gzipped when ``gzip_ok`` and larger than ``GZIP_THRESHOLD``.

        With ``shape`` (the request's identity, version included) the body is remembered for the
        next request of that shape that brings the same ``values`` object; without, nothing is."""
        if shape is None:
            return maybe_gzip(self._encode(version, values), gzip_ok)
        hit = self._bodies.get(shape)
        if hit is not None and hit.values is values:
            self._bodies.move_to_end(shape)
        else:
            body = self._encode(version, values)
            hit = _Body(values, body, _body_cost(shape, values, body, None))
            self._remember(shape, hit)
        if not gzip_ok or len(hit.body) <= GZIP_THRESHOLD:
            return hit.body, False
        if hit.gz is not None:
            return hit.gz, True
        gz = gzip_body(hit.body)
        if self._bodies.get(shape) is hit:  # re-remembered with its gzip form counted
            self._remember(shape, _Body(values, hit.body, _body_cost(shape, values, hit.body, gz), gz))
        return gz, True

    def _remember(self, key: tuple[str, ...], entry: _Body) -> None:
        old = self._bodies.pop(key, None)
        if old is not None:
            self._body_bytes -= old.cost
        if entry.cost > self._max_body_bytes:
            return
        while self._bodies and (self._body_bytes + entry.cost > self._max_body_bytes
                                or len(self._bodies) >= self._max_bodies):
            self._body_bytes -= self._bodies.popitem(last=False)[1].cost
        self._bodies[key] = entry
        self._body_bytes += entry.cost

    def _encode(self, version: str, values: Sequence[CustomValue]) -> bytes:
        metric_frag: dict[tuple[str, int], tuple[str, str]] = {}
        parts: list[str] = []
        for v in values:
            mk = (v.metric, id(v.selector))
            frags = metric_frag.get(mk)
            if frags is None:
                sel = json.dumps(to_label_selector_json(v.selector) if v.selector is not None else None,
                                 separators=(",", ":"), ensure_ascii=False)
                name = json.dumps(v.metric, ensure_ascii=False)
                frags = metric_frag[mk] = (name, sel)
            name, sel = frags
            window = ""
            if version == "v1beta1":
                if v.window_seconds is not None:
                    window = f',"window":{v.window_seconds}'
                parts.append(f'{{"describedObject":{self._ref(v.described)},"metricName":{name},'
                             f'"timestamp":{self._time(v.timestamp)}{window},"value":{self._quantity(v.value)},'
                             f'"selector":{sel}}}')
            else:
                if v.window_seconds is not None:
                    window = f',"windowSeconds":{v.window_seconds}'
                parts.append(f'{{"describedObject":{self._ref(v.described)},"metric":{{"name":{name},'
                             f'"selector":{sel}}},"timestamp":{self._time(v.timestamp)}{window},'
                             f'"value":{self._quantity(v.value)}}}')
        text = (f'{{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/{version}","metadata":{{}},'
                f'"items":[{",".join(parts)}]}}')
        if "<" in text or ">" in text or "&" in text:
            text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return text.encode()
