"""``python -m benchmarks.run [--quick]``: the adapter vs its two baselines, same data, same run.

Targets (one at a time, so CPU and Prometheus-query counts are attributable):
  cached   the adapter as shipped (``--cache-ttl 15s``)
  nocache  the adapter with ``--cache-ttl 0`` (one query per request: prometheus-adapter's behaviour)
  direct   the equivalent PromQL sent straight to Prometheus's /api/v1/query (the floor)

Scenarios (per target):
  burst    every HPA of ``open`` at once over many connections, ``rounds`` times (the first is cold)
  closed   100 HPAs x 20 pods (100 namespaces, one deployment each), 16 clients, closed loop
  open     1,000 HPAs at 10x the HPA controller's rate (1,000 / 15 s x 10 = 667 req/s), open loop
  big      one HPA over 2,000 pods in one namespace, 16 clients, closed loop

Prometheus queries are counted with Prometheus's own ``prometheus_http_requests_total`` (handlers
/api/v1/query and /api/v1/query_range), read from its /metrics before and after each scenario.
CPU is utime+stime of the process tree from /proc; peak RSS is VmHWM (reset before each scenario).
Before each scenario (and after its warm-up) the harness waits until Prometheus runs no queries.
Every duration is bounded: per-request timeout 5 s, burst rounds have a deadline (rest: "unsent").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import load, procstat, stack

API = "/apis/custom.metrics.k8s.io/v1beta2"
DEFAULT_TEMPLATE = "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"  # prometheus-adapter's default
QUERY_HANDLERS = ("/api/v1/query", "/api/v1/query_range")
# Pods a GPU is attributed to, in both dcgm-exporter layouts (exported_* labels or direct).
GPU_PODS = ('count by (namespace, pod) (label_replace(label_replace(DCGM_FI_DEV_GPU_UTIL{exported_pod!=""}, '
            '"namespace", "$1", "exported_namespace", "(.+)"), "pod", "$1", "exported_pod", "(.+)") '
            'or DCGM_FI_DEV_GPU_UTIL{exported_pod="",pod!=""})')
PREFERRED_METRICS = ("nvidia_gpu_utilization_percent", "DCGM_FI_DEV_GPU_UTIL")


@dataclass(frozen=True)
class Hpa:
    namespace: str
    selector: str  # Kubernetes label selector, e.g. "app=web"
    pods: tuple[str, ...]


@dataclass
class Row:
    scenario: str
    target: str
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    prom_queries: float = 0.0
    prom_series_calls: float = 0.0
    queries_per_100: float = float("nan")
    cpu_s_per_1k: float = float("nan")
    peak_rss_mb: float = float("nan")
    prom_cpu_s_per_1k: float = float("nan")
    client_cpu_pct: float = float("nan")
    note: str = ""


@dataclass
class Profile:
    closed_s: float
    open_s: float
    big_s: float
    burst_rounds: int
    burst_gap: float
    warmup_s: float
    burst_deadline: float  # a burst round stops sending after this many seconds


QUICK = Profile(closed_s=3, open_s=3, big_s=3, burst_rounds=2, burst_gap=1.0, warmup_s=0.5, burst_deadline=10)
FULL = Profile(closed_s=30, open_s=30, big_s=20, burst_rounds=5, burst_gap=3.0, warmup_s=2.0, burst_deadline=30)


# -- fleet and queries -------------------------------------------------------------------------

def discover_fleet(prom_url: str) -> tuple[list[Hpa], Hpa | None, list[str]]:
    """HPAs (one per deployment, i.e. per ``label_app``), the big HPA, and the DCGM series names."""
    gpu_pods = {(r["metric"]["namespace"], r["metric"]["pod"])  # type: ignore[index]
                for r in stack.prom_query(prom_url, GPU_PODS)}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in stack.prom_query(prom_url, "kube_pod_labels"):
        m = r["metric"]
        assert isinstance(m, dict)
        ns, pod = m.get("namespace", ""), m.get("pod", "")
        if (ns, pod) in gpu_pods:  # workloads only, not the exporters / kube-state-metrics
            groups[(ns, m.get("label_app", ""))].append(pod)
    main: dict[str, list[Hpa]] = defaultdict(list)
    big_pods: dict[str, list[str]] = defaultdict(list)
    big_apps: dict[str, set[str]] = defaultdict(set)
    for (ns, app), pods in sorted(groups.items()):
        if ns.startswith(stack.BIG_PREFIX):
            big_pods[ns].extend(pods)
            big_apps[ns].add(app)
        elif app:
            main[ns].append(Hpa(ns, f"app={app}", tuple(sorted(pods))))
    # interleave namespaces so any prefix of the list spreads over the fleet
    hpas: list[Hpa] = []
    per_ns = list(main.values())
    for i in range(max((len(v) for v in per_ns), default=0)):
        hpas.extend(v[i] for v in per_ns if i < len(v))
    big = None
    if big_pods:
        ns = max(big_pods, key=lambda n: len(big_pods[n]))
        apps = big_apps[ns]
        # One deployment covering the namespace -> its selector; else "app" (exists) matches them all.
        selector = f"app={next(iter(apps))}" if len(apps) == 1 else "app"
        big = Hpa(ns, selector, tuple(sorted(big_pods[ns])))
    names = [r["metric"]["__name__"] for r in  # type: ignore[index]
             stack.prom_query(prom_url, 'count by (__name__) ({__name__=~"DCGM_.+"})')]
    return hpas, big, _util_first(sorted(names))


def _util_first(names: list[str]) -> list[str]:
    """GPU utilisation first: it is what most GPU HPAs scale on."""
    def key(n: str) -> tuple[int, str]:
        if n in PREFERRED_METRICS:
            return 0, n
        return (1 if "GPU_UTIL" in n.upper() or "utilization" in n.lower() else 2), n

    return sorted(names, key=key)


def rules_template(series: str) -> str:
    """The adapter's metricsQuery for ``series`` (from the preset or the fallback rules), else the default."""
    try:
        import re

        import yaml

        doc = yaml.safe_load(stack.rules_text())
        for rule in doc.get("rules", []):
            sq = str(rule.get("seriesQuery", ""))
            m = re.search(r'__name__=~"([^"]+)"', sq)
            if series in sq or (m and re.match(m.group(1), series)):
                return str(rule.get("metricsQuery") or DEFAULT_TEMPLATE)
    except Exception:
        pass
    return DEFAULT_TEMPLATE


