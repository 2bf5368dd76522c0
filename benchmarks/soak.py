"""``python -m benchmarks.soak --minutes N``: does the adapter's memory stay flat under steady load?

Simulator (100 namespaces x 20 GPU pods) -> real Prometheus -> the adapter process (nvidia-dcgm
preset plus one external rule, default flags), then a constant-rate open loop (default 100 req/s)
cycling over ``--distinct`` request shapes: 2/5 by-selector custom-metric lists (v1beta1 and
v1beta2), 2/5 by-name custom-metric values, 1/5 external-metric lists. Prints the adapter's VmRSS
every minute, then RSS at the mark (minute 2) and at the end, the growth between them, and error
counts. ``--tracemalloc`` runs the adapter with allocation tracing (slower) and prints the top
allocation sites grown between the mark and the end (snapshots dumped on SIGUSR1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adapter.memory import TRACEMALLOC_ENV
from benchmarks import load, procstat, run, stack

CUSTOM = "/apis/custom.metrics.k8s.io"
EXTERNAL_METRIC = "gpu_utilization_by_model"
# an external rule over the simulator's DCGM series: per-namespace average by GPU model
EXTERNAL_RULES = f"""\
externalRules:
- seriesQuery: 'DCGM_FI_DEV_GPU_UTIL{{exported_namespace!=""}}'
  resources:
    overrides:
      exported_namespace: {{resource: namespace}}
  name: {{matches: "^DCGM_FI_DEV_GPU_UTIL$", as: "{EXTERNAL_METRIC}"}}
  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (modelName)'
