"""Interfaces between the provider and the things it depends on (implemented in backends/ or provider/).

Kept at the bottom layer so backends can implement them without importing the provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from adapter.model import GroupResource, ResourceInfo, Selector


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