def direct_promql(template: str, series: str, hpa: Hpa) -> str:
    """What prometheus-adapter sends for ``hpa``: pod names from its LIST, joined into a regex."""
    matchers = f'namespace="{hpa.namespace}",pod=~"{"|".join(hpa.pods)}"'
    return (template.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", matchers)
            .replace("<<.GroupBy>>", "pod"))


def adapter_path(metric: str, hpa: Hpa) -> str:
    sel = urllib.parse.quote(hpa.selector, safe="")
    return f"{API}/namespaces/{hpa.namespace}/pods/%2A/{metric}?labelSelector={sel}"


def direct_path(promql: str) -> str:
    return "/api/v1/query?" + urllib.parse.urlencode({"query": promql})


# -- measuring ---------------------------------------------------------------------------------

def measure(scenario: str, target: str, spec: load.Spec, prom: stack.Proc, pid: int | None,
            procs: int) -> Row:
    row = Row(scenario, target)
    usage = procstat.Usage(pid) if pid else None
    prom_usage = procstat.Usage(prom.pid)
    before = stack.prom_handler_counts(prom.url)
    if usage:
        usage.start()
    prom_usage.start()
    res = load.run(spec, procs)
    if usage:
        usage.stop()
    prom_usage.stop()
    after = stack.prom_handler_counts(prom.url)
    sent = res.ok + res.n_errors
    lat = sorted(res.latencies)
    row.requests, row.errors, row.error_kinds = sent, res.n_errors, dict(res.errors)
    row.rps = res.ok / res.wall if res.wall > 0 else 0.0
    row.p50_ms, row.p95_ms, row.p99_ms = (load.percentile(lat, q) * 1000 for q in (50, 95, 99))
    row.prom_queries = sum(after.get(h, 0.0) - before.get(h, 0.0) for h in QUERY_HANDLERS)
    row.prom_series_calls = after.get("/api/v1/series", 0.0) - before.get("/api/v1/series", 0.0)
    if sent:
        row.queries_per_100 = row.prom_queries / sent * 100
        row.prom_cpu_s_per_1k = prom_usage.cpu / sent * 1000
        if usage:
            row.cpu_s_per_1k = usage.cpu / sent * 1000
    if usage:
        row.peak_rss_mb = usage.peak_mb
    row.client_cpu_pct = res.client_cpu / res.wall * 100 if res.wall else float("nan")
    return row


