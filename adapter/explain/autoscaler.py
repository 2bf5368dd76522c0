"""What the HPA controller does with what the adapter serves: one sync of one HPA, replayed.

``analyse`` takes the HPA (autoscaling/v2 JSON as the API server returns it), its target's Scale,
the pods its selector picks, and per metric the ``Explanation`` of the request the controller makes
(or why there is none), and redoes the controller's arithmetic with ``adapter.hpa`` (1.36: tolerances
incl. ``behavior.*.tolerance``, missing/unready pods, max over metrics, stabilization and limits).
The report puts the result beside the HPA's own status and names every difference. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapter import hpa
from adapter.explain.requests import metric_request
from adapter.hpa import NoMetricsError, Pod, parse_quantity

Doc = Mapping[str, Any]
Explained = Doc | str | None  # an Explanation, the error that prevented one, or None (not ours)


def pod_of(obj: Doc) -> Pod:
    status = obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return Pod(obj["metadata"]["name"], str(status.get("phase") or "Unknown"), ready,
               bool(obj["metadata"].get("deletionTimestamp")))


def _q(milli: int) -> str:
    v = milli / 1000
    return f"{v:g}" if abs(v) < 1e15 else str(milli) + "m"


def _target(spec: Doc) -> tuple[str, float]:
    t = (spec.get("pods") or spec.get("object") or spec.get("external") or {}).get("target") or {}
    if t.get("averageValue") is not None:
        return "AverageValue", parse_quantity(str(t["averageValue"]))
    if t.get("value") is not None:
        return "Value", parse_quantity(str(t["value"]))
    return str(t.get("type", "?")), 0.0


def _served(ex: Doc) -> list[tuple[str, float]]:
    return [(str(o["name"]), float(o["value"])) for o in ex.get("objects") or ()
            if o.get("served") and isinstance(o.get("value"), int | float)]


def _missing_note(ex: Doc, pods: Sequence[Pod]) -> str:
    why: dict[str, int] = {}
    objs = {o["name"]: o for o in ex.get("objects") or ()}
    n = 0
    for p in pods:
        o = objs.get(p.name)
        if p.deleted or p.phase in ("Failed", "Pending") or (o is not None and o.get("served")):
            continue
        n += 1
        reason = str((o or {}).get("reason") or ("unknown" if ex.get("fromMetricsApi") else "no_series"))
        why[reason] = why.get(reason, 0) + 1
    if not n:
        return ""
    limit = ex.get("ageLimitSeconds")
    words = {"stale": f"no samples newer than {limit:g}s" if isinstance(limit, int | float) else "stale",
             "no_series": "no series", "non_finite": "NaN/Inf", "no_sample_time": "no raw sample",
             "out_of_range": "out of range", "unknown": "not served (no trace says why)"}
    detail = ", ".join(f"{c} {words.get(r, r)}" for r, c in sorted(why.items()))
    return f"{n} of {len(pods)} pods have no value ({detail})"


def _status_text(st: Doc | None) -> tuple[str, int | None]:
    """The HPA's status.currentMetrics[i] as text, and its current value in milli-units."""
    if not st or not st.get("type"):
        return "no current value (the controller could not compute this metric)", None
    src = st.get({"Pods": "pods", "Object": "object", "External": "external"}.get(st["type"], ""), {}) or {}
    cur = src.get("current") or {}
    for key in ("averageValue", "value"):
        if cur.get(key) is not None:
            return f"current {key} {cur[key]}", hpa.milli(parse_quantity(str(cur[key])))
    return "no current value", None


def _metric(i: int, spec: Doc, ex: Explained, status: Doc | None, current: int, status_replicas: int,
            pods: Sequence[Pod], tol: hpa.Tolerances, ns: str, path: str, name: str) -> dict[str, Any]:
    kind = str(spec.get("type"))
    ttype, target = _target(spec)
    out: dict[str, Any] = {"index": i, "type": kind, "metric": name, "apiPath": path, "target": {ttype: target},
                           "describe": f"{kind} metric {name}, target {ttype[0].lower() + ttype[1:]} {target:g}"}
    steps: list[str] = [f"the controller calls GET {path}"] if path else []
    proposal: int | None = None
    usage: int | None = None
    error = ""
    if not path:
        error = f"{kind} metrics come from metrics.k8s.io, not from this adapter"
    elif isinstance(ex, str) or ex is None:
        error = f"no explanation: {ex}"
        out["explainError"] = ex
    else:
        out["explanation"] = ex
        values = _served(ex)
        if not ex.get("served") or not values:
            error = f"unable to get metric {name}: {ex.get('summary')}"
        else:
            try:
                proposal, usage, more = _calculate(kind, ttype, spec, values, target, current, status_replicas,
                                                   pods, tol)
                steps += more
            except NoMetricsError as e:
                error = str(e)
            note = _missing_note(ex, pods) if kind == "Pods" else ""
            if note:
                out["missingNote"] = note
                steps.append(note)
    if error:
        steps.append(f"invalid: {error}")
    out["calculation"] = {"steps": steps, "replicas": proposal, "usage": usage, "error": error or None}
    text, theirs = _status_text(status)
    out["status"] = text
    diffs = []
    if theirs is not None and usage is not None and theirs != usage:
        diffs.append(f"the HPA last saw {_q(theirs)}, the adapter serves {_q(usage)} now")
    if theirs is None and usage is not None:
        diffs.append("the HPA has no value for this metric, but the adapter serves one now")
    if theirs is not None and usage is None and path:
        diffs.append(f"the HPA last saw {_q(theirs)}, but the adapter serves no value now")
    out["differences"] = diffs
    return out


