"""MetricRules judged, indexed per namespace and given a status, over an in-memory ``MetricRuleSource``
(the real watch and status subresource are in tests/integration/test_metricrules.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapter.model import GroupResource
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.ports import MetricRuleObject
from adapter.provider.registry import SeriesIndex, build_index
from adapter.provider.teamrules import TeamRules, judge
from adapter.rules import SourcedRule, parse_rules_text

PODS = GroupResource("", "pods")
OVERRIDES = {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
MAPPER = StaticResourceMapper()


def spec(name: str, query: str = "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)") -> dict[str, Any]:
    return {"rules": [{"seriesQuery": 'q{pod!=""}', "resources": {"overrides": OVERRIDES},
                       "name": {"matches": "^q$", "as": name}, "metricsQuery": query}]}


def obj(ns: str, name: str, s: Mapping[str, Any], gen: int = 1, status: Mapping[str, Any] | None = None
        ) -> MetricRuleObject:
    return MetricRuleObject(ns, name, gen, s, status or {})


class Source:
    def __init__(self, objs: Sequence[MetricRuleObject]) -> None:
        self.objs = list(objs)
        self.patches: list[tuple[str, str, Mapping[str, object]]] = []

    def start(self, on_change: Callable[[], None]) -> None:
        pass

    async def wait_synced(self, timeout: float) -> None:
        pass

    def snapshot(self) -> Sequence[MetricRuleObject]:
        return self.objs

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, object]) -> None:
        self.patches.append((namespace, name, status))
        self.objs = [MetricRuleObject(o.namespace, o.name, o.generation, o.spec, status)
                     if (o.namespace, o.name) == (namespace, name) else o for o in self.objs]


def index_of(team: TeamRules, cluster_metric: str | None = None) -> SeriesIndex:
    custom = [MetricNamer.compile(r, MAPPER) for r in team.extra_rules() if r.list_name == "rules"]
    namers: list[MetricNamer] = []
    if cluster_metric:
        rf = parse_rules_text(f"rules:\n- seriesQuery: 'q'\n  resources: {{overrides: {{namespace: {{resource: "
                              f"namespace}}, pod: {{resource: pod}}}}}}\n  name: {{as: {cluster_metric}}}\n"
                              "  metricsQuery: 'sum(q)'\n", "r.yaml")
        namers.append(MetricNamer.compile(SourcedRule(rf.rules[0], "r.yaml", "rules", 0), MAPPER))
    series = [{"__name__": "q", "namespace": "", "pod": ""}]
    return build_index([(n, series) for n in (*namers, *custom)], [])


def test_judge_names_the_metricrule_rule_and_field() -> None:
    assert judge(obj("a", "r", spec("m")), MAPPER).error == ""
    bad = judge(obj("a", "r", spec("m", "sum(<<.Series>>")), MAPPER)
    assert bad.rules == () and bad.error.startswith("metricrule:a/r: rules[0].metricsQuery: invalid PromQL")
    assert judge(obj("a", "r", {}), MAPPER).error == \
        "metricrule:a/r: spec: no rules and no externalRules: nothing to serve"
    many = {"rules": spec("m")["rules"] * 30, "externalRules": spec("m")["rules"] * 21}
    assert judge(obj("a", "r", many), MAPPER).error == "metricrule:a/r: spec: 51 rules; at most 50 per MetricRule"
    assert judge(obj("a", "r", {"rules": [{"seriesQuery": "q"}]}), MAPPER).error == \
        "metricrule:a/r: rules[0].metricsQuery: Field required"


def test_each_namespace_has_its_own_metric_of_a_name_and_a_cluster_rule_wins() -> None:
    team = TeamRules(Source([obj("a", "r", spec("m")), obj("b", "r", spec("m"))]), MAPPER)
    team.judge_now()
    index = index_of(team)
    assert index.lookup(PODS, True, "m", "a").namer.confined_to == "a"  # type: ignore[union-attr]
    assert index.lookup(PODS, True, "m", "b").namer.confined_to == "b"  # type: ignore[union-attr]
    assert index.lookup(PODS, True, "m", "c") is None
    assert index.metrics_of("metricrule:a/r") == ["m"]
    clash = index_of(team, cluster_metric="m")
    assert clash.lookup(PODS, True, "m", "a").namer.confined_to is None  # type: ignore[union-attr]
    assert clash.shadowed == {"metricrule:a/r": frozenset({"m"}), "metricrule:b/r": frozenset({"m"})}
    assert clash.metrics_of("metricrule:a/r") == []


def test_status_is_written_when_it_changes_only_and_keeps_its_transition_time() -> None:
    source = Source([obj("a", "r", spec("m"))])
    times = iter(["t1", "t2", "t3", "t4"])
    team = TeamRules(source, MAPPER, clock=lambda: next(times))
    assert team.judge_now()
    index = index_of(team)
    assert asyncio.run(team.publish(index)) == 1
    _, _, st = source.patches[0]
    assert st["metrics"] == ["m"] and st["observedGeneration"] == 1
    assert st["conditions"] == [{"type": "Accepted", "status": "True", "reason": "Valid", "observedGeneration": 1,
                                 "message": "1 rules accepted, serving 1 metrics in namespace a",
                                 "lastTransitionTime": "t1"}]
    assert asyncio.run(team.publish(index)) == 0  # nothing changed: nothing written
    assert not team.judge_now()  # the status write is no change of the rules
    source.objs = [obj("a", "r", spec("m2"), gen=2, status=source.objs[0].status)]
    assert team.judge_now()
    asyncio.run(team.publish(index_of(team)))
    st = source.patches[-1][2]
    assert st["metrics"] == ["m2"] and st["conditions"][0]["lastTransitionTime"] == "t1"  # still accepted
    source.objs = [obj("a", "r", spec("m2", "sum("), gen=3, status=st)]
    assert team.judge_now() and team.extra_rules() == ()
    asyncio.run(team.publish(index_of(team)))
    st = source.patches[-1][2]
    assert st["conditions"][0]["status"] == "False" and st["conditions"][0]["lastTransitionTime"] != "t1"


def test_a_failed_reload_is_retried_until_it_succeeds() -> None:
    source = Source([])
    team = TeamRules(source, MAPPER, republish=0.01)
    answers = [False, False, True]
    reasons: list[str] = []

    async def reload(reason: str) -> bool:
        reasons.append(reason)
        return answers[len(reasons) - 1] if len(reasons) <= len(answers) else True

    async def main() -> None:
        await team.load(timeout=1)
        source.objs = [obj("a", "r", spec("m"))]  # a MetricRule appears after start
        task = asyncio.create_task(team.run(reload, lambda: None))
        deadline = asyncio.get_running_loop().time() + 10
        while len(reasons) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert reasons == ["MetricRules changed"] * 3  # retried while it failed
    assert not team._unapplied
