"""Helpers for the simulator + real Prometheus tests: the running stack and preset rendering.

``render`` substitutes a preset's ``metricsQuery`` the way the rule engine does (prometheus-adapter
semantics): ``<<.LabelMatchers>>`` = ``namespace="ns",pod=~"a|b"`` (or the external selector),
``<<.GroupBy>>`` = ``pod``, ``<<.Series>>`` = the series the rule's ``name.matches`` names.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapter.simulator import Curve, Fleet
from tests.support.prometheus import Prometheus

PRESETS = Path(__file__).resolve().parents[2] / "adapter" / "presets"
SEED = 7
CURVE = Curve("flat")
WINDOW = 60.0


@dataclass
class Stack:
    prom: Prometheus
    fleet: Fleet  # same seed and curve as the simulator process: same values
    sim_url: str
    first_sample: float

    def wait_full_window(self, window: float = WINDOW, margin: float = 3.0) -> None:
        """Block (bounded) until Prometheus holds ``window`` seconds of samples: ``rate[1m]`` is then exact."""
        remaining = self.first_sample + window + margin - time.time()
        assert remaining < window + 30, "clock went backwards?"
        if remaining > 0:
            time.sleep(remaining)


def load_preset(name: str, params: dict[str, float] | None = None) -> dict[str, Any]:
    """The preset as the loader sees it: ``${param}`` placeholders filled (defaults unless ``params``)."""
    from adapter.presets import render as fill

    doc = yaml.safe_load(fill(name, (PRESETS / f"{name}.yaml").read_text(), params or {}))
    assert isinstance(doc, dict)
    return doc


def find_rule(preset: str, metric: str, external: bool = False) -> dict[str, Any]:
    doc = load_preset(preset)
    rules = doc.get("externalRules" if external else "rules") or []
    hits = [r for r in rules if r["name"]["as"] == metric]
    assert len(hits) == 1, f"{preset}: {len(hits)} rules named {metric!r}"
    rule: dict[str, Any] = hits[0]
    return rule


def series_of(rule: dict[str, Any]) -> str:
    m = re.fullmatch(r"\^(.+)\$", rule["name"]["matches"])
    assert m, rule["name"]
    return m.group(1)


def render(rule: dict[str, Any], matchers: str, group_by: str = "pod") -> str:
    q: str = rule["metricsQuery"]
    return q.replace("<<.Series>>", series_of(rule)).replace("<<.LabelMatchers>>", matchers) \
        .replace("<<.GroupBy>>", group_by)


def pod_matchers(namespace: str, pods: list[str]) -> str:
    # RE2-escape the only metacharacter legal in a pod name, doubled for the PromQL string
    alternatives = "|".join(p.replace(".", "\\\\.") for p in sorted(pods))
    return f'namespace="{namespace}",pod=~"{alternatives}"'


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in result:
        key = item["metric"].get(label, "")
        assert key not in out, f"two samples for {label}={key!r}: {result}"
        out[key] = float(item["value"][1])
    return out


def namespaces(fleet: Fleet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in fleet.topology.pods:
        out.setdefault(p.namespace, []).append(p.name)
    return out


def custom_by_namespace(stack: Stack, preset: str, metric: str) -> dict[tuple[str, str], float]:
    """Query ``metric`` for every pod of every namespace, as the HPA's ``pods/*`` path would."""
    rule = find_rule(preset, metric)
    got: dict[tuple[str, str], float] = {}
    for ns, pods in namespaces(stack.fleet).items():
        for pod, v in by_label(stack.prom.query(render(rule, pod_matchers(ns, pods))), "pod").items():
            got[(ns, pod)] = v
    return got