def _calculate(kind: str, ttype: str, spec: Doc, values: list[tuple[str, float]], target: float, current: int,
               status_replicas: int, pods: Sequence[Pod], tol: hpa.Tolerances) -> tuple[int, int, list[str]]:
    window = f"[{1 - tol.down:g}, {1 + tol.up:g}]"
    if kind == "Pods":
        calc = hpa.pods_metric(current, pods, dict(values), target, tol)
        steps = [f"{calc.ready} pods with a value; average {_q(calc.usage)} (milli-units, integer division) / "
                 f"target {target:g} = ratio {calc.ratio:.3f}; tolerance window {window}"]
        if calc.missing:
            steps.append(f"missing (no value): {', '.join(calc.missing)} -> counted as "
                         f"{'the target' if calc.ratio < 1 else '0'}")
        if calc.unready:
            steps.append(f"Pending (unready): {', '.join(calc.unready)} -> "
                         f"{'counted as 0' if calc.ratio > 1 else 'left out'}")
        if calc.ignored:
            steps.append(f"ignored (deleted or Failed): {', '.join(calc.ignored)}")
        if calc.new_ratio is not None:
            steps.append(f"ratio recomputed with them: {calc.new_ratio:.3f}")
        steps.append(f"{calc.rule} -> {calc.replicas} replicas")
        return calc.replicas, calc.usage, steps
    ready = hpa.ready_pod_count(pods) if pods else None
    vals = [v for _, v in values]
    if kind == "Object":
        p = (hpa.object_average_value(status_replicas, vals[0], target, tol) if ttype == "AverageValue"
             else hpa.object_value(current, vals[0], target, ready, tol))
    elif ttype == "AverageValue":
        p = hpa.external_average_value(status_replicas, vals, target, tol)
    else:
        p = hpa.external_value(current, vals, target, ready, tol)
    what = "sum of " + str(len(vals)) + " series" if kind == "External" else "value"
    steps = [f"{what} {_q(hpa.milli(sum(vals)))}; ratio {p.ratio:.3f}"
             + (f" (per replica of {status_replicas})" if ttype == "AverageValue" else f" x {ready} ready pods")
             + f"; tolerance window {window}", f"{p.rule} -> {p.replicas} replicas"]
    return p.replicas, p.usage, steps


