"""A watch-backed cache of one collection: list + watch in a thread, indexed by namespace.

``Informer`` runs in its own daemon thread: LIST in pages (``limit``/``continue``; remember
``metadata.resourceVersion``), then WATCH from it; every event updates the in-memory map (only what
``keep`` extracts), kept as namespace -> name -> value so a namespaced question reads one namespace.
A watch that ends is resumed from the last resourceVersion (bookmarks requested), a 410 Gone relists
at once, other failures back off exponentially (0.5 s doubling to 30 s, with jitter), and a full
relist happens every ``resync`` seconds as a safety net. Readers never wait for the API once the
first LIST has succeeded. With ``idle`` set, an informer nobody has read for that long stops itself
(checked whenever an event arrives or a watch ends, so within ``watch_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from adapter.backends.kube_client import JSON, METADATA_LIST, METADATA_WATCH, Gone, KubeHTTP
from adapter.errors import AdapterError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class Informer(Generic[T]):
    """One list+watch loop over ``path``; ``get``/``snapshot`` read ``keep(obj)`` by namespace and name."""

    def __init__(self, http: KubeHTTP, path: str, keep: Callable[[JSON], T], *,
                 query: Mapping[str, str] | None = None, resync: float = 600.0, watch_timeout: int = 300,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0, page_size: int = 500,
                 metadata_only: bool = False, idle: float | None = None, on_change: Callable[[], None] | None = None,
                 on_retire: Callable[[Informer[T]], None] | None = None) -> None:
        self.http = http
        self.path = path
        self.keep = keep
        self.query = dict(query or {})
        self.resync = resync
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.page_size = page_size
        self.accept = (METADATA_LIST, METADATA_WATCH) if metadata_only else ("application/json",) * 2
        self.idle = idle
        self.on_change = on_change
        self.on_retire = on_retire
        self.synced = threading.Event()
        self.attempted = threading.Event()  # set after the first LIST attempt, success or not
        self.last_error: str = ""
        self.resource_version = ""
        self._items: dict[str, dict[str, T]] = {}  # namespace ("" when cluster-scoped) -> name -> kept
        self._lock = threading.Lock()
        self._used = time.monotonic()
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

    def snapshot(self, namespace: str | None = None) -> list[T]:
        """Everything kept, or only ``namespace``'s objects."""
        with self._lock:
            if namespace is None:
                return [v for by_name in self._items.values() for v in by_name.values()]
            return list(self._items.get(namespace, {}).values())

    def named(self, namespace: str) -> list[tuple[str, T]]:
        """``(name, kept)`` of ``namespace``'s objects ("" for cluster-scoped ones), sorted by name."""
        with self._lock:
            return sorted(self._items.get(namespace, {}).items())

    def get(self, namespace: str, name: str) -> T | None:
        with self._lock:
            by_name = self._items.get(namespace)
            return None if by_name is None else by_name.get(name)

    def touch(self) -> bool:
        """Note a use (resets the idle clock); False when this informer has stopped and cannot serve."""
        with self._lock:
            if self._stop.is_set():
                return False
            self._used = time.monotonic()
            return True

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

    def _retire_if_idle(self) -> bool:
        """In the informer's thread: stop when nobody read it for ``idle`` (counted from the first LIST
        attempt at the earliest, so a reader waiting for that one always gets its answer)."""
        with self._lock:
            if self._stop.is_set():
                return True
            if self.idle is None or not self.attempted.is_set() or time.monotonic() - self._used < self.idle:
                return False
            self._stop.set()
        log.info("informer %s: unused for %gs; stopped", self.path, self.idle)
        self.http.close_streams(self._streams)
        if self.on_retire is not None:
            self.on_retire(self)
        return True

    def _first_attempt_done(self) -> None:
        with self._lock:
            if not self.attempted.is_set():
                self._used = time.monotonic()
                self.attempted.set()

    def _run(self) -> None:
        failures = 0
        while not self._retire_if_idle():
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
        self._first_attempt_done()
        if not self._stop.is_set():
            log.warning("informer %s: %s", self.path, message)

    def _list(self) -> None:
        for attempt in range(1, 4):
            try:
                listed = self._pages()
                break
            except Gone as e:  # the snapshot the pages read was compacted: list again from the start
                if attempt == 3 or self._stop.is_set():
                    raise
                log.info("informer %s: %s; listing again", self.path, e.message)
        if listed is None:
            return
        with self._lock:
            if self._stop.is_set():
                return
            self._items, self.resource_version = listed
        self.last_error = ""
        self.synced.set()
        self._first_attempt_done()
        self._changed()

    def _pages(self) -> tuple[dict[str, dict[str, T]], str] | None:
        """One consistent snapshot, page by page: (namespace -> name -> kept, resourceVersion); None
        when stopped meanwhile. An expired continue token raises ``Gone``."""
        items: dict[str, dict[str, T]] = {}
        query = {**self.query, "limit": str(self.page_size)}
        while not self._stop.is_set():
            body = self.http.get(self.path, query, accept=self.accept[0])
            for obj in body.get("items") or []:
                meta = obj.get("metadata") or {}
                items.setdefault(meta.get("namespace", ""), {})[meta.get("name", "")] = self.keep(obj)
            list_meta = body.get("metadata") or {}
            token = str(list_meta.get("continue") or "")
            if not token:
                return items, str(list_meta.get("resourceVersion", ""))
            query = {**self.query, "limit": str(self.page_size), "continue": token}
        return None

    def _watch_until_resync(self) -> None:
        deadline = time.monotonic() + self.resync
        while not self._retire_if_idle() and time.monotonic() < deadline:
            query = {**self.query, "resourceVersion": self.resource_version, "allowWatchBookmarks": "true",
                     "timeoutSeconds": str(self.watch_timeout)}
            events = self.http.watch(self.path, query, read_timeout=self.watch_timeout + 30,
                                     tracker=self._streams, accept=self.accept[1])
            for event in events:
                if self._retire_if_idle():
                    return
                self._apply(event)

    def _apply(self, event: JSON) -> None:
        kind = event.get("type")
        obj: dict[str, Any] = event.get("object") or {}
        meta = obj.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        with self._lock:
            if self._stop.is_set():
                return
            if kind in ("ADDED", "MODIFIED"):
                self._items.setdefault(ns, {})[name] = self.keep(obj)
            elif kind == "DELETED":
                by_name = self._items.get(ns)
                if by_name is not None:
                    by_name.pop(name, None)
                    if not by_name:
                        del self._items[ns]
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
