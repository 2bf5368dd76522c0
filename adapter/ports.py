"""Interfaces between the provider and the things it depends on (implemented in backends/ or provider/).

Kept at the bottom layer so backends can implement them without importing the provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from adapter.model import Identity, ResourceInfo, Selector


class ResourceMapper(Protocol):
    """Maps the spellings a URL or a rule uses (``pods``, ``pod``, ``deployments.apps``) to a resource."""

    def resolve(self, text: str) -> ResourceInfo:
        """Raise ``adapter.errors.NotFound`` for an unknown resource."""
        ...

    def resolve_label_resource(self, group: str, resource: str) -> ResourceInfo | None:
        """For rules: ``{group, resource}`` (singular or plural) -> info, or None when unknown."""
        ...


class ObjectResolver(Protocol):
    """Which objects exist (and which match a label selector)."""

    async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> Sequence[str] | None:
        """Names of the objects of ``info`` in ``namespace`` ("" = cluster-scoped / all) that match.

        Returns None when this resolver cannot enumerate objects (the provider then uses the names
        that have series in Prometheus, and only for an empty selector).
        """
        ...

    async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
        """True/False when known; None when this resolver cannot tell."""
        ...


@dataclass(frozen=True, slots=True)
class NamespaceMeta:
    """What tenancy reads of a Namespace: its labels and annotations."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]


class Namespaces(Protocol):
    """The cluster's namespaces, from a watch cache (implemented in ``adapter.backends.kube_namespaces``)."""

    async def namespace(self, name: str) -> NamespaceMeta | None:
        """The namespace's metadata; None when it does not exist. Raise ``Unavailable`` when unknown."""
        ...

    def known(self) -> Sequence[tuple[str, NamespaceMeta]]:
        """Every namespace seen (empty before the first list): for series discovery per tenant."""
        ...


# --- delegated authentication / authorization (implemented in adapter.backends.kubernetes) -------------


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """``SubjectAccessReview.status`` as the webhook authorizer reads it."""

    allowed: bool
    denied: bool = False
    reason: str = ""
    evaluation_error: str = ""


class TokenReviews(Protocol):
    """``authentication.k8s.io/v1`` TokenReview against the authentication kubeconfig's cluster."""

    async def review_token(self, token: str) -> Identity | None:
        """The token's user, or None when the API answers ``authenticated: false``.

        Raise ``adapter.errors.Unavailable`` when the review itself fails. Never log the token.
        """
        ...


class AccessReviews(Protocol):
    """``authorization.k8s.io/v1`` SubjectAccessReview against the authorization kubeconfig's cluster."""

    async def review_access(self, spec: Mapping[str, object]) -> AccessDecision:
        """Send ``{"kind": "SubjectAccessReview", ..., "spec": spec}``; raise ``Unavailable`` on failure."""
        ...


class AuthenticationConfig(Protocol):
    """``kube-system/extension-apiserver-authentication``, kept current (watch) by the implementation."""

    async def authentication_config(self) -> Mapping[str, str | tuple[str, ...]] | None:
        """The ConfigMap's data with JSON-array values decoded to tuples; None when it does not exist.

        Returns the same mapping object until the ConfigMap changes (callers may compare with ``is``).
        Raise ``Unavailable`` when it cannot be read.
        """
        ...


class KubeAuth(TokenReviews, AccessReviews, AuthenticationConfig, Protocol):
    """Everything delegated authn/authz needs from the cluster (what ``build_security`` takes)."""


# --- team-owned rules (implemented in adapter.backends.kube_metricrules) -----------------------------


@dataclass(frozen=True)
class MetricRuleObject:
    """One ``MetricRule`` (accel-metrics.io/v1alpha1) as the watch cache holds it."""

    namespace: str
    name: str
    generation: int
    spec: Mapping[str, object]
    status: Mapping[str, object]

    @property
    def source(self) -> str:
        """Where its rules come from, in every message: ``metricrule:<namespace>/<name>``."""
        return f"metricrule:{self.namespace}/{self.name}"


class MetricRuleSource(Protocol):
    """The cluster's MetricRules, kept current by a watch; status written to the status subresource."""

    def start(self, on_change: Callable[[], None]) -> None:
        """Start watching; ``on_change`` is called (from another thread) after every change."""
        ...

    async def wait_synced(self, timeout: float) -> None:
        """Wait (bounded) for the first list; raise ``Unavailable`` when it fails or times out."""
        ...

    def snapshot(self) -> Sequence[MetricRuleObject]:
        ...

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, object]) -> None:
        """Merge-patch ``status`` into the object's status subresource; ``NotFound`` when it is gone."""
        ...
