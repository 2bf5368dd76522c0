"""Tenancy, enforced: which tenant a namespace's queries go as, and who is denied.

``Tenancy.target(namespace)`` -> the ``Target`` (backend, tenant) every query of a request in that
namespace is sent with: the static map first, then the namespace's label or annotation (from the
namespace watch cache), then ``unmapped`` (a default tenant, or 403 Forbidden). A request that is not
namespaced (nodes, namespaces objects) gets ``clusterScoped``'s tenant, or 403. A denial is counted
(``on_denied(reason)``) and logged once per namespace per ``LOG_EVERY`` seconds.

``discovery_tenants()``: the tenants series discovery runs as (each configured tenant, expanded per
namespace mapped to it when it uses ``$namespace``, plus the default tenant); ``tenant_series`` unions
their ``/api/v1/series`` answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from adapter.errors import ConfigError, Forbidden
from adapter.model import DEFAULT_BACKEND, Target, Tenant
from adapter.ports import NamespaceMeta, Namespaces
from adapter.tenancy_config import DENY, NAMESPACE_PLACEHOLDER, TenancyConfig, TenantSpec

log = logging.getLogger(__name__)

LOG_EVERY = 300.0  # seconds between two log lines about the same denied namespace
_LOGGED_MAX = 10_000


class TenantSeries(Protocol):
    def __call__(self, match: str, max_age: float, tenant: Tenant | None = None, /) -> Awaitable[list[dict[str, str]]]:
        ...


class Tenancy:
    def __init__(self, cfg: TenancyConfig, namespaces: Namespaces | None, source: str = "rules file",
                 on_denied: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (cfg.namespace_label or cfg.namespace_annotation) and namespaces is None:
            key = "namespaceLabel" if cfg.namespace_label else "namespaceAnnotation"
            raise ConfigError(f"{source}: tenancy.{key}: needs a Kubernetes API to read namespaces "
                              "(--lister-kubeconfig, or run in a pod); use tenancy.namespaces without one")
        self.cfg = cfg
        self._by_meta = bool(cfg.namespace_label or cfg.namespace_annotation)  # read the namespace's metadata
        # the cluster's namespaces: for the mapping, and for discovery when a default tenant uses $namespace
        default = cfg.tenants.get(cfg.unmapped)
        self.namespaces = namespaces if self._by_meta or (default and _templated(default)) else None
        self._on_denied = on_denied
        self._clock = clock
        self._logged: dict[str, float] = {}

    def applies_to(self, backend: str) -> bool:
        return self.cfg.backends is None or backend in self.cfg.backends

    def tenant(self, name: str, namespace: str = "") -> Tenant:
        """Tenant ``name`` as a request in ``namespace`` sends it (``$namespace`` expanded)."""
        spec: TenantSpec = self.cfg.tenants[name]
        headers: dict[str, str] = {}
        if self.cfg.header and spec.header:
            headers[self.cfg.header] = spec.org_id if spec.org_id is not None else name
        headers.update(spec.headers)

        def fill(v: str) -> str:
            return v.replace(NAMESPACE_PLACEHOLDER, namespace)
        return Tenant(name, tuple((k, fill(v)) for k, v in sorted(headers.items())),
                      tuple((k, fill(v)) for k, v in sorted(spec.params.items())))

    def _mapped(self, namespace: str, meta: NamespaceMeta | None) -> str | None:
        """The tenant name ``namespace`` maps to, or None (unmapped)."""
        name = self.cfg.namespaces.get(namespace)
        if name is not None:
            return name
        if meta is not None:
            value = (meta.labels.get(self.cfg.namespace_label) if self.cfg.namespace_label else
                     meta.annotations.get(self.cfg.namespace_annotation or ""))
            if value is not None and value in self.cfg.tenants:
                return value
        return None

    async def target(self, namespace: str, backend: str = DEFAULT_BACKEND) -> Target:
        """The target of a request in ``namespace`` ("" = a cluster-scoped object); ``Forbidden`` when
        the namespace has no tenant (``unmapped: deny``) or cluster-scoped requests are denied."""
        if not self.applies_to(backend):
            return Target(backend)
        if not namespace:
            if self.cfg.cluster_scoped == DENY:
                self._deny("cluster_scoped", "", "metrics of cluster-scoped objects are forbidden: "
                           "tenancy is enforced and no clusterScoped tenant is configured")
            return Target(backend, self.tenant(self.cfg.cluster_scoped))
        meta = None
        if self._by_meta and self.namespaces is not None and namespace not in self.cfg.namespaces:
            meta = await self.namespaces.namespace(namespace)
        name = self._mapped(namespace, meta)
        if name is None:
            if self.cfg.unmapped == DENY:
                self._deny("unmapped", namespace, f'metrics in namespace "{namespace}" are forbidden: '
                           "the namespace is not mapped to a tenant")
            name = self.cfg.unmapped
        return Target(backend, self.tenant(name, namespace))

    def _deny(self, reason: str, namespace: str, message: str) -> None:
        if self._on_denied is not None:
            self._on_denied(reason)
        now = self._clock()
        last = self._logged.get(namespace)
        if last is None or now - last >= LOG_EVERY:
            if len(self._logged) >= _LOGGED_MAX:
                self._logged.clear()
            self._logged[namespace] = now
            log.warning("tenancy: request denied", extra={"namespace": namespace or "(cluster-scoped)",
                                                          "reason": reason})
        raise Forbidden(message, details={"kind": "namespaces", "name": namespace} if namespace else {})

    def discovery_tenants(self) -> list[Tenant]:
        """Every tenant series discovery must ask (deduplicated): each configured tenant (per namespace
        mapped to it when its values use ``$namespace``), in a stable order."""
        per_ns: Mapping[str, NamespaceMeta | None] = dict.fromkeys(self.cfg.namespaces)
        if self.namespaces is not None:
            per_ns = {**per_ns, **dict(self.namespaces.known())}
        out: dict[Tenant, None] = {}
        for name, spec in self.cfg.tenants.items():
            if not _templated(spec):
                out[self.tenant(name)] = None
        for ns, meta in sorted(per_ns.items()):
            mapped = self._mapped(ns, meta) or (None if self.cfg.unmapped == DENY else self.cfg.unmapped)
            if mapped is not None:
                out[self.tenant(mapped, ns)] = None
        return list(out)


def _templated(spec: TenantSpec) -> bool:
    return any(NAMESPACE_PLACEHOLDER in v for v in (spec.org_id or "", *spec.headers.values(), *spec.params.values()))


def tenant_series(series: TenantSeries, tenancy: Tenancy, backend: str = DEFAULT_BACKEND
                  ) -> Callable[[str, float], Awaitable[list[dict[str, str]]]]:
    """A ``SeriesFn`` asking ``/api/v1/series`` as every discovery tenant and returning the union (one
    shared dict per series shape, as ``PrometheusBackend.series_sync`` gives). Any tenant failing fails
    the call: the relister then keeps that seriesQuery's last good series."""
    if not tenancy.applies_to(backend):
        async def untenanted(match: str, max_age: float) -> list[dict[str, str]]:
            return await series(match, max_age)
        return untenanted

    async def union(match: str, max_age: float) -> list[dict[str, str]]:
        tenants = tenancy.discovery_tenants()
        answers = await asyncio.gather(*(series(match, max_age, t) for t in tenants))
        shapes: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        out: list[dict[str, str]] = []
        for answer in answers:
            for labels in answer:
                out.append(shapes.setdefault(tuple(labels.items()), labels))
        return out
    return union
