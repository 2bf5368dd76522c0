"""Small frozen value types shared by every layer.

Nothing here does I/O or knows about HTTP; the api layer turns these into wire JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_INT = re.compile(r"[+-]?[0-9]+")


def go_int64(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``: ASCII digits with an optional sign, in int64 range; else None
    (Python's ``int`` also takes ``1_0``, spaces and non-ASCII digits)."""
    if not _INT.fullmatch(text):
        return None
    n = int(text)
    return n if -(2**63) <= n < 2**63 else None


@dataclass(frozen=True, slots=True)
class GroupResource:
    """A Kubernetes group-resource, e.g. ``pods`` (core) or ``deployments.apps``."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @classmethod
    def parse(cls, text: str) -> GroupResource:
        """Split at the first dot, as ``schema.ParseGroupResource`` does."""
        resource, _, group = text.partition(".")
        return cls(group=group, resource=resource)


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What is known about a resource kind: names, scope, API version."""

    group_resource: GroupResource
    kind: str
    singular: str
    version: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        g = self.group_resource.group
        return f"{g}/{self.version}" if g else self.version


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """``describedObject`` of a MetricValue."""

    kind: str
    name: str
    api_version: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One parsed label-selector requirement (Kubernetes semantics).

    ``operator`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``,
    ``gt``, ``lt`` (``==`` is normalised to ``=``).
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed label selector; ``raw`` is the text it came from (empty = everything)."""

    requirements: tuple[Requirement, ...] = ()
    raw: str = ""

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes ``labels.Selector.Matches`` semantics."""
        for r in self.requirements:
            present = r.key in labels
            value = labels.get(r.key, "")
            op = r.operator
            if op in ("=", "in"):
                if not present or value not in r.values:
                    return False
            elif op in ("!=", "notin"):
                if present and value in r.values:
                    return False
            elif op == "exists":
                if not present:
                    return False
            elif op == "!":
                if present:
                    return False
            elif op in ("gt", "lt"):
                if not present:
                    return False
                have, want = go_int64(value), go_int64(r.values[0])
                if have is None or want is None:
                    return False
                if (op == "gt" and not have > want) or (op == "lt" and not have < want):
                    return False
        return True


@dataclass(frozen=True, slots=True)
class Sample:
    """One instant-vector element from Prometheus: labels, value, sample timestamp (unix s)."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True, slots=True, weakref_slot=True)
class QueryResult:
    """The outcome of one instant query: its samples and the evaluation time used.

    ``ages`` holds, per group of the value query's objects, the time of the newest raw sample behind
    them: one element per group, its ``labels`` the group's labels and its ``value`` that Unix time."""

    samples: tuple[Sample, ...]
    evaluated_at: float
    ages: tuple[Sample, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomValue:
    """One custom-metrics item, version independent."""

    described: ObjectRef
    metric: str
    timestamp: float
    value: float
    selector: Selector | None = None
    window_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class ExternalValue:
    """One external-metrics item."""

    metric: str
    labels: Mapping[str, str]
    timestamp: float
    value: float
    window_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class CustomMetricInfo:
    """An entry of the custom-metrics discovery document."""

    group_resource: GroupResource
    namespaced: bool
    metric: str


@dataclass(frozen=True, slots=True)
class ExternalMetricInfo:
    metric: str


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated (or anonymous) caller."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


DEFAULT_BACKEND = "default"  # the backend the command-line --prometheus-* flags describe


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant of a multi-tenant backend (Mimir/Cortex ``X-Scope-OrgID``, Thanos/prom-label-proxy
    query parameters): what every request made for it carries, on top of the backend's own."""

    name: str
    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """Where a query goes: which configured backend, as which tenant (None: the backend's own identity).
    Part of every cache and single-flight key, so no answer is ever shared across backends or tenants."""

    backend: str = DEFAULT_BACKEND
    tenant: Tenant | None = None


DEFAULT_TARGET = Target()
