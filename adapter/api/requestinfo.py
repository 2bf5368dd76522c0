"""RequestInfo and authorization attributes, parsed exactly as k8s.io/apiserver does (protocol.md §1.2, §5.4).

Pure functions, no I/O. ``request_info(method, raw_path, query_string)`` reproduces
``RequestInfoFactory.NewRequestInfo`` (prefixes ``api``/``apis``, special verb ``watch``/``proxy``,
``namespaces/{ns}/...`` with the ``status``/``finalize`` exception, list/watch for name-less GETs).
``sar_attributes(info)`` gives the ``resourceAttributes`` / ``nonResourceAttributes`` of the
SubjectAccessReview the Go webhook authorizer would send (``resourceAttributesFrom``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from adapter.errors import BadRequest
from adapter.naming.selectors import parse_selector

_API_PREFIXES = frozenset({"api", "apis"})
_GROUPLESS_PREFIXES = frozenset({"api"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_SELECTOR_VERBS = frozenset({"list", "watch", "deletecollection"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The Go ``request.RequestInfo`` fields that authorization uses."""

    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()
    label_selector: str = ""
    field_selector: str = ""


def has_empty_segment(path: str) -> bool:
    """An empty segment between two slashes (``/a//b``, ``/apis//``, also when decoded from ``%2F``).

    RequestInfo and the router would read such a path differently (``pods/*//m`` is authorized as
    ``pods`` without subresource; ``namespaces//ns1/...`` as cluster-scoped), so the server refuses it
    (404) before authorization. One trailing ``/`` is not an empty segment (Go trims it)."""
    return "//" in path


def _split_path(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _watch_requested(query: dict[str, list[str]]) -> bool:
    values = query.get("watch")
    if not values:
        return False
    return values[0].lower() not in ("false", "0", "")


def request_info(method: str, raw_path: str | bytes, query_string: str | bytes = "") -> RequestInfo:
    """Parse a request as ``NewRequestInfo`` does. ``raw_path`` may be percent-encoded (``%2A``)."""
    raw = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    path = unquote(raw)
    method = method.upper()
    base = RequestInfo(is_resource_request=False, path=path, verb=method.lower())
    parts = _split_path(path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return base
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return base
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts and parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            # Go returns an error here; the filter then answers 500. Treat it as non-resource.
            return base
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if parts and parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = name = subresource = ""
    if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES:
        subresource = parts[2]
    if len(parts) >= 2:
        name = parts[1]
    if len(parts) >= 1:
        resource = parts[0]
    query = parse_qs(qs, keep_blank_values=True)
    if not name and verb == "get":
        verb = "watch" if _watch_requested(query) else "list"
        fs = query.get("fieldSelector", [""])[0]
        exact = _exact_field_match(fs, "metadata.name")
        if exact and _valid_path_segment(exact):
            name = exact
    if not name and verb == "delete":
        verb = "deletecollection"
    label_selector = field_selector = ""
    if verb in _SELECTOR_VERBS:
        label_selector = query.get("labelSelector", [""])[0]
        field_selector = query.get("fieldSelector", [""])[0]
    return RequestInfo(
        is_resource_request=True, path=path, verb=verb, api_prefix=prefix, api_group=group,
        api_version=version, namespace=namespace, resource=resource, subresource=subresource, name=name,
        parts=tuple(parts), label_selector=label_selector, field_selector=field_selector,
    )


def _valid_path_segment(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


# --- selectors, as labels.Parse / fields.ParseSelector read them -------------------------------------

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|<|>|[^\s!=(),<>]+)")
_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SelectorError(ValueError):
    """The selector text does not parse (Go would return an error)."""


def parse_label_selector(text: str) -> list[tuple[str, str, list[str]]]:
    """(key, operator, values) per requirement, sorted by key, as ``labels.Parse`` reads them."""
    try:
        selector = parse_selector(text)
    except BadRequest as e:
        raise SelectorError(e.message) from e
    return [(r.key, r.operator, list(r.values)) for r in selector.requirements]


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """``fields.ParseSelector``: ``k=v,k==v,k!=v`` (backslash escapes) -> [(key, op, value)]."""
    out: list[tuple[str, str, str]] = []
    for term in re.split(r"(?<!\\),", text):
        if not term:
            continue
        m = re.match(r"^([^=!]*)(!=|==|=)(.*)$", term)
        if not m:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        value = re.sub(r"\\(.)", r"\1", m.group(3))
        out.append((m.group(1), m.group(2), value))
    return out


def _exact_field_match(text: str, field: str) -> str:
    try:
        terms = parse_field_selector(text)
    except SelectorError:
        return ""
    for key, op, value in terms:
        if key == field and op in ("=", "=="):
            return value
    return ""


_LABEL_OPS = {"=": "In", "==": "In", "in": "In", "!=": "NotIn", "notin": "NotIn",
              "exists": "Exists", "!": "DoesNotExist"}


def sar_attributes(info: RequestInfo) -> dict[str, object]:
    """The SAR ``spec`` attributes: ``{"resourceAttributes": ...}`` or ``{"nonResourceAttributes": ...}``.

    Key order and omitempty follow ``authorization/v1`` JSON as Go serialises it.
    """
    if not info.is_resource_request:
        return {"nonResourceAttributes": {"path": info.path, "verb": info.verb}}
    attrs: dict[str, object] = {}
    for key, value in (("namespace", info.namespace), ("verb", info.verb), ("group", info.api_group),
                       ("version", info.api_version), ("resource", info.resource),
                       ("subresource", info.subresource), ("name", info.name)):
        if value:
            attrs[key] = value
    if info.field_selector:
        try:
            fields = [{"key": k, "operator": "NotIn" if op == "!=" else "In", "values": [v]}
                      for k, op, v in parse_field_selector(info.field_selector)]
        except SelectorError:
            fields = []
        if fields:
            attrs["fieldSelector"] = {"requirements": fields}
    if info.label_selector:
        try:
            parsed = parse_label_selector(info.label_selector)
        except SelectorError:
            parsed = []
        labels: list[dict[str, object]] = []
        for key, op, values in parsed:
            if op not in _LABEL_OPS:
                continue  # gt / lt are not expressible in the SAR API
            req: dict[str, object] = {"key": key, "operator": _LABEL_OPS[op]}
            if values and op not in ("exists", "!"):
                req["values"] = values
            labels.append(req)
        if labels:
            attrs["labelSelector"] = {"requirements": labels}
    return {"resourceAttributes": attrs}