"""


@dataclass
class Report:
    minutes: float
    rate: float
    distinct: int
    mark_s: float
    rss_start_mb: float = 0.0
    rss_mark_mb: float = 0.0
    rss_end_mb: float = 0.0
    hwm_mb: float = 0.0
    growth_pct: float = 0.0
    requests: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    probe_errors: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, VmRSS MB)
    top_growth: list[str] = field(default_factory=list)


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    return procstat._status_kb(pid, key) / 1024


KINDS = {"selector": 2, "name": 2, "external": 1}  # default mix, by weight


def request_paths(hpas: list[run.Hpa], metrics: list[str], ext_namespaces: list[str], distinct: int,
                  kinds: tuple[str, ...] = tuple(KINDS), seed: int = 7) -> list[str]:
    """``distinct`` request shapes of ``kinds``, weighted as ``KINDS`` (all: 2/5 by selector, 2/5 by
    name, 1/5 external); interleaved."""
    weight = sum(KINDS[k] for k in kinds)
    n = {k: (max(1, distinct * KINDS[k] // weight) if k in kinds else 0) for k in KINDS}
    n[kinds[0]] += max(0, distinct - sum(n.values()))
    n_sel, n_name, n_ext = n["selector"], n["name"], n["external"]
    rng = random.Random(seed)
    sel, by_name, ext = [], [], []
    for k in range(n_sel):
        h = hpas[k % len(hpas)]
        metric = metrics[(k // len(hpas)) % len(metrics)]
        version = ("v1beta2", "v1beta1")[(k // (len(hpas) * len(metrics)) + k) % 2]
        sel.append(f"{CUSTOM}/{version}/namespaces/{h.namespace}/pods/%2A/{metric}"
                   f"?labelSelector={urllib.parse.quote(h.selector, safe='')}")
    pods = [(h.namespace, p) for h in hpas for p in h.pods]
    rng.shuffle(pods)
    for k in range(n_name):
        ns, pod = pods[k % len(pods)]
        metric = metrics[(k // len(pods)) % len(metrics)]
        by_name.append(f"{CUSTOM}/v1beta2/namespaces/{ns}/pods/{pod}/{metric}")
    namespaces = ext_namespaces or sorted({h.namespace for h in hpas})
    for k in range(n_ext):
        ns = namespaces[k % len(namespaces)]
        variant = k // len(namespaces)  # more shapes than namespaces: selectors that match every model
        sel_q = f"?labelSelector=modelName%21%3Dnone-{variant}" if variant else ""
        ext.append(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{EXTERNAL_METRIC}{sel_q}")
    out: list[str] = []
    for k in range(max(n_sel, n_name, n_ext)):
        out += [group[k] for group in (sel, by_name, ext) if k < len(group)]
    return out


def probe_all(base_url: str, paths: list[str]) -> dict[str, int]:
    """Each path once (warms the caches; a shape that cannot answer shows here, not only as load
    errors): ``{"<status> <path>": 1}`` for each failure."""
    async def go() -> dict[str, int]:
        conn = load.RawConnection(base_url, run.HPA_HEADERS)
        failed: dict[str, int] = {}
        try:
            for p in paths:
                status, _ = await conn.get(p)
                if status != 200:
                    failed[f"{status} {p}"] = 1
        finally:
            conn.close()
        return failed

    return asyncio.run(go())


def top_growth(first: Path, last: Path, limit: int = 15) -> list[str]:
    a = tracemalloc.Snapshot.load(str(first))
    b = tracemalloc.Snapshot.load(str(last))
    lines = []
    for stat in b.compare_to(a, "traceback")[:limit]:
        # most recent frame (the allocation) first
        frames = [f"{fr.filename.rsplit('/site-packages/', 1)[-1].removeprefix(os.getcwd() + '/')}:{fr.lineno}"
                  for fr in list(stat.traceback)[::-1][:4]]
        lines.append(f"{stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+8d} blocks  " + " <- ".join(frames))
    return lines


def _wait_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.5)
    return False


def soak(args: argparse.Namespace, tmp: Path) -> Report:
    duration = args.minutes * 60
    mark = min(args.mark_seconds, duration / 2)
    rep = Report(args.minutes, args.rate, args.distinct, mark)
    n_pods = args.namespaces * args.pods_per_namespace
    snaps = tmp / "tracemalloc"
    env_before = os.environ.get(TRACEMALLOC_ENV)
    with stack.simulator(tmp, "fleet", args.namespaces, args.pods_per_namespace) as fleet, \
            stack.prometheus(tmp, fleet.url, None, args.scrape_interval) as prom:
        stack.wait_series(prom.url, 'count(kube_pod_labels{namespace=~"bench.*"})', n_pods, 90)
        stack.wait_series(prom.url, "count(DCGM_FI_DEV_GPU_UTIL)", n_pods, 90)
        hpas, _, _ = run.discover_fleet(prom.url)
        rules = tmp / "soak-rules.yaml"
        rules.write_text(EXTERNAL_RULES)
        if args.tracemalloc:
            os.environ[TRACEMALLOC_ENV] = str(snaps)
        try:
            ctx = stack.adapter(tmp, "adapter", prom.url, args.cache_ttl, extra=("--config", str(rules)))
            ad = ctx.__enter__()
        finally:
            if env_before is None:
                os.environ.pop(TRACEMALLOC_ENV, None)
            else:
                os.environ[TRACEMALLOC_ENV] = env_before
        try:
            metrics = run._util_first(stack.discovered_pod_metrics(ad.url))[:3]
            # the external rule reads exported_namespace: namespaces on nodes with the other layout have none
            ext_ns = sorted(str(r["metric"]["exported_namespace"]) for r in stack.prom_query(  # type: ignore[index]
                prom.url, "count by (exported_namespace) (DCGM_FI_DEV_GPU_UTIL)") if r["metric"])
            paths = request_paths(hpas, metrics, ext_ns, args.distinct, args.kinds)
            rep.probe_errors = probe_all(ad.url, paths)
            rep.rss_start_mb = rss_mb(ad.pid)
            print(f"{len(hpas)} deployments, {n_pods} pods; {len(set(paths))} distinct requests at "
                  f"{args.rate:g} req/s for {args.minutes:g} min; RSS {rep.rss_start_mb:.1f} MB after one pass"
                  + (f"; probe errors {rep.probe_errors}" if rep.probe_errors else ""), flush=True)
            spec = load.Spec("open", ad.url, tuple(paths), duration=duration, clients=16, rate=args.rate,
                             headers=run.HPA_HEADERS)
            result: list[load.Result] = []
            th = threading.Thread(target=lambda: result.append(load.run_one(spec)), name="soak-load")
            t0 = time.monotonic()
            th.start()
            sample_every = min(60.0, max(1.0, duration / 10))
            next_sample = sample_every
            marked = False
            while True:
                now = time.monotonic() - t0
                if not marked and now >= mark:
                    rep.rss_mark_mb = rss_mb(ad.pid)
                    marked = True
                    print(f"  {now:6.0f} s  RSS {rep.rss_mark_mb:6.1f} MB  (mark)", flush=True)
                    if args.tracemalloc:
                        os.kill(ad.pid, signal.SIGUSR1)
                if now >= duration - 1:
                    break
                if now >= next_sample:
                    mb = rss_mb(ad.pid)
                    rep.timeline.append((round(now), round(mb, 1)))
                    print(f"  {now:6.0f} s  RSS {mb:6.1f} MB", flush=True)
                    next_sample += sample_every
                time.sleep(min(1.0, max(0.05, duration - 1 - now)))
            rep.rss_end_mb = rss_mb(ad.pid)
            rep.hwm_mb = rss_mb(ad.pid, "VmHWM")
            if args.tracemalloc:
                os.kill(ad.pid, signal.SIGUSR1)
            th.join(duration + 60)
            res = result[0] if result else load.Result()
            rep.ok, rep.errors = res.ok, dict(res.errors)
            rep.requests = res.ok + res.n_errors
            if args.tracemalloc and _wait_file(snaps / "snapshot-2.tracemalloc", 300):
                rep.top_growth = top_growth(snaps / "snapshot-1.tracemalloc", snaps / "snapshot-2.tracemalloc")
        finally:
            ctx.__exit__(None, None, None)
    if rep.rss_mark_mb:
        rep.growth_pct = (rep.rss_end_mb - rep.rss_mark_mb) / rep.rss_mark_mb * 100
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (open loop)")
    ap.add_argument("--distinct", type=int, default=200, help="distinct request shapes cycled over")
    ap.add_argument("--mark-seconds", type=float, default=120.0,
                    help="growth is measured from here to the end (at most half the run)")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"comma-separated subset of {', '.join(KINDS)} (weighted {KINDS})")
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--pods-per-namespace", type=int, default=20)
    ap.add_argument("--scrape-interval", default="5s")
    ap.add_argument("--cache-ttl", default="15s")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="trace the adapter's allocations and print the top growth (slower)")
    ap.add_argument("--json", type=Path, help="also write the report as JSON here")
    ap.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary directory)")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.distinct < 3:
        ap.error("--minutes and --rate must be > 0, --distinct at least 3")
    args.kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not args.kinds or set(args.kinds) - set(KINDS):
        ap.error(f"--kinds: a subset of {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory(prefix="accel-soak-") as tmpname:
        tmp = args.workdir or Path(tmpname)
        tmp.mkdir(parents=True, exist_ok=True)
        rep = soak(args, tmp)
    print(f"RSS at {rep.mark_s:g} s: {rep.rss_mark_mb:.1f} MB; at the end ({rep.minutes:g} min): "
          f"{rep.rss_end_mb:.1f} MB; growth {rep.growth_pct:+.1f}%; peak (VmHWM) {rep.hwm_mb:.1f} MB")
    print(f"requests {rep.requests}, ok {rep.ok}, errors {sum(rep.errors.values())} {rep.errors or ''}".rstrip())
    if rep.top_growth:
        print("top allocation growth (tracemalloc, mark -> end):")
        print("\n".join("  " + line for line in rep.top_growth))
    if args.json:
        args.json.write_text(json.dumps(asdict(rep), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
