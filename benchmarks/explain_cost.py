"""``python -m benchmarks.explain_cost``: what the explain hooks cost the serving path when nobody asks.

The serving path calls ``adapter.provider.trace.current()`` (a ContextVar read) a few times per
request so that an explanation can record what it does. This measures the provider's request path
in-process (no HTTP, no Prometheus: the backend is a function returning a prepared answer) for one
HPA over ``--pods`` pods, in two modes:

  memo     cache on (as shipped): the same result object answers again (the HPA's steady state)
  compute  cache off: every request splits a fresh answer into per-pod values (the heaviest path)

Run it on this tree and on a tree without the hooks (``--compare DIR``: e.g. ``git archive <base> |
tar -x -C DIR``) to compare; each figure is the median of ``--repeat`` runs of ``--requests`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RULE = ("rules:\n- seriesQuery: 'gpu_util{namespace!=\"\",pod!=\"\"}'\n"
        "  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}\n"
        "  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n")


async def _measure(pods: int, requests: int, ttl: float) -> float:
    from adapter.cache import LastKnownStore  # imported here: from the tree under test
    from adapter.model import QueryResult, ResourceInfo, Sample, Selector
    from adapter.naming.resources import StaticResourceMapper
    from adapter.naming.selectors import parse_selector
    from adapter.provider.custom import CustomMetricsProvider, policies
    from adapter.provider.discovery import Relister
    from adapter.provider.runner import QueryRunner
    from adapter.provider.values import Freshness, Policy
    from adapter.rules import LoadedRules, SourcedRule, parse_rules_text
    from adapter.server import compile_rules

    now = time.time()
    names = [f"p{i}" for i in range(pods)]
    rf = parse_rules_text(RULE, "bench.yaml")
    loaded = LoadedRules(tuple(SourcedRule(r, "bench.yaml", "rules", i) for i, r in enumerate(rf.rules)), (), ())
    mapper = StaticResourceMapper()
    custom, _ = compile_rules(loaded, mapper)
    series = [{"__name__": "gpu_util", "namespace": "ns", "pod": n} for n in names]

    async def series_fn(q: str, age: float, *_target: object) -> list[dict[str, str]]:  # target: any tree
        return series

    answer = tuple(Sample({"namespace": "ns", "pod": n}, 50.0, now) for n in names)
    ages = tuple(Sample({"namespace": "ns", "pod": n, "__accel_age__": "1"}, now - 1, now) for n in names)

    async def query(promql: str, *_target: object) -> QueryResult:
        return QueryResult(answer + ages, time.time())

    class Names:
        async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> list[str]:
            return names

        async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
            return True

    relister = Relister(custom, [], series_fn, 60, 600)
    await relister.update_now()
    runner = QueryRunner(query, ttl=ttl, max_entries=1000)
    freshness = Freshness(LastKnownStore(max_entries=1000), 300, time.time)
    provider = CustomMetricsProvider(relister, mapper, Names(), runner, freshness, policies(Policy()))
    sel, none = parse_selector("app=llm"), parse_selector("")
    for _ in range(50):
        await provider.get_by_selector("pods", "ns", sel, "gpu_util", none)
    start = time.process_time()
    for _ in range(requests):
        await provider.get_by_selector("pods", "ns", sel, "gpu_util", none)
    return (time.process_time() - start) / requests * 1e6


def _hook_ns() -> float | None:
    """CPU ns of one ``trace.current()`` call (None on a tree without the hooks)."""
    try:
        from adapter.provider.trace import current
    except ImportError:
        return None
    n = 1_000_000
    start = time.process_time()
    for _ in range(n):
        current()
    return (time.process_time() - start) / n * 1e9


def run(pods: int, requests: int, repeat: int) -> dict[str, float | None]:
    """CPU microseconds per request: the minimum over ``repeat`` runs (the least disturbed by other
    processes on a shared machine), and the cost of one hook call."""
    out: dict[str, float | None] = {}
    for mode, ttl in (("memo", 15.0), ("compute", 0.0)):
        runs = [asyncio.run(_measure(pods, requests, ttl)) for _ in range(repeat)]
        out[f"{mode}_us_per_request"] = round(min(runs), 2)
        out[f"{mode}_us_median"] = round(statistics.median(runs), 2)
    hook = _hook_ns()
    out["hook_ns_per_call"] = None if hook is None else round(hook, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=20)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--compare", help="a source tree without the hooks, measured the same way")
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args()
    result: dict[str, object] = {"this": run(args.pods, args.requests, args.repeat)}
    if args.compare:
        env = {**os.environ, "PYTHONPATH": str(Path(args.compare).resolve())}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--pods", str(args.pods), "--requests",
               str(args.requests), "--repeat", str(args.repeat), "--json-only"]
        other = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=args.compare)
        result["compare"] = json.loads(other.stdout)["this"]
    print(json.dumps(result, indent=None if args.json_only else 2))


if __name__ == "__main__":
    main()