HPA_HEADERS = (("Accept-Encoding", "gzip"),)


def scenarios(profile: Profile, hpas: list[Hpa], big: Hpa | None, metrics: list[str],
              path_for: Any, base_url: str, client: str) -> list[tuple[str, load.Spec, load.Spec | None]]:
    """(name, spec, warmup spec or None) per scenario, in run order (burst first: cold cache)."""
    closed_hpas = hpas[:100]
    open_paths = tuple(path_for(metrics[(k // len(hpas)) % len(metrics)], hpas[k % len(hpas)])
                       for k in range(1000))
    closed_paths = tuple(path_for(metrics[0], h) for h in closed_hpas)
    # the HPA's request headers as the aggregator forwards them (aggregator-capture.md): JSON, gzip accepted
    common: dict[str, Any] = {"base_url": base_url, "client": client, "headers": HPA_HEADERS}
    out: list[tuple[str, load.Spec, load.Spec | None]] = [
        ("burst", load.Spec("burst", paths=open_paths, clients=64, rounds=profile.burst_rounds,
                            gap=profile.burst_gap, duration=profile.burst_deadline, **common), None),
        ("closed", load.Spec("closed", paths=closed_paths, clients=16, duration=profile.closed_s, **common),
         load.Spec("closed", paths=closed_paths, clients=16, duration=profile.warmup_s, **common)),
        ("open", load.Spec("open", paths=open_paths, clients=256, rate=1000 / 15 * 10,
                           duration=profile.open_s, **common),
         load.Spec("closed", paths=open_paths, clients=16, duration=profile.warmup_s, **common)),
    ]
    if big is not None:
        big_paths = (path_for(metrics[0], big),)
        out.append(("big", load.Spec("closed", paths=big_paths, clients=16, duration=profile.big_s, **common),
                    load.Spec("closed", paths=big_paths, clients=4, duration=profile.warmup_s, **common)))
    return out


def probe(base_url: str, path: str, expect_items: int, adapter: bool) -> str:
    """One request, checked: the item count (adapter) or result length (direct)."""
    res: dict[str, Any] = {}

    async def go() -> None:
        conn = load.RawConnection(base_url)
        try:
            status, body = await conn.get(path)
        finally:
            conn.close()
        res["status"], res["body"] = status, body

    import asyncio

    asyncio.run(go())
    if res["status"] != 200:
        return f"probe {res['status']}: {res['body'][:200]!r}"
    doc = json.loads(res["body"])
    n = len(doc.get("items", [])) if adapter else len(doc.get("data", {}).get("result", []))
    return "" if n == expect_items else f"probe: {n} items, expected {expect_items}"


def run_target(target: str, base_url: str, pid: int | None, prom: stack.Proc, profile: Profile,
               hpas: list[Hpa], big: Hpa | None, metrics: list[str], path_for: Any, args: argparse.Namespace,
               rows: list[Row]) -> None:
    adapter = target != "direct"
    note = ""
    for hpa, check in ((hpas[0], "closed"), (big, "big")):
        if hpa is not None:
            msg = probe(base_url, path_for(metrics[0], hpa), len(hpa.pods), adapter)
            if msg:
                note += f"[{check} {msg}] "
    for name, spec, warm in scenarios(profile, hpas, big, metrics, path_for, base_url, args.client):
        stack.settle(prom.url)
        if warm is not None:
            load.run(warm, 1)
            stack.settle(prom.url)
        row = measure(name, target, spec, prom, pid, args.client_procs)
        row.note = note.strip()
        rows.append(row)
        print(f"  {name:<7} {target:<8} {row.rps:8.1f} req/s  p99 {row.p99_ms:7.1f} ms  "
              f"errors {row.errors}  queries/100 {row.queries_per_100:.1f}", flush=True)


# -- report ------------------------------------------------------------------------------------

COLUMNS = [("scenario", "scenario", "{}"), ("target", "target", "{}"), ("requests", "reqs", "{:d}"),
           ("errors", "errors", "{:d}"), ("rps", "req/s", "{:.1f}"), ("p50_ms", "p50 ms", "{:.1f}"),
           ("p95_ms", "p95 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"),
           ("queries_per_100", "PromQ/100req", "{:.1f}"), ("cpu_s_per_1k", "CPU s/1k req", "{:.3f}"),
           ("peak_rss_mb", "peak RSS MB", "{:.0f}"), ("prom_cpu_s_per_1k", "Prom CPU s/1k", "{:.3f}"),
           ("client_cpu_pct", "client CPU%", "{:.0f}")]


def table(rows: list[Row]) -> str:
    cells = [[c[1] for c in COLUMNS]]
    for r in rows:
        line = []
        for attr, _, fmt in COLUMNS:
            v = getattr(r, attr)
            line.append("-" if isinstance(v, float) and v != v else fmt.format(v))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    out = []
    for k, c in enumerate(cells):
        out.append("  ".join(x.rjust(w) if i > 1 else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths,
                                                                                              strict=True))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def ratios(rows: list[Row]) -> str:
    by = {(r.scenario, r.target): r for r in rows}
    lines = ["ratios (cached adapter vs baselines, same run):"]
    for sc in dict.fromkeys(r.scenario for r in rows):
        c = by.get((sc, "cached"))
        if c is None:
            continue
        parts = []
        for base in ("nocache", "direct"):
            b = by.get((sc, base))
            if b is None:
                continue
            text = f"vs {base}: req/s {_ratio(c.rps, b.rps)}, p99 {_ratio(c.p99_ms, b.p99_ms)}"
            if base == "nocache":
                text += (f", PromQ {_ratio(c.queries_per_100, b.queries_per_100)}"
                         f", CPU/req {_ratio(c.cpu_s_per_1k, b.cpu_s_per_1k)}")
            parts.append(text)
        lines.append(f"  {sc:<7} " + "; ".join(parts))
    return "\n".join(lines)


def targets_check(rows: list[Row]) -> str:
    """The issue's targets, for the cached adapter (informational: machines are noisy)."""
    by = {(r.scenario, r.target): r for r in rows}
    checks = []

    def chk(label: str, ok: bool, got: str) -> None:
        checks.append(f"  [{'ok' if ok else 'MISS'}] {label}: {got}")

    if (r := by.get(("closed", "cached"))) is not None:
        chk(">= 1,000 req/s and p99 < 50 ms (100 HPAs x 20 pods, 16 clients)",
            r.rps >= 1000 and r.p99_ms < 50, f"{r.rps:.0f} req/s, p99 {r.p99_ms:.1f} ms")
    if (r := by.get(("open", "cached"))) is not None:
        chk("zero errors at 667 req/s (1,000 HPAs)", r.errors == 0, f"{r.errors} errors")
    if (r := by.get(("big", "cached"))) is not None:
        chk(">= 50 req/s for one HPA over 2,000 pods", r.rps >= 50, f"{r.rps:.0f} req/s")
    cached = [r for r in rows if r.target == "cached"]
    if cached:
        q = max(r.queries_per_100 for r in cached if r.scenario != "burst")
        chk("<= 2 Prometheus queries per 100 HPA requests (steady state)", q <= 2, f"max {q:.2f}")
        cpu = max(r.cpu_s_per_1k for r in cached)
        chk("<= 1 CPU-second per 1,000 requests", cpu <= 1, f"max {cpu:.3f}")
        rss = max(r.peak_rss_mb for r in cached)
        chk("peak RSS < 150 MB", rss < 150, f"{rss:.0f} MB")
        checks.append("  [ok] zero pod LISTs (no cluster: objects are resolved from kube_pod_labels)")
    return "targets (cached adapter):\n" + "\n".join(checks) if checks else ""


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds per scenario (smoke test)")
    ap.add_argument("--seconds", type=float, help="override the duration of each closed/open/big scenario")
    ap.add_argument("--targets", default="cached,nocache,direct", help="comma-separated subset")
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load-generator HTTP client")
    ap.add_argument("--client-procs", type=int, default=1, help="load-generator processes")
    ap.add_argument("--namespaces", type=int, default=100, help="main fleet: one deployment per namespace")
    ap.add_argument("--pods-per-namespace", type=int, default=20)
    ap.add_argument("--big-pods", type=int, default=2000, help="pods in the one-namespace fleet (0: skip)")
    ap.add_argument("--scrape-interval", default="5s")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary directory)")
    args = ap.parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.seconds:
        secs = min(max(args.seconds, 0.5), 600.0)
        profile = Profile(closed_s=secs, open_s=secs, big_s=secs, burst_rounds=profile.burst_rounds,
                          burst_gap=profile.burst_gap, warmup_s=min(profile.warmup_s, secs),
                          burst_deadline=max(secs, 2.0))
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"cached", "nocache", "direct"}
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}")
    missing = stack.adapter_available() if {"cached", "nocache"} & set(targets) else None
    if missing:
        print(f"ERROR: the adapter cannot be benchmarked: {missing}\n"
              "       (run with --targets direct to measure the baseline only)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="accel-bench-") as tmpname:
        tmp = args.workdir or Path(tmpname)
        tmp.mkdir(parents=True, exist_ok=True)
        rows = run_all(args, profile, targets, tmp)
    print()
    print(table(rows))
    print()
    print(ratios(rows))
    print(targets_check(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


def run_all(args: argparse.Namespace, profile: Profile, targets: list[str], tmp: Path) -> list[Row]:
    rows: list[Row] = []
    n_pods = args.namespaces * args.pods_per_namespace
    t0 = time.monotonic()
    with stack.simulator(tmp, "fleet", args.namespaces, args.pods_per_namespace, 20) as fleet:
        big_ctx = (stack.simulator(tmp, "big", 1, args.big_pods, args.big_pods, seed=2)
                   if args.big_pods else None)
        big_proc = big_ctx.__enter__() if big_ctx else None
        try:
            with stack.prometheus(tmp, fleet.url, big_proc.url if big_proc else None,
                                  args.scrape_interval) as prom:
                stack.wait_series(prom.url, "count(kube_pod_labels)", n_pods + args.big_pods, 90)
                stack.wait_series(prom.url, 'count({__name__=~"DCGM_.+"})', 8 * (n_pods + args.big_pods), 90)
                hpas, big, series = discover_fleet(prom.url)
                print(f"stack up in {time.monotonic() - t0:.1f}s: {len(hpas)} deployments, "
                      f"{n_pods} + {len(big.pods) if big else 0} pods, series {series}", flush=True)
                for target in targets:
                    if target == "direct":
                        templates = {s: rules_template(s) for s in series}

                        def dpath(s: str, h: Hpa, t: dict[str, str] = templates) -> str:
                            return direct_path(direct_promql(t[s], s, h))

                        run_target("direct", prom.url, None, prom, profile, hpas, big, series, dpath,
                                   args, rows)
                        continue
                    ttl = "15s" if target == "cached" else "0"
                    with stack.adapter(tmp, f"adapter-{target}", prom.url, ttl) as ad:
                        metrics = _util_first(stack.discovered_pod_metrics(ad.url))
                        run_target(target, ad.url, ad.pid, prom, profile, hpas, big, metrics,
                                   adapter_path, args, rows)
        finally:
            if big_ctx:
                big_ctx.__exit__(None, None, None)
    return rows


if __name__ == "__main__":
    sys.exit(main())
