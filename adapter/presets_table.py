"""``accel-adapter presets``: every metric the built-in presets define, its unit and source series."""

from __future__ import annotations

import json
import re

from adapter.rules import DiscoveryRule, available_presets, parse_rules_text, preset_text

_UNITS = (("_percent", "percent"), ("_microseconds", "microseconds"), ("_ratio", "ratio"),
          ("_seconds", "seconds"), ("_bytes", "bytes"),
          ("_watts", "watts"), ("_per_second", "per second"))


def unit_of(metric: str) -> str:
    for suffix, unit in _UNITS:
        if metric.endswith(suffix) or f"{suffix}_" in metric:
            return unit
    return "count"


_SELECTOR = re.compile(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*[{\[]")


def _series(rule: DiscoveryRule) -> str:
    m = rule.name.matches.strip("^$")
    if m.startswith("kube_"):
        # discovered through kube-state-metrics (e.g. the Neuron join): show the source series instead
        named = [x for x in dict.fromkeys(_SELECTOR.findall(rule.metrics_query)) if not x.startswith("kube_")]
        if named:
            return ",".join(named)
    if m and re.fullmatch(r"[A-Za-z0-9_:]+", m):
        return m
    return rule.series_query


def _resource(rule: DiscoveryRule) -> str:
    res = sorted({ref.resource.rstrip("s") + "s" for ref in rule.resources.overrides.values()
                  if ref.resource not in ("namespace", "namespaces")})
    return ",".join(res) or ("namespaces" if rule.resources.overrides else "-")


def rows() -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for preset in available_presets():
        rf = parse_rules_text(preset_text(preset), f"preset:{preset}")
        for api, rules in (("custom", rf.rules), ("external", rf.external_rules)):
            for rule in rules:
                metric = rule.name.as_ or rule.name.matches.strip("^$")
                out.append({"preset": preset, "metric": metric, "api": api,
                            "resource": _resource(rule) if api == "custom" else "-",
                            "unit": unit_of(metric), "series": _series(rule)})
    return out


def render(fmt: str = "table") -> str:
    data = rows()
    if fmt == "json":
        return json.dumps(data, indent=2)
    cols = ("preset", "metric", "api", "resource", "unit", "series")
    widths = {c: max([len(c)] + [len(r[c]) for r in data]) for c in cols}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in data]
    return "\n".join(line.rstrip() for line in lines)
