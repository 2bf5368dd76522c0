"""Typed model of the rules file's ``tenancy:`` block (issue 11, "Tenancy, enforced").

::

    tenancy:
      header: X-Scope-OrgID            # the tenant header (default); "" sends none (params only)
      tenants:
        team-a: {}                     # X-Scope-OrgID: team-a (the header value defaults to the name)
        team-b: {orgID: "b-prod"}      # X-Scope-OrgID: b-prod
        ns-proxy: {header: false, params: {namespace: "$namespace"}}  # prom-label-proxy: ?namespace=<ns>
      namespaces: {app-a: team-a}      # static map, checked first
      namespaceLabel: tenant           # or namespaceAnnotation: the value names a tenant above
      unmapped: deny                   # or the name of a tenant
      clusterScoped: deny              # nodes/namespaces objects: deny (default) or a tenant
      backends: [default]              # the backends tenancy applies to (default: all)

``$namespace`` in a header or parameter value stands for the request's namespace. Every error names
the field (``tenancy.tenants.team-a.params``); ``adapter.rules`` prefixes the file.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_HEADER = "X-Scope-OrgID"
DENY = "deny"
NAMESPACE_PLACEHOLDER = "$namespace"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TenantSpec(_Strict):
    org_id: str | None = Field(default=None, alias="orgID")
    header: bool = True  # send ``tenancy.header: <orgID or name>``
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _clean(self) -> TenantSpec:
        if self.org_id is not None and (not self.org_id or any(c in self.org_id for c in "\r\n\0")):
            raise ValueError("orgID: must be a non-empty header value without control characters")
        for name, value in self.headers.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"headers: {name!r} is not a valid HTTP header name")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"headers.{name}: control characters are not allowed")
        for name in self.params:
            if not name or name in ("query", "match[]", "start", "end", "time", "timeout"):
                raise ValueError(f"params: {name!r} cannot be set by a tenant (the adapter sets it)")
        return self


class TenancyConfig(_Strict):
    header: str = DEFAULT_HEADER
    tenants: dict[str, TenantSpec] = Field(default_factory=dict)
    namespaces: dict[str, str] = Field(default_factory=dict)
    namespace_label: str | None = Field(default=None, alias="namespaceLabel")
    namespace_annotation: str | None = Field(default=None, alias="namespaceAnnotation")
    unmapped: str = DENY
    cluster_scoped: str = Field(default=DENY, alias="clusterScoped")
    backends: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TenancyConfig:
        if self.header and not _TOKEN.fullmatch(self.header):
            raise ValueError(f"header: {self.header!r} is not a valid HTTP header name")
        if not self.tenants:
            raise ValueError("tenants: at least one tenant is needed")
        for ns, tenant in self.namespaces.items():
            if tenant not in self.tenants:
                raise ValueError(f"namespaces.{ns}: unknown tenant {tenant!r} (tenants: {', '.join(self.tenants)})")
        for field, value in (("unmapped", self.unmapped), ("clusterScoped", self.cluster_scoped)):
            if value != DENY and value not in self.tenants:
                raise ValueError(f"{field}: {value!r} is neither 'deny' nor a tenant ({', '.join(self.tenants)})")
        if self.cluster_scoped != DENY and _uses_namespace(self.tenants[self.cluster_scoped]):
            raise ValueError(f"clusterScoped: tenant {self.cluster_scoped!r} uses $namespace, and a "
                             "cluster-scoped request has no namespace")
        if self.namespace_label is not None and self.namespace_annotation is not None:
            raise ValueError("namespaceLabel and namespaceAnnotation: set at most one")
        for name, spec in self.tenants.items():
            if self.header and spec.header and self.header in spec.headers:
                raise ValueError(f"tenants.{name}.headers: {self.header} is the tenant header; use orgID")
        if self.backends is not None and not self.backends:
            raise ValueError("backends: an empty list would apply tenancy to nothing; omit it for all backends")
        return self


def _uses_namespace(spec: TenantSpec) -> bool:
    values = [*spec.headers.values(), *spec.params.values(), spec.org_id or ""]
    return any(NAMESPACE_PLACEHOLDER in v for v in values)
