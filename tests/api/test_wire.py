import gc
import gzip
import json
import tracemalloc

import pytest

from adapter.api import wire
from adapter.api.discovery import custom_resource_list, external_resource_list
from adapter.model import CustomMetricInfo, CustomValue, ExternalValue, GroupResource, ObjectRef
from adapter.naming.selectors import parse_selector


@pytest.mark.parametrize(("value", "text"), [
    (1.5, "1500m"), (2.0, "2"), (0.25, "250m"), (0.033, "33m"), (86, "86"), (120, "120"), (1500, "1500"),
    (2000, "2k"), (1.2e7, "12M"), (1e15, "1P"), (-1.5, "-1500m"), (0.0005, "0"), (1.005, "1005m"), (0, "0"),
    (33.3, "33300m"), (9.2e15, "9200T"),
])
def test_quantity(value: float, text: str) -> None:
    assert wire.quantity(value) == text


@pytest.mark.parametrize(("milli", "text"), [(1080, "1080m"), (80, "80m"), (10**12, "1G"), (3 * 10**6, "3k"),
                                             (1234567, "1234567m"), (5000, "5")])
def test_canonical_from_upstream_table(milli: int, text: str) -> None:
    assert wire.milli_to_quantity(milli) == text


def test_timestamp_is_rfc3339_utc_whole_seconds() -> None:
    assert wire.rfc3339(1724235330.999) == "2024-08-21T10:15:30Z"


POD = ObjectRef("Pod", "llm-0", "/v1", "ns1")


def test_v1beta1_item_shape_and_order() -> None:
    doc = wire.custom_list("v1beta1", [CustomValue(POD, "gpu_util", 1724235330, 87.5)])
    assert wire.dumps(doc) == (
        b'{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{},"items":['
        b'{"describedObject":{"kind":"Pod","namespace":"ns1","name":"llm-0","apiVersion":"/v1"},'
        b'"metricName":"gpu_util","timestamp":"2024-08-21T10:15:30Z","value":"87500m","selector":null}]}')


def test_v1beta2_item_with_selector_and_window() -> None:
    v = CustomValue(POD, "gpu_util", 1724235330, 87.5, parse_selector("gpu_model=H100"), 60)
    doc = wire.custom_list("v1beta2", [v])
    assert wire.dumps(doc) == (
        b'{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},"items":['
        b'{"describedObject":{"kind":"Pod","namespace":"ns1","name":"llm-0","apiVersion":"/v1"},'
        b'"metric":{"name":"gpu_util","selector":{"matchLabels":{"gpu_model":"H100"}}},'
        b'"timestamp":"2024-08-21T10:15:30Z","windowSeconds":60,"value":"87500m"}]}')


def test_namespace_object_has_no_namespace_key_and_empty_list_is_array() -> None:
    ns = ObjectRef("Namespace", "default", "/v1")
    doc = wire.custom_list("v1beta1", [CustomValue(ns, "m", 0, 0)])
    assert json.loads(wire.dumps(doc))["items"][0]["describedObject"] == {
        "kind": "Namespace", "name": "default", "apiVersion": "/v1"}
    assert json.loads(wire.dumps(wire.custom_list("v1beta2", [])))["items"] == []


def test_external_shape() -> None:
    doc = wire.external_list([ExternalValue("q", {"model_name": "llama"}, 1724235330, 12)])
    assert wire.dumps(doc) == (
        b'{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},'
        b'"items":[{"metricName":"q","metricLabels":{"model_name":"llama"},"timestamp":"2024-08-21T10:15:30Z",'
        b'"value":"12"}]}')


def test_go_html_escaping() -> None:
    assert wire.dumps({"a": "<&>"}) == b'{"a":"\\u003c\\u0026\\u003e"}'


def test_discovery_never_empty_and_scopes_consistent() -> None:
    assert custom_resource_list("v1beta2", [])["resources"] == [
        {"name": "custommetrics", "singularName": "", "namespaced": True, "kind": "MetricValueList",
         "verbs": ["get"]}]
    assert external_resource_list([])["resources"][0]["name"] == "externalmetrics"
    svc = GroupResource("", "services")
    doc = custom_resource_list("v1beta2", [CustomMetricInfo(svc, True, "a"), CustomMetricInfo(svc, False, "b")])
    assert [r["name"] for r in doc["resources"]] == ["services/a"]  # type: ignore[index]


def test_fast_encoder_is_byte_identical_and_memoizes() -> None:
    ns = ObjectRef("Namespace", "default", "/v1")
    values = [
        CustomValue(POD, "gpu_util", 1724235330.7, 87.5),
        CustomValue(POD, "gpu_util", 1724235330, 1.005, parse_selector("gpu in (a,b),!mig"), 60),
        CustomValue(ns, 'we"ird<&>', 0, -1.5, parse_selector("x=y")),
        CustomValue(ObjectRef("Pod", "p\u00e9", "/v1", "n"), "m", 1, 2e15),
    ]
    enc = wire.FastEncoder()
    for version in ("v1beta1", "v1beta2"):
        shape = (version, "pods", "ns", "gpu_util", "app=x", "")
        fast, gzipped = enc.custom(version, values, gzip_ok=True, shape=shape)
        assert not gzipped  # small bodies are never compressed
        assert fast == wire.dumps(wire.custom_list(version, values))
        assert enc.custom(version, values, shape=shape)[0] is fast  # same list object -> same bytes
        assert enc.custom(version, list(values), shape=shape)[0] is not fast  # another list: encoded anew
        assert enc.custom(version, values)[0] == fast  # no shape: encoded, not remembered
    assert enc.custom("v1beta2", [])[0] == wire.dumps(wire.custom_list("v1beta2", []))