def analyse(obj: Doc, scale: Doc | None, pod_objs: Sequence[Doc], explained: Sequence[Explained],
            now: float, resource_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta, spec, status = obj["metadata"], obj["spec"], obj.get("status") or {}
    ns, name = meta.get("namespace", "default"), meta["name"]
    current = int((scale or {}).get("spec", {}).get("replicas", status.get("currentReplicas", 0)) or 0)
    status_replicas = int((scale or {}).get("status", {}).get("replicas", current) or 0)
    selector = str((scale or {}).get("status", {}).get("selector", ""))
    lo, hi = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
    behavior = hpa.behavior_from_spec(spec.get("behavior"))
    tol = behavior.tolerances() if behavior else hpa.Tolerances()
    pods = [pod_of(p) for p in pod_objs]
    target = spec.get("scaleTargetRef", {})
    counts: dict[str, int] = {}
    for p in pods:
        k = "deleted" if p.deleted else p.phase if p.phase != "Running" else ("ready" if p.ready else "not ready")
        counts[k] = counts.get(k, 0) + 1
    report: dict[str, Any] = {
        "hpa": {"namespace": ns, "name": name, "scaleTarget": f"{target.get('kind')}/{target.get('name')}",
                "currentReplicas": current, "minReplicas": lo, "maxReplicas": hi,
                "tolerance": f"down {tol.down:g}, up {tol.up:g}", "behavior": spec.get("behavior") is not None,
                "desiredReplicas": status.get("desiredReplicas"), "conditions": status.get("conditions") or []},
        "pods": {"selector": selector, "total": len(pods), "counts": counts},
    }
    statuses = list(status.get("currentMetrics") or [])
    metrics = []
    for i, (mspec, ex) in enumerate(zip(spec.get("metrics") or [], explained, strict=False)):
        path, mname, _ = metric_request(ns, mspec, selector, resource_of or {})
        st = statuses[i] if i < len(statuses) else None
        metrics.append(_metric(i, mspec, ex, st, current, status_replicas, pods, tol, ns, path, mname))
    report["metrics"] = metrics
    report["decision"] = _decide(metrics, current, lo, hi, behavior, status, now)
    report["verdict"] = report["decision"]["verdict"]
    return report


def _decide(metrics: Sequence[Mapping[str, Any]], current: int, lo: int, hi: int, behavior: hpa.Behavior | None,
            status: Doc, now: float) -> dict[str, Any]:
    steps: list[str] = []
    desired: int | None
    verdict = ""
    if current == 0 and lo != 0:
        desired, verdict = 0, "would not scale: scaling is disabled since the replica count of the target is zero"
    elif current > hi:
        desired, verdict = hi, f"would scale {current} → {hi}: current replicas above maxReplicas"
    elif current < lo:
        desired, verdict = lo, f"would scale {current} → {lo}: current replicas below minReplicas"
    else:
        proposals = [(m["metric"], m["calculation"]["replicas"], m["calculation"]["error"] or "") for m in metrics]
        d = hpa.replicas_for_metrics(current, proposals)
        steps.append("proposals: " + ", ".join(f"{n}={r if r is not None else 'invalid'}" for n, r, _ in proposals))
        if d.replicas is None:
            desired = None
            invalid = f"{d.invalid} of {len(proposals)} metrics invalid"
            verdict = f"cannot scale: {d.first_error}" if d.invalid >= len(proposals) else \
                f"would not scale down ({invalid}; the HPA never scales down on partial metrics): {d.first_error}"
        else:
            n = hpa.normalize(current, d.replicas, lo, hi, behavior, (), now)
            desired = n.replicas
            steps.append(f"max over metrics: {d.replicas} ({d.metric})")
            window = (behavior.scale_down.stabilization_window_seconds if behavior else None)
            window_s = hpa.DOWNSCALE_STABILIZATION_SECONDS if window is None else window
            if d.replicas < current and window_s:
                steps.append(f"scale-down stabilization: the controller holds the highest recommendation of the "
                             f"last {window_s:g}s (its memory is not visible from outside; shown without it)")
            steps.append(f"limits: {n.limited_reason} ({n.message}) -> {n.replicas}")
            best = next((m for m in metrics if m["metric"] == d.metric), None)
            why = _why(best) if best else d.metric
            if desired > current:
                verdict = f"would scale {current} → {desired}: {why}"
            elif desired < current:
                verdict = f"would scale {current} → {desired}: all metrics below target ({why})"
            else:
                verdict = f"would not scale ({current} replicas): {why}"
            notes = [m["missingNote"] for m in metrics if m.get("missingNote")]
            if notes:
                verdict += "; " + "; ".join(notes)
    diffs = []
    theirs = status.get("desiredReplicas")
    able: Doc = next((c for c in status.get("conditions") or () if c.get("type") == "AbleToScale"), {})
    held = able.get("reason") in ("ScaleDownStabilized", "ScaleUpStabilized")
    if held:
        steps.append(f"the controller reports {able['reason']}: {able.get('message', '')}")
    if theirs is not None and desired is not None and int(theirs) != desired:
        diffs.append(f"the HPA's status.desiredReplicas is {theirs}, this calculation gives {desired}"
                     + (f" (the controller holds a recent recommendation: {able['reason']})" if held else ""))
    active = next((c for c in status.get("conditions") or () if c.get("type") == "ScalingActive"), None)
    if active and active.get("status") == "False" and desired is not None and metrics:
        diffs.append(f"the HPA reports ScalingActive=False ({active.get('reason')}), but every metric can be "
                     "computed now")
    return {"desiredReplicas": desired, "steps": steps, "differences": diffs, "verdict": verdict}


def _why(m: Mapping[str, Any]) -> str:
    calc = m["calculation"]
    usage = calc.get("usage")
    (ttype, target), = m["target"].items()
    if usage is None:
        return str(m["metric"])
    label = "average" if m["type"] == "Pods" or ttype == "AverageValue" else "value"
    rel = ">" if usage > hpa.milli(target) else "<" if usage < hpa.milli(target) else "="
    within = " (within tolerance)" if "within tolerance" in " ".join(calc["steps"]) else ""
    return f"{m['metric']} {label} {_q(usage)} {rel} target {target:g}{within}"
