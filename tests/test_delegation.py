"""Delegate discovery (background fetch, last good kept for a bounded time) and the merge of a delegate's
resource list into ours, against a real HTTPS server (tests/support/recorder.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.api import discovery
from adapter.api.delegation import Merger
from adapter.backends.delegate import DelegateClient, DelegateConfig, DelegateUnavailable
from adapter.model import CustomMetricInfo, ExternalMetricInfo, GroupResource
from adapter.provider.delegation import Delegate, parse_resource_list
from tests.fakekube.tlsserver import Pki
from tests.support.recorder import RESOURCE_LIST, Recorder, recorder

EXT_GV = "/apis/external.metrics.k8s.io/v1beta1"
CM = "/apis/custom.metrics.k8s.io"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def rec(pki: Pki) -> Iterator[Recorder]:
    with recorder(pki.cert("serving"), pki.key("serving")) as r:
        yield r


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def delegate(pki: Pki, url: str, group: str = discovery.EXTERNAL, versions: tuple[str, ...] = ("v1beta1",),
             clock: Clock | None = None, max_age: float = 60, **kw: object) -> Delegate:
    client = DelegateClient(DelegateConfig(url, ca_file=pki.cert("serving-ca"), timeout=5, **kw))  # type: ignore[arg-type]
    ups: list[tuple[str, str, bool]] = []
    d = Delegate(group, versions, client, 1, max_age, clock=clock or Clock(),
                 on_up=lambda g, v, up: ups.append((g, v, up)))
    d.ups = ups  # type: ignore[attr-defined]
    return d


def resource_list(group_version: str, *entries: tuple[str, bool]) -> bytes:
    return json.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                       "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": "MetricValueList",
                                      "verbs": ["get"]} for n, ns in entries]}).encode()


def test_last_good_list_is_kept_for_max_age_then_dropped(pki: Pki, rec: Recorder) -> None:
    clock = Clock()
    d = delegate(pki, rec.url, clock=clock, max_age=60)
    rec.replies[EXT_GV] = (200, RESOURCE_LIST, "application/json", {})
    asyncio.run(d.refresh_now())
    assert d.resources("v1beta1") == (("keda-metric", True),)
    rec.replies[EXT_GV] = (500, b"boom", "text/plain", {})
    clock.now += 59
    asyncio.run(d.refresh_now())
    assert d.resources("v1beta1") == (("keda-metric", True),)  # down, last good still listed
    clock.now += 2
    assert d.resources("v1beta1") == ()  # older than max_age: left out
    rec.replies[EXT_GV] = (200, RESOURCE_LIST, "application/json", {})
    asyncio.run(d.refresh_now())
    assert d.resources("v1beta1") == (("keda-metric", True),)
    assert d.ups == [(discovery.EXTERNAL, "v1beta1", True), (discovery.EXTERNAL, "v1beta1", False),  # type: ignore[attr-defined]
                     (discovery.EXTERNAL, "v1beta1", True)]


def test_a_version_the_delegate_does_not_serve_is_empty_and_up(pki: Pki, rec: Recorder) -> None:
    d = delegate(pki, rec.url, group=discovery.CUSTOM, versions=discovery.CUSTOM_VERSIONS)
    rec.replies[f"{CM}/v1beta1"] = (200, resource_list("custom.metrics.k8s.io/v1beta1", ("pods/x", True)),
                                    "application/json", {})
    rec.replies[f"{CM}/v1beta2"] = (404, b'{"kind":"Status"}', "application/json", {})
    asyncio.run(d.refresh_now())
    assert d.resources("v1beta1") == (("pods/x", True),) and d.resources("v1beta2") == ()
    assert all(up for _, _, up in d.ups)  # type: ignore[attr-defined]


def test_unreachable_delegate_is_down_and_logged_once(pki: Pki, rec: Recorder,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    d = delegate(pki, "https://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, "adapter.provider.delegation"):
        for _ in range(3):
            asyncio.run(d.refresh_now())
    assert d.resources("v1beta1") == ()
    assert [r.getMessage() for r in caplog.records].count(
        "delegate discovery failed: its resources are listed from the last good answer for at most 60s, then "
        "left out") == 1


def test_tls_is_verified(pki: Pki, rec: Recorder) -> None:
    client = DelegateClient(DelegateConfig(rec.url, ca_file=pki.cert("front-proxy-ca"), timeout=5))
    with pytest.raises(DelegateUnavailable, match="is unreachable"):
        client.get_sync(EXT_GV)
    assert rec.requests == []  # the handshake failed: nothing was sent
    client = DelegateClient(DelegateConfig(rec.url, timeout=5))  # system roots do not know our test CA
    with pytest.raises(DelegateUnavailable):
        client.get_sync(EXT_GV)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"resources": 3}'])
def test_a_malformed_list_is_a_failure(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_resource_list(body)


def test_malformed_entries_are_skipped() -> None:
    body = json.dumps({"resources": [{"name": "ok", "namespaced": True}, {"name": 3, "namespaced": True},
                                     {"name": "", "namespaced": True}, {"name": "x", "namespaced": "yes"}, 7]})
    assert parse_resource_list(body.encode()) == (("ok", True),)


def names(doc: dict[str, object]) -> list[tuple[str, bool]]:
    return [(str(r["name"]), bool(r["namespaced"])) for r in doc["resources"]]  # type: ignore[attr-defined]


def merged_custom(pki: Pki, rec: Recorder, ours: list[CustomMetricInfo], *theirs: tuple[str, bool]
                  ) -> tuple[dict[str, object], Delegate]:
    d = delegate(pki, rec.url, group=discovery.CUSTOM, versions=("v1beta1",))
    rec.replies[f"{CM}/v1beta1"] = (200, resource_list("custom.metrics.k8s.io/v1beta1", *theirs),
                                    "application/json", {})
    asyncio.run(d.refresh_now())
    doc = discovery.custom_resource_list("v1beta1", ours)
    return Merger().merge(doc, not ours, d, "v1beta1", "MetricValueList"), d


PODS = GroupResource("", "pods")
NODES = GroupResource("", "nodes")


def test_merge_ours_first_theirs_after_ours_win_a_clash(pki: Pki, rec: Recorder,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    ours = [CustomMetricInfo(PODS, True, "gpu"), CustomMetricInfo(NODES, False, "temp")]
    with caplog.at_level(logging.WARNING, "adapter.api.delegation"):
        doc, d = merged_custom(pki, rec, ours, ("pods/gpu", True), ("pods/queue", True), ("nodes/gpu", True),
                               ("deployments.apps/qps", True))
        # nodes/gpu: we list nodes cluster-scoped; listing it namespaced too would drop the group version
        assert names(doc) == [("pods/gpu", True), ("nodes/temp", False), ("pods/queue", True),
                              ("deployments.apps/qps", True)]
        merger = Merger()
        for _ in range(3):
            merger.merge(discovery.custom_resource_list("v1beta1", ours), False, d, "v1beta1", "MetricValueList")
    left_out = [r for r in caplog.records if r.getMessage().startswith("delegate resource left out")]
    assert sorted(r.resource for r in left_out) == ["nodes/gpu", "nodes/gpu", "pods/gpu", "pods/gpu"]  # type: ignore[attr-defined]
    assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == "custom.metrics.k8s.io/v1beta1"
    assert all(set(r) == {"name", "singularName", "namespaced", "kind", "verbs"}  # our exact entry shape
               for r in doc["resources"])  # type: ignore[attr-defined]


def test_merge_drops_our_placeholder_only_when_they_list_something(pki: Pki, rec: Recorder) -> None:
    doc, _ = merged_custom(pki, rec, [], ("pods/queue", True))
    assert names(doc) == [("pods/queue", True)]
    doc, _ = merged_custom(pki, rec, [])
    assert names(doc) == [("custommetrics", True)]


def test_merge_external(pki: Pki, rec: Recorder) -> None:
    d = delegate(pki, rec.url)
    rec.replies[EXT_GV] = (200, RESOURCE_LIST, "application/json", {})
    asyncio.run(d.refresh_now())
    doc = Merger().merge(discovery.external_resource_list([ExternalMetricInfo("queue")]), False, d, "v1beta1",
                         "ExternalMetricValueList")
    assert names(doc) == [("queue", True), ("keda-metric", True)]
    assert {r["kind"] for r in doc["resources"]} == {"ExternalMetricValueList"}  # type: ignore[attr-defined]


def test_body_size_is_bounded(pki: Pki, rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapter.backends.delegate.MAX_BODY", 1000)
    rec.reply = (200, b"x" * 5000, "application/json", {})
    client = DelegateClient(DelegateConfig(rec.url, ca_file=pki.cert("serving-ca"), timeout=5))
    with pytest.raises(DelegateUnavailable, match="more than 1000 bytes") as e:
        client.get_sync("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/b")
    assert e.value.outcome == "too_large"


def test_no_token_file_sends_no_authorization(pki: Pki, rec: Recorder, tmp_path: Path) -> None:
    client = DelegateClient(DelegateConfig(rec.url, ca_file=pki.cert("serving-ca"), timeout=5))
    client.get_sync(EXT_GV)
    assert "Authorization" not in rec.requests[-1][1]


def test_a_changed_ca_bundle_is_used_without_a_restart(pki: Pki, rec: Recorder, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_bytes(pki.cert("front-proxy-ca").read_bytes())  # not the CA that signed the delegate
    client = DelegateClient(DelegateConfig(rec.url, ca_file=bundle, timeout=5))
    with pytest.raises(DelegateUnavailable):
        client.get_sync(EXT_GV)
    bundle.write_bytes(pki.cert("serving-ca").read_bytes())  # the mounted ConfigMap updated
    assert client.get_sync(EXT_GV).status == 200  # read again at the next connection