def _values(n: int, tag: str) -> list[CustomValue]:
    return [CustomValue(ObjectRef("Pod", f"gpu-app-hd2ptgdr4v-{tag}-{j}", "/v1", "bench-000"), "gpu_util",
                        1724235330 + j, 0.5 + j) for j in range(n)]


def test_fast_encoder_body_memo_is_bounded_by_bytes() -> None:
    enc = wire.FastEncoder(max_body_bytes=20_000)
    for i in range(50):
        enc.custom("v1beta2", _values(5, str(i)), shape=("v1beta2", str(i)))
        assert enc._body_bytes <= 20_000
    assert enc._body_bytes == sum(b.cost for b in enc._bodies.values())


def test_by_name_answers_leave_no_body_behind() -> None:
    """One value in a new list per request can never hit: nothing is remembered for it."""
    enc = wire.FastEncoder()
    for i in range(3000):
        enc.custom("v1beta2", _values(1, str(i)))
    assert len(enc._bodies) == 0 and enc._body_bytes == 0


def test_body_memo_keeps_one_entry_per_request_shape() -> None:
    """The provider hands a new list per shape each time the query result changes: it replaces."""
    enc = wire.FastEncoder()
    for round_ in range(20):
        for shape in range(100):
            enc.custom("v1beta2", _values(3, f"{shape}"), shape=("v1beta2", "pods", "ns", f"m{shape}", "", ""))
        assert len(enc._bodies) == 100, round_


def test_body_memo_caps_entries() -> None:
    enc = wire.FastEncoder(max_bodies=100)
    for i in range(1000):
        enc.custom("v1beta1", _values(1, str(i)), shape=("v1beta1", str(i)))
    assert len(enc._bodies) == 100


def test_body_memo_bound_covers_what_it_really_holds() -> None:
    """tracemalloc: everything the body memo keeps alive (bodies, keys, values lists, bookkeeping)
    stays within ``max_body_bytes``, for one-item and for larger lists. ObjectRefs are shared, as the
    provider's are."""
    pool = [ObjectRef("Pod", f"gpu-app-hd2ptgdr4v-{j:05d}", "/v1", "bench-000") for j in range(20_000)]

    def requests(items: int) -> list[tuple[tuple[str, ...], list[CustomValue]]]:
        return [(("v1beta2", "pods", f"bench-{i:03d}", "gpu_util", f"app=gpu-app-{i}", ""),
                 [CustomValue(pool[(i * items + j) % len(pool)], "gpu_util", 1724235330.0 + j % 7, 0.5 + j)
                  for j in range(items)]) for i in range(20_000 // items)]

    for items in (1, 20, 200):
        enc = wire.FastEncoder(max_body_bytes=1024 * 1024, max_bodies=1_000_000, max_fragments=1_000_000)
        for _, values in requests(items):  # fragments first: only the body memo grows below
            enc._encode("v1beta2", values)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for shape, values in requests(items):
                enc.custom("v1beta2", values, shape=shape)
            del shape, values  # the memo alone holds what it remembered
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert enc._body_bytes <= 1024 * 1024
        assert held <= 1024 * 1024, (items, held, len(enc._bodies))


def test_fragment_memos_are_capped() -> None:
    enc = wire.FastEncoder()
    for i in range(20_000):
        enc._quantity(i * 1.001)
        enc._ref(ObjectRef("Pod", f"p{i}", "/v1", "ns"))
        enc._time(1724235330 + i)
    assert len(enc._qty) <= 8192 and len(enc._refs) <= 8192 and len(enc._ts) <= 1024


def test_large_bodies_gzip_as_the_go_apiserver_does() -> None:
    """Above 128 KiB and only when Accept-Encoding has the token ``gzip``; the gzip form is memoized."""
    values = [CustomValue(ObjectRef("Pod", f"worker-{i:05d}", "/v1", "big"), "gpu_util", 1724235330, i % 97)
              for i in range(2000)]
    enc = wire.FastEncoder()
    plain, gzipped = enc.custom("v1beta2", values)
    assert not gzipped and len(plain) > wire.GZIP_THRESHOLD
    gz, gzipped = enc.custom("v1beta2", values, gzip_ok=True)
    assert gzipped and gzip.decompress(gz) == plain and len(gz) < len(plain) // 5
    shape = ("v1beta2", "pods", "big", "gpu_util", "", "")
    gz = enc.custom("v1beta2", values, gzip_ok=True, shape=shape)[0]
    assert enc.custom("v1beta2", values, gzip_ok=True, shape=shape)[0] is gz  # compressed once
    assert enc.custom("v1beta2", values, shape=shape)[0] == plain
    (entry,) = enc._bodies.values()
    assert enc._body_bytes == entry.cost == wire._body_cost(shape, values, plain, gz)
    assert wire.accepts_gzip("gzip") and wire.accepts_gzip("deflate, gzip") and wire.accepts_gzip(" gzip ,br")
    assert not wire.accepts_gzip(None) and not wire.accepts_gzip("") and not wire.accepts_gzip("gzip;q=0")
    assert not wire.accepts_gzip("x-gzip")
