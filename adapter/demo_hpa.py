"""The demo's view of one HPA: what it reads from our API and the replicas it would choose."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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


def parse_quantity(text: str) -> float:
    suffixes = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
    if text and text[-1] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)


@dataclass
class HpaState:
    workload: Workload
    replicas: int = 0
    current: float | None = None
    last_error: str = ""
    successes: int = 0
    history: list[int] = field(default_factory=list)

    def observe(self, code: int, doc: dict[str, object], now: float) -> None:
        w = self.workload
        items = doc.get("items") if code == 200 else None
        if not isinstance(items, list) or not items:
            self.last_error = str(doc.get("message", f"HTTP {code}"))[:60]
            self.current = None
            return
        values = [parse_quantity(str(i["value"])) for i in items]
        self.successes += 1
        self.last_error = ""
        if self.replicas == 0:
            self.replicas = len(values) if w.kind == "pods" else w.min_replicas
        if w.kind == "pods":
            # HPA: average over the pods that returned a value (integer milli-units)
            self.current = sum(math.ceil(v * 1000) for v in values) // len(values) / 1000
            ratio = self.current / w.target
            basis = len(values)
        else:
            total = sum(values)  # the HPA sums every item of an external metric
            self.current = total
            ratio = total / (w.target * self.replicas) if w.average else total / w.target
            basis = self.replicas
        if abs(ratio - 1.0) <= 0.1:
            desired = self.replicas
        elif w.kind == "external" and w.average:
            desired = math.ceil(self.current / w.target)
        else:
            desired = math.ceil(ratio * basis)
        desired = min(max(desired, w.min_replicas), w.max_replicas, max(2 * self.replicas, 4))
        # downscale stabilization (the 5-minute window, compressed to the last 10 syncs)
        self.history = ([*self.history, desired])[-10:]
        self.replicas = max(self.history) if desired < self.replicas else desired

    def render(self) -> str:
        w = self.workload
        value = "-" if self.current is None else f"{self.current:10.3f}"
        status = f"ERROR {self.last_error}" if self.last_error else ""
        return (f"  {w.title:<48} value={value:>10}  target={w.target:<6g} replicas={self.replicas:<3} "
                f"{status}").rstrip()
