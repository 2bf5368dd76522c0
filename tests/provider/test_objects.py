"""Objects without a cluster: every label-selector operator evaluated in-process on kube-state-metrics labels."""

from __future__ import annotations

import asyncio

import pytest

from adapter.errors import BadRequest
from adapter.model import DEFAULT_TARGET, QueryResult, Sample, Target
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.selectors import parse_selector
from adapter.provider.objects import KsmObjectResolver
from adapter.provider.runner import QueryRunner

PODS = [("p1", {"label_app": "llm", "label_tier": "3"}), ("p2", {"label_app": "web", "label_tier": "7"}),
        ("p3", {"label_app": "llm"}), ("p4", {"label_app": "llm", "label_tier": "1_0"}),
        ("p5", {"label_tier": "-2"}), ('p6"} or vector(1) #', {"label_tier": "9"})]


def resolver() -> tuple[KsmObjectResolver, list[str]]:
    sent: list[str] = []

    async def query(promql: str, _target: Target = DEFAULT_TARGET) -> QueryResult:
        sent.append(promql)
        return QueryResult(tuple(Sample({"namespace": "ns1", "pod": pod, **labels}, 1.0, 1000.0)
                                 for pod, labels in PODS), 1000.0)
    return KsmObjectResolver(QueryRunner(query, ttl=0, max_entries=10)), sent


@pytest.mark.parametrize(("selector", "names"), [
    ("tier>1", ["p1", "p2"]),  # p6's name is no pod name Kubernetes allows: never resolved
    ("tier<5", ["p1", "p5"]),
    ("tier>-3,tier<4", ["p1", "p5"]),
    ("app=llm,tier>2", ["p1"]),
    ("tier>100", []),
    ("app in (llm),tier<10", ["p1"]),
], ids=["gt", "lt", "range", "with-equals", "none", "with-in"])
def test_gt_lt_evaluated_in_process(selector: str, names: list[str]) -> None:
    r, sent = resolver()
    pods = StaticResourceMapper().resolve("pods")
    assert asyncio.run(r.names(pods, "ns1", parse_selector(selector))) == names
    assert sent == [KsmObjectResolver.QUERY]


def test_selector_on_other_resources_is_a_bad_request_not_5xx() -> None:
    r, sent = resolver()
    with pytest.raises(BadRequest) as exc:
        asyncio.run(r.names(StaticResourceMapper().resolve("nodes"), "", parse_selector("role=gpu")))
    assert exc.value.code == 400 and "--lister-kubeconfig" in exc.value.message
    assert sent == []
