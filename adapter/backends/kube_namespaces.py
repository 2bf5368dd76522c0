"""``adapter.ports.Namespaces`` from one metadata-only list+watch of ``/api/v1/namespaces``.

Tenancy maps a namespace to its tenant by a label or an annotation; the namespace informer keeps
only those (``PartialObjectMetadata``, as client-go's metadata informers ask), started on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from adapter.backends.kube_client import JSON, KubeHTTP
from adapter.backends.kube_informer import Informer
from adapter.ports import NamespaceMeta

PATH = "/api/v1/namespaces"


def keep_namespace(obj: JSON) -> NamespaceMeta:
    meta = obj.get("metadata") or {}
    return NamespaceMeta(MappingProxyType(dict(meta.get("labels") or {})),
                         MappingProxyType(dict(meta.get("annotations") or {})))


class KubeNamespaces:
    def __init__(self, http: KubeHTTP, *, sync_timeout: float = 10.0, resync: float = 600.0,
                 watch_timeout: int = 300) -> None:
        self.sync_timeout = sync_timeout
        self.informer: Informer[NamespaceMeta] = Informer(
            http, PATH, keep_namespace, resync=resync, watch_timeout=watch_timeout, metadata_only=True)

    async def namespace(self, name: str) -> NamespaceMeta | None:
        self.informer.start()
        await self.informer.wait_synced(self.sync_timeout, "list namespaces")
        return self.informer.get("", name)  # cluster-scoped: kept under the "" namespace

    def known(self) -> Sequence[tuple[str, NamespaceMeta]]:
        self.informer.start()
        if not self.informer.synced.is_set():
            return []
        return self.informer.named("")

    def stop(self) -> None:
        self.informer.stop()
