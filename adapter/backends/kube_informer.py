"""Watch-backed object caches: list + watch per (resource, namespace), answering selectors from memory.

``Informer`` runs in its own daemon thread: LIST (remember ``metadata.resourceVersion``), then WATCH
from it; every event updates the in-memory map (only what ``keep`` extracts, e.g. name/namespace/
labels); a watch that ends is resumed from the last resourceVersion (bookmarks requested), a 410 Gone
relists at once, other failures back off exponentially (0.5 s doubling to 30 s, with jitter), and a
full relist happens every ``resync`` seconds as a safety net. Readers never wait for the API once the
first LIST has succeeded.

``KubeObjectResolver`` implements ``adapter.ports.ObjectResolver``: informers are started lazily on
first use of a (resource, namespace) and then kept.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from adapter.backends.kube_client import JSON, Gone, KubeHTTP
from adapter.errors import AdapterError, Unavailable
from adapter.model import ResourceInfo, Selector

log = logging.getLogger(__name__)
T = TypeVar("T")
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the object cache keeps of an object."""

    namespace: str
    name: str
    labels: Mapping[str, str]


def keep_meta(obj: JSON) -> ObjectMeta:
    meta = obj.get("metadata") or {}
    return ObjectMeta(meta.get("namespace", ""), meta.get("name", ""), dict(meta.get("labels") or {}))


class Informer(Generic[T]):
    """One list+watch loop over ``path``; ``items`` maps (namespace, name) to ``keep(obj)``."""

    def __init__(self, http: KubeHTTP, path: str, keep: Callable[[JSON], T], *,
                 query: Mapping[str, str] | None = None, resync: float = 600.0, watch_timeout: int = 300,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.http = http
        self.path = path
        self.keep = keep
        self.query = dict(query or {})
        self.resync = resync
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_change = on_change
        self.synced = threading.Event()
        self.attempted = threading.Event()  # set after the first LIST attempt, success or not
        self.last_error: str = ""
        self.resource_version = ""
        self._items: dict[Key, T] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streams: set[Any] = set()

    # --- reading ------------------------------------------------------------------------------------
    async def wait_synced(self, timeout: float, what: str) -> None:
        """Wait (bounded) for the first list; ``Unavailable`` naming ``what`` when it fails or times out."""
        deadline = time.monotonic() + timeout
        while not self.synced.is_set() and time.monotonic() < deadline:
            if self.attempted.is_set() and self.last_error:
                break
            await asyncio.sleep(0.01)
        if not self.synced.is_set():
            raise Unavailable(f"cannot {what}: {self.last_error or 'timed out'}")

    def snapshot(self) -> list[T]:
        with self._lock:
            return list(self._items.values())

    def get(self, namespace: str, name: str) -> T | None:
        with self._lock:
            return self._items.get((namespace, name))

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"informer {self.path}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.http.close_streams(self._streams)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            listed = False
            try:
                self._list()
                listed, failures = True, 0
                self._watch_until_resync()
            except Gone as e:
                if listed:  # the watch's resourceVersion is too old: relist at once
                    log.info("informer %s: %s; relisting", self.path, e.message)
                    continue
                self._failed(e.message)
            except AdapterError as e:
                self._failed(e.message)
            except Exception as e:  # the loop must survive anything
                self._failed(f"{type(e).__name__}: {e}")
            else:
                continue
            failures += 1
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (failures - 1))
            self._stop.wait(delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter, not crypto

    def _failed(self, message: str) -> None:
        self.last_error = message
        self.attempted.set()
        if not self._stop.is_set():
            log.warning("informer %s: %s", self.path, message)

    def _list(self) -> None:
        body = self.http.get(self.path, self.query)
        items = {}
        for obj in body.get("items") or []:
            meta = obj.get("metadata") or {}
            items[(meta.get("namespace", ""), meta.get("name", ""))] = self.keep(obj)
        with self._lock:
            self._items = items
            self.resource_version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        self.last_error = ""
        self.synced.set()
        self.attempted.set()
        self._changed()

    def _watch_until_resync(self) -> None:
        deadline = time.monotonic() + self.resync
        while not self._stop.is_set() and time.monotonic() < deadline:
            query = {**self.query, "resourceVersion": self.resource_version, "allowWatchBookmarks": "true",
                     "timeoutSeconds": str(self.watch_timeout)}
            events = self.http.watch(self.path, query, read_timeout=self.watch_timeout + 30,
                                     tracker=self._streams)
            for event in events:
                if self._stop.is_set():
                    return
                self._apply(event)

    def _apply(self, event: JSON) -> None:
        kind = event.get("type")
        obj: dict[str, Any] = event.get("object") or {}
        meta = obj.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            if kind in ("ADDED", "MODIFIED"):
                self._items[key] = self.keep(obj)
            elif kind == "DELETED":
                self._items.pop(key, None)
            if rv:
                self.resource_version = rv
        if kind != "BOOKMARK":
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("informer %s: change callback failed", self.path)


def collection_path(info: ResourceInfo, namespace: str) -> str:
    gr = info.group_resource
    base = f"/apis/{gr.group}/{info.version}" if gr.group else f"/api/{info.version}"
    if info.namespaced and namespace:
        return f"{base}/namespaces/{namespace}/{gr.resource}"
    return f"{base}/{gr.resource}"


class KubeObjectResolver:
    """``adapter.ports.ObjectResolver`` from watch-backed informers (one per resource and namespace)."""

    def __init__(self, http: KubeHTTP, *, sync_timeout: float = 10.0, resync: float = 600.0) -> None:
        self.http = http
        self.sync_timeout = sync_timeout
        self.resync = resync
        self._informers: dict[tuple[str, str, str, str], Informer[ObjectMeta]] = {}
        self._lock = threading.Lock()

    def informer(self, info: ResourceInfo, namespace: str) -> Informer[ObjectMeta]:
        ns = namespace if info.namespaced else ""
        key = (info.group_resource.group, info.group_resource.resource, info.version, ns)
        with self._lock:
            inf = self._informers.get(key)
            if inf is None:
                inf = Informer(self.http, collection_path(info, ns), keep_meta, resync=self.resync)
                self._informers[key] = inf
                inf.start()
        return inf

    async def _ready(self, info: ResourceInfo, namespace: str) -> Informer[ObjectMeta]:
        inf = self.informer(info, namespace)
        await inf.wait_synced(self.sync_timeout, f"list {info.group_resource}")
        return inf

    async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> Sequence[str] | None:
        inf = await self._ready(info, namespace)
        ns = namespace if info.namespaced else ""
        return sorted(m.name for m in inf.snapshot()
                      if (not ns or m.namespace == ns) and selector.matches(m.labels))

    async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
        inf = await self._ready(info, namespace)
        return inf.get(namespace if info.namespaced else "", name) is not None

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
        for inf in informers:
            inf.stop()
