"""RequestInfo and SAR attributes: one row per URL form of protocol.md §1.2 / §5.4."""

from __future__ import annotations

import pytest

from adapter.api.requestinfo import (
    SelectorError,
    parse_label_selector,
    request_info,
    sar_attributes,
)

CM = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"


def _ra(**kw: str) -> dict[str, object]:
    return {"resourceAttributes": kw}


CASES = [
    ("pods-wildcard-encoded", f"{CM}/namespaces/ns1/pods/%2A/gpu_util", "labelSelector=app%3Dllm",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="pods",
         subresource="gpu_util", name="*")),
    ("pods-wildcard-literal", f"{CM}/namespaces/ns1/pods/*/gpu_util", "labelSelector=app%3Dllm",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="pods",
         subresource="gpu_util", name="*")),
    ("pod-named", f"{CM}/namespaces/ns1/pods/p1/gpu_util", "",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="pods",
         subresource="gpu_util", name="p1")),
    ("deployment", f"{CM}/namespaces/ns1/deployments.apps/llm/queue_depth", "",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2",
         resource="deployments.apps", subresource="queue_depth", name="llm")),
    ("namespace-metric", f"{CM}/namespaces/ns1/metrics/queue_depth", "",
     _ra(namespace="ns1", verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="metrics",
         name="queue_depth")),
    ("node", f"{CM}/nodes/node-1/gpu_util", "",
     _ra(verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="nodes",
         subresource="gpu_util", name="node-1")),
    ("nodes-wildcard", "/apis/custom.metrics.k8s.io/v1beta1/nodes/%2A/gpu_util", "",
     _ra(verb="get", group="custom.metrics.k8s.io", version="v1beta1", resource="nodes",
         subresource="gpu_util", name="*")),
    ("external", f"{EM}/namespaces/ns1/vllm_queue_depth", "labelSelector=model_name%3Dllama",
     {"resourceAttributes": {"namespace": "ns1", "verb": "list", "group": "external.metrics.k8s.io",
                             "version": "v1beta1", "resource": "vllm_queue_depth",
                             "labelSelector": {"requirements": [
                                 {"key": "model_name", "operator": "In", "values": ["llama"]}]}}}),
    ("external-all-ops", f"{EM}/namespaces/ns1/q",
     "labelSelector=z%3D1%2Ca%21%3D2%2Cb+in+%28y%2Cx%29%2Cc+notin+%28q%29%2Cd%2C%21e%2Cf%3E3",
     {"resourceAttributes": {"namespace": "ns1", "verb": "list", "group": "external.metrics.k8s.io",
                             "version": "v1beta1", "resource": "q",
                             "labelSelector": {"requirements": [
                                 {"key": "a", "operator": "NotIn", "values": ["2"]},
                                 {"key": "b", "operator": "In", "values": ["x", "y"]},
                                 {"key": "c", "operator": "NotIn", "values": ["q"]},
                                 {"key": "d", "operator": "Exists"},
                                 {"key": "e", "operator": "DoesNotExist"},
                                 {"key": "z", "operator": "In", "values": ["1"]}]}}}),
    ("external-bad-selector", f"{EM}/namespaces/ns1/q", "labelSelector=a%3D%3D%3D",
     _ra(namespace="ns1", verb="list", group="external.metrics.k8s.io", version="v1beta1", resource="q")),
    ("external-watch", f"{EM}/namespaces/ns1/q", "watch=true",
     _ra(namespace="ns1", verb="watch", group="external.metrics.k8s.io", version="v1beta1", resource="q")),
    ("external-list-all-namespaces", f"{EM}/q", "",
     _ra(verb="list", group="external.metrics.k8s.io", version="v1beta1", resource="q")),
    ("discovery", CM, "", {"nonResourceAttributes": {"path": CM, "verb": "get"}}),
    ("group", "/apis/custom.metrics.k8s.io", "",
     {"nonResourceAttributes": {"path": "/apis/custom.metrics.k8s.io", "verb": "get"}}),
    ("apis", "/apis", "", {"nonResourceAttributes": {"path": "/apis", "verb": "get"}}),
    ("healthz", "/healthz", "", {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}),
    ("openapi", "/openapi/v2", "", {"nonResourceAttributes": {"path": "/openapi/v2", "verb": "get"}}),
    ("core-pod", "/api/v1/namespaces/ns1/pods/p1", "",
     _ra(namespace="ns1", verb="get", version="v1", resource="pods", name="p1")),
    ("namespace-status", "/api/v1/namespaces/ns1/status", "",
     _ra(namespace="ns1", verb="get", version="v1", resource="namespaces", name="ns1",
         subresource="status")),
    ("special-watch", "/api/v1/watch/namespaces/ns1/pods", "",
     _ra(namespace="ns1", verb="watch", version="v1", resource="pods")),
    ("name-from-field-selector", "/api/v1/namespaces/ns1/pods", "fieldSelector=metadata.name%3Dp1",
     {"resourceAttributes": {"namespace": "ns1", "verb": "list", "version": "v1", "resource": "pods",
                             "name": "p1", "fieldSelector": {"requirements": [
                                 {"key": "metadata.name", "operator": "In", "values": ["p1"]}]}}}),
]


@pytest.mark.parametrize(("path", "query", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sar_attributes(path: str, query: str, expected: dict[str, object]) -> None:
    assert sar_attributes(request_info("GET", path, query)) == expected


def test_key_order_matches_go() -> None:
    attrs = sar_attributes(request_info("GET", f"{CM}/namespaces/ns1/pods/%2A/gpu_util", ""))
    ra = attrs["resourceAttributes"]
    assert isinstance(ra, dict)
    assert list(ra) == ["namespace", "verb", "group", "version", "resource", "subresource", "name"]


def test_namespace_form_parts_and_methods() -> None:
    info = request_info("GET", f"{CM}/namespaces/ns1/foo", "")
    got = (info.namespace, info.resource, info.name, info.parts, info.verb)
    assert got == ("ns1", "foo", "", ("foo",), "list")
    assert request_info("POST", f"{EM}/namespaces/ns1/q").verb == "create"
    assert request_info("DELETE", f"{EM}/namespaces/ns1/q").verb == "deletecollection"
    assert request_info("HEAD", "/healthz").verb == "head"
    assert request_info(b"GET".decode(), b"/apis/x/v1/namespaces/a%2Fb/pods/p", b"").namespace == "a"


@pytest.mark.parametrize("text", ["a in (x", "a b", "a=b,", "in in (x)", "!", "-a=b", "a=b c"])
def test_bad_label_selectors(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_label_selector_parse() -> None:
    got = parse_label_selector("b = 1 , a notin ( y , x )")
    assert got == [("a", "notin", ["x", "y"]), ("b", "=", ["1"])]
    assert parse_label_selector("") == []
