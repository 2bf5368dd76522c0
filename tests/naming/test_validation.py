"""Names from request paths, validated as Kubernetes validates them (table tests, pure)."""

from __future__ import annotations

import pytest

from adapter.errors import AdapterError, BadRequest, NotFound
from adapter.naming.validation import (
    check_metric_name,
    check_namespace,
    check_object_name,
    dns1035_label_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    metric_name_problems,
    object_name_problems,
    path_segment_problems,
)


@pytest.mark.parametrize(("name", "problems"), [
    ("p1", []), ("a.b", []), ("...", []), ("*", []), ('"', []),
    (".", ["may not be '.'"]), ("..", ["may not be '..'"]),
    ("a/b", ["may not contain '/'"]), ("a%b", ["may not contain '%'"]), ("/%", ["may not contain '/'",
                                                                            "may not contain '%'"]),
], ids=["plain", "dotted", "three-dots", "star", "quote", "dot", "dotdot", "slash", "percent", "both"])
def test_path_segment(name: str, problems: list[str]) -> None:
    assert path_segment_problems(name) == problems


@pytest.mark.parametrize(("value", "label", "subdomain", "dns1035"), [
    ("ns1", True, True, True),
    ("ml-a", True, True, True),
    ("1abc", True, True, False),
    ("a" * 63, True, True, True),
    ("a" * 64, False, True, False),
    ("a." * 126 + "a", False, True, False),  # 253 characters
    ("a." * 126 + "ab", False, False, False),  # 254 characters
    ("node-1.example", False, True, False),
    ("Ns1", False, False, False),
    ("-ns", False, False, False),
    ("ns-", False, False, False),
    ("a..b", False, False, False),
    ("a_b", False, False, False),
    ("", False, False, False),
    ("}", False, False, False),
    ('"} or vector(1) #', False, False, False),
    ("\\d+", False, False, False),
    (")&", False, False, False),
    ("ns1\n", False, False, False),
    ("é", False, False, False),
], ids=["simple", "dash", "digit-first", "63", "64", "subdomain-253", "subdomain-254", "dotted", "upper",
        "leading-dash", "trailing-dash", "empty-label", "underscore", "empty", "brace", "injection", "regex",
        "paren-amp", "trailing-newline", "non-ascii"])
def test_dns_names(value: str, label: bool, subdomain: bool, dns1035: bool) -> None:
    assert (not dns1123_label_problems(value)) is label
    assert (not dns1123_subdomain_problems(value)) is subdomain
    assert (not dns1035_label_problems(value)) is dns1035


@pytest.mark.parametrize(("resource", "name", "ok"), [
    ("pods", "train-0", True),
    ("pods", "p2.dotted", True),
    ("pods", "P1", False),
    ("pods", "a|b", False),
    ("nodes", "node-1.example", True),
    ("deployments.apps", "llm", True),
    ("widgets.example.com", "w.1", True),  # custom resources: DNS-1123 subdomain
    ("namespaces", "ns1", True),
    ("namespaces", "ns.1", False),  # a namespace is a label
    ("services", "web", True),
    ("services", "1web", False),  # a service is a DNS-1035 label
    ("clusterroles.rbac.authorization.k8s.io", "system:controller:hpa", True),  # RBAC: path segments
    ("clusterroles.rbac.authorization.k8s.io", 'x"y', False),
    ("clusterroles", "system:x", False),  # not the RBAC group: a subdomain
], ids=["pod", "pod-dotted", "pod-upper", "pod-regex", "node", "deployment", "custom-resource", "namespace",
        "namespace-dotted", "service", "service-digit", "rbac-colons", "rbac-quote", "rbac-without-group"])
def test_object_names_per_resource(resource: str, name: str, ok: bool) -> None:
    assert (not object_name_problems(resource, name)) is ok


@pytest.mark.parametrize(("metric", "ok"), [
    ("gpu_utilization", True), ("DCGM_FI_DEV_GPU_UTIL", True), ("http:requests:rate5m", True),
    ("http.server.duration", True), ("s0-prometheus-queue", True), ("a" * 253, True), ("a" * 254, False),
    ("", False), (".", False), ("..", False), ("a b", False), ('a"', False), ("a{b}", False), ("a|b", False),
    ("a\\b", False), ("é", False), ("a\n", False),
], ids=["snake", "upper", "colons", "dotted", "dashes", "253", "254", "empty", "dot", "dotdot", "space", "quote",
        "braces", "pipe", "backslash", "non-ascii", "trailing-newline"])
def test_metric_names(metric: str, ok: bool) -> None:
    assert (not metric_name_problems(metric)) is ok


@pytest.mark.parametrize(("call", "code", "message"), [
    (lambda: check_namespace("ns1"), 0, ""),
    (lambda: check_namespace('"'), 404, 'namespaces "\\"" not found'),
    (lambda: check_namespace("}"), 404, 'namespaces "}" not found'),
    (lambda: check_namespace(".."), 400, "Namespace parameter invalid: \"..\": may not be '..'"),
    (lambda: check_namespace("a%b"), 400, "Namespace parameter invalid: \"a%b\": may not contain '%'"),
    (lambda: check_object_name("pods", "p1"), 0, ""),
    (lambda: check_object_name("pods", ")&"), 404, 'pods ")&" not found'),
    (lambda: check_object_name("pods", "."), 400, "Name parameter invalid: \".\": may not be '.'"),
    (lambda: check_metric_name("gpu", NotFound("nf")), 0, ""),
    (lambda: check_metric_name("a|b", NotFound("nf")), 404, "nf"),
    (lambda: check_metric_name("..", NotFound("nf")), 400, "Name parameter invalid: \"..\": may not be '..'"),
], ids=["ns-ok", "ns-quote", "ns-brace", "ns-dotdot", "ns-percent", "name-ok", "name-404", "name-dot", "metric-ok",
        "metric-404", "metric-dotdot"])
def test_checks_raise_status_errors(call: object, code: int, message: str) -> None:
    assert callable(call)
    if not code:
        call()
        return
    with pytest.raises(AdapterError) as exc:
        call()
    assert exc.value.code == code and exc.value.message == message
    assert isinstance(exc.value, BadRequest if code == 400 else NotFound)


def test_not_found_names_the_object_in_details() -> None:
    with pytest.raises(NotFound) as exc:
        check_object_name("pods", "P")
    assert exc.value.details == {"name": "P", "kind": "pods"}
