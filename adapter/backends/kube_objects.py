"""``adapter.ports.ObjectResolver`` from one cluster-wide informer per resource.

As client-go's shared informers do, each resource asked about gets one list+watch over all
namespaces (metadata only: ``PartialObjectMetadata``, as client-go's metadata informers ask),
started on first use and stopped when nobody asked for ``idle`` seconds; namespaced questions read
the informer's namespace index. The threads and open watches are bounded by the resources asked
about, never by the namespaces (existing or not).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from adapter.backends.kube_client import JSON, KubeHTTP
from adapter.backends.kube_informer import Informer
from adapter.model import ResourceInfo, Selector

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the object cache keeps of an object (its namespace is the index key)."""

    name: str
    labels: Mapping[str, str]


def keep_meta(obj: JSON) -> ObjectMeta:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels")
    return ObjectMeta(meta.get("name", ""), dict(labels) if labels else _NO_LABELS)


def collection_path(info: ResourceInfo, namespace: str) -> str:
    gr = info.group_resource
    base = f"/apis/{gr.group}/{info.version}" if gr.group else f"/api/{info.version}"
    if info.namespaced and namespace:
        return f"{base}/namespaces/{namespace}/{gr.resource}"
    return f"{base}/{gr.resource}"


class KubeObjectResolver:
    """``adapter.ports.ObjectResolver`` from one cluster-wide informer per resource."""

    def __init__(self, http: KubeHTTP, *, sync_timeout: float = 10.0, resync: float = 600.0,
                 idle: float | None = 3600.0, watch_timeout: int = 300) -> None:
        self.http = http
        self.sync_timeout = sync_timeout
        self.resync = resync
        self.idle = idle
        self.watch_timeout = watch_timeout
        self._informers: dict[tuple[str, str, str], Informer[ObjectMeta]] = {}
        self._lock = threading.Lock()

    def informer(self, info: ResourceInfo) -> Informer[ObjectMeta]:
        """The resource's informer (all namespaces), started or restarted (after idling) as needed."""
        key = (info.group_resource.group, info.group_resource.resource, info.version)
        with self._lock:
            inf = self._informers.get(key)
            if inf is None or not inf.touch():
                inf = Informer(self.http, collection_path(info, ""), keep_meta, resync=self.resync,
                               watch_timeout=self.watch_timeout, metadata_only=True, idle=self.idle,
                               on_retire=lambda done: self._forget(key, done))
                self._informers[key] = inf
                inf.start()
        return inf

    def _forget(self, key: tuple[str, str, str], inf: Informer[ObjectMeta]) -> None:
        """A retired informer leaves the map (its memory goes with the last reader still holding it)."""
        with self._lock:
            if self._informers.get(key) is inf:
                del self._informers[key]

    async def _ready(self, info: ResourceInfo) -> Informer[ObjectMeta]:
        inf = self.informer(info)
        await inf.wait_synced(self.sync_timeout, f"list {info.group_resource}")
        return inf

    async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> Sequence[str] | None:
        inf = await self._ready(info)
        scope = namespace if info.namespaced and namespace else None
        return sorted(m.name for m in inf.snapshot(scope) if selector.matches(m.labels))

    async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
        inf = await self._ready(info)
        return inf.get(namespace if info.namespaced else "", name) is not None

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
        for inf in informers:
            inf.stop()
