"""Readable reports of ``Explanation`` documents (and HPA reports), and their ``-o json|yaml`` form.

Works on the JSON documents (``Explanation.to_dict()`` or what the API served), so the dry run
and the kubectl plugin print the same thing from the same data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import yaml

Doc = Mapping[str, Any]


def dump(doc: object, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=2, sort_keys=False)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%SZ")


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return f"{seconds:.0f}s" if seconds < 600 else f"{seconds / 60:.0f}m"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def explanation_lines(doc: Doc, indent: str = "") -> list[str]:
    """The body of one metric's explanation (without the verdict line)."""
    out: list[str] = []
    p = out.append
    req = doc.get("request", {})
    p(f"{indent}API path:   GET {req.get('path')}")
    rule = doc.get("rule")
    if rule:
        p(f"{indent}rule:       {rule.get('where')} (series {rule.get('series')})")
        p(f"{indent}            metricsQuery: {rule.get('metricsQuery')}")
    else:
        p(f"{indent}rule:       none serves it")
    for d in doc.get("diagnosis") or ():
        p(f"{indent}  why:      {d}")
    for q in doc.get("queries") or ():
        cache = q.get("cache", {})
        state = cache.get("state")
        how = {"hit": f"from the cache (age {_age(cache.get('ageSeconds'))}, TTL {_fmt(cache.get('ttlSeconds'))}s)",
               "miss": f"fresh query (cached for {_fmt(cache.get('ttlSeconds'))}s)",
               "coalesced": "joined a query in flight", "off": "fresh query (cache off)"}.get(state, str(state))
        p(f"{indent}PromQL:     {how}, scope {doc.get('scope')}, backend {q.get('backend', 'default')}, "
          f"evaluated {when(q.get('evaluatedAt'))}")
        for line in str(q.get("promql", "")).splitlines():
            p(f"{indent}  {line}")
    limit = doc.get("ageLimitSeconds")
    if limit is not None:
        p(f"{indent}age limit:  {_fmt(limit)}s; missingData: {doc.get('missingData')}")
    objs = doc.get("objects") or []
    if objs:
        p(f"{indent}{'object':<34} {'computed':>10} {'served':>10} {'data age':>9}  why")
    for o in objs:
        served = _fmt(o.get("value")) if o.get("served") else "-"
        why = "" if o.get("served") and not o.get("reason") else str(o.get("message", o.get("reason", "")))
        if o.get("detail"):
            why += " " + ", ".join(f"{k}={v}" for k, v in o["detail"].items())
        p(f"{indent}{o.get('name', '')[:34]:<34} {_fmt(o.get('computed')):>10} {served:>10} "
          f"{_age(o.get('ageSeconds')):>9}  {why}".rstrip())
        for s in o.get("samples") or ():
            labels = ",".join(f'{k}="{v}"' for k, v in s.get("labels", {}).items())
            p(f"{indent}    raw {_fmt(s.get('value'))} @ {when(s.get('timestamp'))}  {{{labels}}}")
    if doc.get("notSelected"):
        p(f"{indent}not selected by the labelSelector (series exist): {', '.join(doc['notSelected'][:10])}")
    if doc.get("unmappedSamples"):
        p(f"{indent}{doc['unmappedSamples']} samples carry no object label and map to no object")
    return out


def explanation_report(doc: Doc) -> str:
    verdict = ("served: " if doc.get("served") else "NOT SERVED: ") + str(doc.get("summary", ""))
    req = doc.get("request", {})
    head = f"{req.get('metric')} ({req.get('api')}, namespace {req.get('namespace')})"
    return "\n".join([verdict, head, *explanation_lines(doc, "  ")]) + "\n"


def hpa_report(report: Doc) -> str:
    """The plugin's readable form of ``adapter.explain.hpa.analyse``'s report."""
    lines = [str(report.get("verdict", ""))]
    hpa = report.get("hpa", {})
    lines.append(f"HPA {hpa.get('namespace')}/{hpa.get('name')} -> {hpa.get('scaleTarget')} "
                 f"(replicas {hpa.get('currentReplicas')}, min {hpa.get('minReplicas')}, "
                 f"max {hpa.get('maxReplicas')}, tolerance {hpa.get('tolerance')})")
    pods = report.get("pods", {})
    if pods:
        lines.append(f"pods: {pods.get('total')} selected by {pods.get('selector')!r}: "
                     + ", ".join(f"{n} {k}" for k, n in pods.get("counts", {}).items()))
    for m in report.get("metrics", []):
        lines.append("")
        lines.append(f"metric {m.get('index')}: {m.get('describe')}")
        calc = m.get("calculation", {})
        for c in calc.get("steps", []):
            lines.append(f"  {c}")
        if m.get("status"):
            lines.append(f"  HPA status: {m['status']}")
        for d in m.get("differences", []):
            lines.append(f"  DIFFERENCE: {d}")
        exp = m.get("explanation")
        if exp:
            lines.append(f"  adapter: {'served' if exp.get('served') else 'NOT SERVED'}: {exp.get('summary')}")
            lines += explanation_lines(exp, "    ")
        elif m.get("explainError"):
            lines.append(f"  adapter: explanation unavailable: {m['explainError']}")
    dec = report.get("decision", {})
    lines.append("")
    for step in dec.get("steps", []):
        lines.append(step)
    conds = hpa.get("conditions") or []
    if conds:
        lines.append("HPA conditions:")
        for c in conds:
            lines.append(f"  {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message', '')}")
    for d in dec.get("differences", []):
        lines.append(f"DIFFERENCE: {d}")
    return "\n".join(lines) + "\n"
