"""The demo's view of one HPA: what it reads from our API and the replicas it would choose."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from adapter import hpa


@dataclass(frozen=True)
class Workload:
    title: str
    kind: str  # "pods" or "external"
    namespace: str
    metric: str
    selector: str
    target: float
    min_replicas: int
    max_replicas: int
    average: bool = False  # external: averageValue (else value)
    replicas: int = 1  # the Deployment's replicas when the demo starts (what the HPA controller reads)

    @property
    def metric_type(self) -> str:
        return "Pods" if self.kind == "pods" else "External"

    @property
    def target_field(self) -> str:
        return "averageValue" if self.kind == "pods" or self.average else "value"

    def path(self) -> str:
        """The URL the HPA controller sends for this metric (``*`` percent-encoded, as client-go does)."""
        q = f"?labelSelector={urllib.parse.quote(self.selector, safe='')}" if self.selector else ""
        if self.kind == "pods":
            return f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{self.namespace}/pods/%2A/{self.metric}{q}"
        return f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{self.namespace}/{self.metric}{q}"

    def spec(self) -> str:
        """The HPA ``spec.metrics`` entry, in one line: what to copy into a manifest."""
        sel = f", selector {self.selector}" if self.selector else ""
        return f"{self.metric_type} metric {self.metric} ({self.target_field} {self.target:g}{sel})"


parse_quantity = hpa.parse_quantity  # one Quantity parser (adapter.hpa), kept here for the demo's callers


@dataclass(frozen=True)
class Point:
    t: float  # seconds since the demo started
    value: float | None  # what the HPA read (None: it could not read the metric)
    replicas: int


@dataclass
class HpaState:
    """One HPA over one workload; the replica arithmetic is ``adapter.hpa`` (protocol.md §7).

    Starts at the Deployment's replicas; when the metric cannot be read it keeps them
    (``FailedGetMetrics``), as the HPA controller does.
    """

    workload: Workload
    replicas: int = -1
    current: float | None = None
    last_error: str = ""
    reason: str = ""
    successes: int = 0
    autoscaler: hpa.Autoscaler | None = None
    history: list[Point] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.replicas < 0:
            self.replicas = self.workload.replicas

    def observe(self, code: int, doc: dict[str, object], now: float) -> None:
        w = self.workload
        if self.autoscaler is None:
            # the 5-minute downscale window, compressed like the rest of the demo
            self.autoscaler = hpa.Autoscaler(w.min_replicas, w.max_replicas, downscale_stabilization=60.0)
        items = doc.get("items") if code == 200 else None
        if not isinstance(items, list) or not items:
            self.last_error = str(doc.get("message", f"HTTP {code}"))[:60] if code != 200 else "no values"
            self.current = None
            self.reason = self.autoscaler.decide(now, self.replicas, [None]).reason
            self.history.append(Point(now, None, self.replicas))
            return
        self.successes += 1
        self.last_error = ""
        if w.kind == "pods":
            values = {str(i["describedObject"]["name"]): parse_quantity(str(i["value"])) for i in items}
            self.current = sum(hpa.milli(v) for v in values.values()) // len(values) / 1000
            proposal = hpa.pods_metric_replicas(self.replicas, [hpa.Pod(n) for n in values], values, w.target)
        else:
            totals = [parse_quantity(str(i["value"])) for i in items]
            self.current = sum(totals)
            proposal = (hpa.external_average_value_replicas(self.replicas, totals, w.target) if w.average
                        else hpa.external_value_replicas(self.replicas, totals, w.target, self.replicas))
        decision = self.autoscaler.decide(now, self.replicas, [proposal])
        self.replicas, self.reason = decision.replicas, decision.reason
        self.history.append(Point(now, self.current, self.replicas))

    def render(self, show_path: bool = False) -> str:
        w = self.workload
        value = "-" if self.current is None else f"{self.current:.3f}"
        status = (f"{self.reason}: {self.last_error}, keeping {self.replicas} replicas" if self.last_error
                  else self.reason)
        lines = [f"  {w.title:<40} value={value:>9}  target={w.target:<5g} replicas={self.replicas:<3} {status}",
                 f"      {w.spec()}"]
        if show_path:
            lines.append(f"      GET {w.path()}")
        return "\n".join(line.rstrip() for line in lines)
