"""Names from request paths, validated as Kubernetes validates them, before any PromQL is built.

Pure functions, no I/O. The rules (k8s.io/apimachinery ``util/validation``, ``api/validation/path``
and the per-resource name validators of ``pkg/apis/*/validation``):

* every namespace, object name and metric name must be a valid path segment
  (``IsValidPathSegmentName``: not ``.`` or ``..``, no ``/`` or ``%``); otherwise **400**
  (``Namespace parameter invalid`` / ``Name parameter invalid``, the generic registry's answer);
* a namespace is a DNS-1123 label (lower-case alphanumerics and ``-``, at most 63 characters);
  anything else cannot exist: **404** ``namespaces "x" not found``;
* an object name follows its resource's rule: DNS-1123 label for namespaces, DNS-1035 label for
  services, RBAC names (roles, bindings) path segments restricted to ``[-A-Za-z0-9._:]``, and a
  DNS-1123 subdomain (at most 253 characters, lower-case alphanumerics, ``-`` and ``.``) for pods,
  nodes and every other resource (custom resources included); otherwise **404** ``<resource> "x"
  not found``;
* a metric name is 1-253 characters of ``[A-Za-z0-9_:.-]``: Prometheus metric-name characters plus
  ``.`` and ``-`` (what rule naming produces: ``name.as`` over series names, OTel-style dotted
  names, KEDA-style external names); otherwise **404** ``the server could not find the metric x``.
  Series discovery skips metric names outside this set, so the discovery documents list exactly
  what can be requested.

None of the accepted character sets holds a quote, a backslash, a brace, whitespace or a regex
operator other than ``.``, so a value that passes cannot break out of a PromQL string or regex even
where a rule's template puts it inside quotes unescaped (``<<index .LabelValuesByName "pod">>``).
"""

from __future__ import annotations

import json
import re

from adapter.errors import BadRequest, NotFound

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
METRIC_NAME_MAX = 253

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_RBAC_NAME = re.compile(r"[-A-Za-z0-9._:]+")
_METRIC_NAME = re.compile(r"[A-Za-z0-9_:.-]+")

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
RBAC_MSG = "must consist of alphanumeric characters, '-', '.', '_' or ':'"
METRIC_MSG = "a metric name must consist of alphanumeric characters, '_', ':', '.' or '-'"

_RBAC = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def path_segment_problems(name: str) -> list[str]:
    """``IsValidPathSegmentName``: why ``name`` cannot be one path segment (empty list: it can)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _problems(value: str, limit: int, pattern: re.Pattern[str], message: str) -> list[str]:
    """Kubernetes' validators: too long, and/or not of the pattern's form (both may be reported)."""
    problems = _max_len(value, limit)
    if not pattern.fullmatch(value):
        problems.append(message)
    return problems


def dns1123_label_problems(value: str) -> list[str]:
    return _problems(value, DNS1123_LABEL_MAX, _DNS1123_LABEL, LABEL_MSG)


def dns1123_subdomain_problems(value: str) -> list[str]:
    return _problems(value, DNS1123_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN, SUBDOMAIN_MSG)


def dns1035_label_problems(value: str) -> list[str]:
    return _problems(value, DNS1123_LABEL_MAX, _DNS1035_LABEL, DNS1035_MSG)


def rbac_name_problems(value: str) -> list[str]:
    return _problems(value, DNS1123_SUBDOMAIN_MAX, _RBAC_NAME, RBAC_MSG)


def metric_name_problems(value: str) -> list[str]:
    problems = _problems(value, METRIC_NAME_MAX, _METRIC_NAME, METRIC_MSG)
    if value in (".", "..") and METRIC_MSG not in problems:
        problems.append(METRIC_MSG)
    return problems


def object_name_problems(resource: str, name: str) -> list[str]:
    """Why no object of ``resource`` (``resource[.group]`` as in the URL) can be called ``name``."""
    plural, _, group = resource.lower().partition(".")
    if plural == "namespaces" and not group:
        return dns1123_label_problems(name)
    if plural == "services" and not group:
        return dns1035_label_problems(name)
    if plural in _RBAC and group == "rbac.authorization.k8s.io":
        return rbac_name_problems(name)
    return dns1123_subdomain_problems(name)


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def check_namespace(namespace: str) -> None:
    """Raise ``BadRequest`` (not a path segment) or ``NotFound`` (not a DNS-1123 label)."""
    problems = path_segment_problems(namespace)
    if problems:
        raise BadRequest(f"Namespace parameter invalid: {_quoted(namespace)}: {';'.join(problems)}")
    if dns1123_label_problems(namespace):
        raise NotFound(f"namespaces {_quoted(namespace)} not found", details={"name": namespace, "kind": "namespaces"})


def check_object_name(resource: str, name: str) -> None:
    """Raise ``BadRequest`` (not a path segment) or ``NotFound`` (not a valid name for ``resource``)."""
    problems = path_segment_problems(name)
    if problems:
        raise BadRequest(f"Name parameter invalid: {_quoted(name)}: {';'.join(problems)}")
    if object_name_problems(resource, name):
        raise NotFound(f"{resource} {_quoted(name)} not found", details={"name": name, "kind": resource})


def check_metric_name(metric: str, not_found: NotFound) -> None:
    """Raise ``BadRequest`` (not a path segment) or ``not_found`` (outside the metric-name set)."""
    problems = path_segment_problems(metric)
    if problems:
        raise BadRequest(f"Name parameter invalid: {_quoted(metric)}: {';'.join(problems)}")
    if metric_name_problems(metric):
        raise not_found
