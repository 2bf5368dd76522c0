"""Team-owned rules end to end: MetricRule objects in a (fake, real-HTTPS) cluster, a real Prometheus
(behind a counting proxy) scraping a real exporter, the real adapter with ``--metric-rules true``.

A MetricRule in team-a serves its metrics for team-a only (404 in team-b, whatever its template does:
every query sent carries ``namespace="team-a"`` on every selector), its status says whether it was
accepted and what it serves, a cluster rule wins a name clash, and a deleted MetricRule's metric goes
without a restart."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import promql_parser as pp
import pytest
from hypothesis import HealthCheck, given, settings

from adapter.naming.promql import parse
from adapter.naming.shape import selectors
from tests.fakekube import FakeKube
from tests.integration.conftest import RULES
from tests.support.adapter import Adapter, adapter
from tests.support.hostile import hostile_templates
from tests.support.proxy import Proxy, counting_proxy
from tests.support.stack import exporter_and_prometheus

SERIES: list[dict[str, object]] = [
    {"name": "team_queue", "labels": {"namespace": "team-a", "pod": "a1"}, "value": 7},
    {"name": "team_queue", "labels": {"namespace": "team-b", "pod": "b1"}, "value": 99},
    {"name": "gpu_util", "labels": {"namespace": "team-a", "pod": "a1", "gpu": "0"}, "value": 50},
    {"name": "team_backlog", "labels": {"namespace": "team-a", "queue": "q"}, "value": 5},
    {"name": "team_backlog", "labels": {"namespace": "team-b", "queue": "q"}, "value": 500},
]
PODS = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/{pod}/{metric}"
EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}"
OVERRIDES = {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
SUM = "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"
COLLECTION = "/apis/accel-metrics.io/v1alpha1/metricrules"


class Env:
    def __init__(self, fk: FakeKube, ad: Adapter, proxy: Proxy) -> None:
        self.fk, self.ad, self.proxy = fk, ad, proxy
        self.before_listing = (0, 0)  # (MetricRule's metric, cluster rule's metric) while listing failed

    def status(self, name: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """team-a/``name``'s status once it describes the current generation and satisfies ``ok``."""
        deadline = time.monotonic() + timeout
        obj: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            obj = self.fk.metricrule("team-a", name)
            st = (obj or {}).get("status") or {}
            if obj and st.get("observedGeneration") == obj["metadata"]["generation"] and ok(st):
                return dict(st)
            time.sleep(0.1)
        raise AssertionError(f"status of team-a/{name}: {obj}\n{self.ad.log_text()[-3000:]}")

    def value(self, path: str, timeout: float = 20) -> tuple[int, dict[str, Any]]:
        """GET until it answers 200 or 404 (bounded): a request right after a reload may meet a 503."""
        deadline = time.monotonic() + timeout
        while True:
            code, doc, _ = self.ad.get(path)
            if code in (200, 404) or time.monotonic() > deadline:
                return code, doc
            time.sleep(0.1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("metricrules")
    with exporter_and_prometheus(tmp, SERIES, wait_for="team_backlog", min_results=2) as (_, prom), \
            counting_proxy(prom.url) as proxy, FakeKube(tmp / "kube") as fk:
        for ns, pod in (("team-a", "a1"), ("team-b", "b1")):
            fk.add_pod(ns, pod)
        # a MetricRule exists before the adapter starts, but MetricRules cannot be listed at first (as
        # before the CRD is installed): the adapter starts and serves the cluster's rules meanwhile
        fk.put_metricrule("team-a", "early", {"rules": [rule("team_queue", "team_queue_early")]})
        fk.state.fail_status[COLLECTION] = 503
        with adapter(tmp, proxy.url, "--config", str(RULES), "--cache-ttl", "0", "--lister-kubeconfig",
                     str(fk.kubeconfig), "--authentication-skip-lookup", "--metric-rules", "true") as ad:
            env = Env(fk, ad, proxy)
            env.before_listing = (env.value(PODS.format(ns="team-a", pod="a1", metric="team_queue_early"))[0],
                                  env.value(PODS.format(ns="team-a", pod="a1", metric="gpu_utilization"))[0])
            del fk.state.fail_status[COLLECTION]
            yield env


def accepted(st: dict[str, Any]) -> str:
    return next((c["status"] for c in st.get("conditions") or [] if c["type"] == "Accepted"), "")


def rule(series: str, name: str, template: str = SUM, **extra: Any) -> dict[str, Any]:
    return {"seriesQuery": f'{series}{{pod!=""}}', "resources": {"overrides": OVERRIDES},
            "name": {"matches": f"^{series}$", "as": name}, "metricsQuery": template, **extra}


def test_metricrules_that_cannot_be_listed_at_start_are_served_once_they_can(env: Env) -> None:
    assert env.before_listing == (404, 200)  # the cluster's rules served meanwhile
    env.status("early", lambda s: s.get("metrics") == ["team_queue_early"])
    code, doc = env.value(PODS.format(ns="team-a", pod="a1", metric="team_queue_early"))
    assert code == 200 and [i["value"] for i in doc["items"]] == ["7"], doc
    assert "cannot list MetricRules; serving without them" in env.ad.log_text()


def test_a_metricrule_serves_its_namespace_and_no_other(env: Env) -> None:
    env.fk.put_metricrule("team-a", "queue", {"rules": [rule("team_queue", "team_queue_depth")]})
    st = env.status("queue", lambda s: s.get("metrics") == ["team_queue_depth"])
    assert accepted(st) == "True" and st["shadowed"] == []
    code, doc = env.value(PODS.format(ns="team-a", pod="a1", metric="team_queue_depth"))
    assert code == 200, doc
    assert [i["value"] for i in doc["items"]] == ["7"]
    for pod in ("b1", "*"):  # the metric does not exist in team-b: 404, never its value
        code, doc = env.value(PODS.format(ns="team-b", pod=pod, metric="team_queue_depth"))
        assert code == 404 and doc["reason"] == "NotFound", doc


def test_a_metricrule_status_is_written_once_per_change(env: Env) -> None:
    env.fk.put_metricrule("team-a", "once", {"rules": [rule("team_queue", "team_queue_once")]})
    env.status("once", lambda s: s.get("metrics") == ["team_queue_once"])
    path = "/apis/accel-metrics.io/v1alpha1/namespaces/team-a/metricrules/once/status"
    writes = len(env.fk.state.recorded("PATCH", path))
    # discovery and the status check keep running (every second): what they would write is what the
    # object shows, so nothing more is written
    t0 = time.time()
    env.ad.wait_metric("accel_adapter_relist_last_success_timestamp_seconds", lambda v: v > t0 + 2.5)
    assert len(env.fk.state.recorded("PATCH", path)) == writes
    assert all(r.body["status"]["observedGeneration"] == 1 for r in env.fk.state.recorded("PATCH", path))


def _sent(proxy: Proxy) -> list[str]:
    out = []
    with proxy.lock:
        raw = list(proxy.queries)
    for q in raw:
        path, _, body = q.partition(" ")
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        params.update(urllib.parse.parse_qs(body))
        out += params.get("query", [])
    return out


def _confined(query: str) -> bool:
    sels = selectors(parse(query))
    return bool(sels) and all(any((m.name, m.op, m.value) == ("namespace", pp.MatchOp.Equal, "team-a")
                                  for m in s.matchers.matchers) for s in sels)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(template=hostile_templates())
def test_whatever_the_template_every_query_sent_is_confined_to_its_namespace(env: Env, template: str) -> None:
    env.fk.put_metricrule("team-a", "hostile", {"rules": [rule("team_queue", "team_queue_hostile", template)]})
    env.status("hostile", lambda s: accepted(s) == "True")
    env.proxy.reset()
    code, doc = env.value(PODS.format(ns="team-a", pod="a1", metric="team_queue_hostile"))
    assert code in (200, 404), doc
    if code == 200:
        assert all(float(i["value"]) < 99 for i in doc["items"]), doc  # team-a's 7s only, never team-b's 99
    sent = _sent(env.proxy)
    assert (code == 404 and not sent) or sent
    assert all(_confined(q) for q in sent), sent
    code, doc = env.value(PODS.format(ns="team-b", pod="b1", metric="team_queue_hostile"))
    assert code == 404, doc


@pytest.mark.parametrize(("spec", "message"), [
    ({"rules": [rule("team_queue", "team_bad", "sum(<<.Series>>{<<.LabelMatchers>>}")]},
     "metricrule:team-a/bad: rules[0].metricsQuery: invalid PromQL"),
    ({"rules": [{**rule("team_queue", "team_bad"), "seriesQery": "x"}]},
     "metricrule:team-a/bad: rules[0].seriesQery: unknown field (did you mean seriesQuery?)"),
    ({"rules": [{**rule("team_queue", "team_bad"),
                 "resources": {"overrides": {**OVERRIDES, "node": {"resource": "node"}}}}]},
     "metricrule:team-a/bad: rules[0].resources.overrides.node: nodes is not namespaced"),
], ids=["invalid-promql", "unknown-field", "root-scoped"])
def test_an_invalid_metricrule_is_rejected_with_the_file_style_message(
        env: Env, spec: dict[str, Any], message: str) -> None:
    env.fk.put_metricrule("team-a", "bad", spec)
    st = env.status("bad", lambda s: accepted(s) == "False" and message in s["conditions"][0]["message"])
    assert st["conditions"][0]["reason"] == "Invalid" and st["conditions"][0]["message"].startswith(message)
    assert st["metrics"] == []
    code, doc = env.value(PODS.format(ns="team-a", pod="a1", metric="team_bad"))
    assert code == 404, doc


def test_a_cluster_rule_wins_a_name_clash(env: Env) -> None:
    env.fk.put_metricrule("team-a", "clash", {"rules": [rule("team_queue", "gpu_utilization")]})
    st = env.status("clash", lambda s: s.get("shadowed") == ["gpu_utilization"])
    assert accepted(st) == "True" and st["metrics"] == []
    assert "a cluster rule serves gpu_utilization instead" in st["conditions"][0]["message"]
    code, doc = env.value(PODS.format(ns="team-a", pod="a1", metric="gpu_utilization"))
    # the cluster rule's value (gpu_util), not team_queue's 7
    assert code == 200 and [i["value"] for i in doc["items"]] == ["50"], doc


def test_external_rules_of_a_metricrule_are_confined_too(env: Env) -> None:
    ext = {"seriesQuery": 'team_backlog{queue!=""}',
           "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
           "metricsQuery": "sum(<<.Series>>) by (queue)"}  # drops <<.LabelMatchers>> on purpose
    env.fk.put_metricrule("team-a", "backlog", {"externalRules": [ext]})
    env.status("backlog", lambda s: s.get("metrics") == ["team_backlog"])
    code, doc = env.value(EXTERNAL.format(ns="team-a", metric="team_backlog"))
    assert code == 200, doc
    assert [i["value"] for i in doc["items"]] == ["5"]
    code, doc = env.value(EXTERNAL.format(ns="team-b", metric="team_backlog"))
    assert code == 404, doc


def test_deleting_a_metricrule_removes_its_metric_without_a_restart(env: Env) -> None:
    pid = env.ad.proc.pid
    env.fk.put_metricrule("team-a", "gone", {"rules": [rule("team_queue", "team_queue_gone")]})
    env.status("gone", lambda s: s.get("metrics") == ["team_queue_gone"])
    path = PODS.format(ns="team-a", pod="a1", metric="team_queue_gone")
    assert env.value(path)[0] == 200
    env.fk.delete_metricrule("team-a", "gone")
    deadline = time.monotonic() + 20
    while env.value(path)[0] != 404:
        assert time.monotonic() < deadline, env.ad.log_text()[-3000:]
        time.sleep(0.1)
    assert env.ad.proc.pid == pid and env.ad.proc.poll() is None
    code, doc, _ = env.ad.get("/apis/custom.metrics.k8s.io/v1beta2")
    assert code == 200
    assert "team_queue_gone" not in json.dumps(doc)
