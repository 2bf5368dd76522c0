"""The dashboard's queries with Grafana's variables substituted, as Grafana would send them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "accel-metrics-adapter.json"
CHART_COPY = ROOT / "charts" / "accel-metrics-adapter" / "dashboards" / "accel-metrics-adapter.json"
ALL = {"namespace": ".*", "hpa": ".*", "metric": ".*", "job": ".*"}
# One HPA picked, as a user would from the variable drop-downs (the simulator's two-metric HPA).
ONE_HPA = {"namespace": "ml-serving", "hpa": "vllm-llama3-8b", "metric": "vllm_requests_waiting", "job": ".*"}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.S)


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str  # variables substituted
    only_when_it_happens: bool


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def substitute(expr: str, values: dict[str, str], rate_interval: str = "1m") -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name == "__rate_interval":
            return rate_interval
        return values[name]
    return _VAR.sub(repl, expr)


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in doc["panels"]:
        if p["type"] != "row":
            yield p


def queries(doc: dict[str, Any], values: dict[str, str]) -> Iterator[Query]:
    from adapter.dashboard import ROWS

    optional = {t.expr for row in ROWS for p in row.panels for t in p.targets if t.only_when_it_happens}
    for p in panels(doc):
        for t in p["targets"]:
            yield Query(p["title"], t["refId"], substitute(t["expr"], values), t["expr"] in optional)


def variable_queries(doc: dict[str, Any], values: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(variable, PromQL selecting what ``label_values`` lists, label) for each query variable."""
    for v in doc["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = _LABEL_VALUES.match(v["query"]["query"])
        assert m, v["query"]
        yield v["name"], substitute(m.group(1), values), m.group(2)
