"""The demo's view of one HPA: what it reads from our API and the replicas it would choose."""

from __future__ import annotations

from dataclasses import dataclass

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


parse_quantity = hpa.parse_quantity  # one Quantity parser (adapter.hpa), kept here for the demo's callers


@dataclass
class HpaState:
    """One HPA over one workload; the replica arithmetic is ``adapter.hpa`` (protocol.md §7)."""

    workload: Workload
    replicas: int = 0
    current: float | None = None
    last_error: str = ""
    reason: str = ""
    successes: int = 0
    autoscaler: hpa.Autoscaler | None = None

    def observe(self, code: int, doc: dict[str, object], now: float) -> None:
        w = self.workload
        if self.autoscaler is None:
            # the 5-minute downscale window, compressed like the rest of the demo
            self.autoscaler = hpa.Autoscaler(w.min_replicas, w.max_replicas, downscale_stabilization=60.0)
        items = doc.get("items") if code == 200 else None
        if not isinstance(items, list) or not items:
            self.last_error = str(doc.get("message", f"HTTP {code}"))[:60]
            self.current = None
            if self.replicas:
                self.reason = self.autoscaler.decide(now, self.replicas, [None]).reason
            return
        self.successes += 1
        self.last_error = ""
        if w.kind == "pods":
            values = {str(i["describedObject"]["name"]): parse_quantity(str(i["value"])) for i in items}
            self.replicas = self.replicas or len(values)
            self.current = sum(hpa.milli(v) for v in values.values()) // len(values) / 1000
            proposal = hpa.pods_metric_replicas(self.replicas, [hpa.Pod(n) for n in values], values, w.target)
        else:
            totals = [parse_quantity(str(i["value"])) for i in items]
            self.replicas = self.replicas or w.min_replicas
            self.current = sum(totals)
            proposal = (hpa.external_average_value_replicas(self.replicas, totals, w.target) if w.average
                        else hpa.external_value_replicas(self.replicas, totals, w.target, self.replicas))
        decision = self.autoscaler.decide(now, self.replicas, [proposal])
        self.replicas, self.reason = decision.replicas, decision.reason

    def render(self) -> str:
        w = self.workload
        value = "-" if self.current is None else f"{self.current:.3f}"
        status = f"ERROR {self.last_error}" if self.last_error else self.reason
        return (f"  {w.title:<48} value={value:>9}  target={w.target:<5g} replicas={self.replicas:<3} "
                f"{status}").rstrip()
