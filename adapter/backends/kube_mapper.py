"""``adapter.ports.ResourceMapper`` from real API discovery, matching like Go's discovery RESTMapper.

Discovery reads ``/api``, ``/api/<v>``, ``/apis`` and each group's preferred version. A spelling is
lower-cased and split at the first dot (``deployments.apps`` -> group ``apps``); the resource part
matches a plural name or a singular name (``singularName``, else the lower-cased kind, as
``restmapper`` derives it). Subresources (``pods/status``) never match. Without a group, matches in
several groups are resolved by discovery priority (core first, then ``/apis`` order), as the
PriorityRESTMapper does, so ``pods`` is the core resource even when ``metrics.k8s.io`` also has one.

The table is rebuilt in a background thread every ``refresh`` seconds and swapped atomically; a miss
asks for an early refresh (rate-limited), so a CRD installed later is found without a restart.
``resolve`` never does I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from adapter.backends.kube_client import KubeHTTP
from adapter.errors import AdapterError, NotFound
from adapter.model import GroupResource, ResourceInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Table:
    ordered: tuple[ResourceInfo, ...]  # discovery priority order

    def lookup(self, group: str | None, name: str) -> ResourceInfo | None:
        for info in self.ordered:
            if group is not None and info.group_resource.group != group:
                continue
            if name in (info.group_resource.resource, info.singular):
                return info
        return None


def _resources(http: KubeHTTP, group_version: str, group: str) -> list[ResourceInfo]:
    path = f"/apis/{group_version}" if group else f"/api/{group_version}"
    doc = http.get(path)
    version = group_version.rpartition("/")[2]
    out = []
    for r in doc.get("resources") or []:
        name = str(r.get("name", ""))
        if not name or "/" in name:
            continue
        kind = str(r.get("kind", ""))
        singular = str(r.get("singularName") or kind.lower())
        namespaced = bool(r.get("namespaced"))
        out.append(ResourceInfo(GroupResource(group, name), kind, singular, version, namespaced))
    return out


def discover(http: KubeHTTP) -> tuple[ResourceInfo, ...]:
    """Every top-level resource of the preferred versions, in priority order. Raises our errors."""
    infos: list[ResourceInfo] = []
    core = http.get("/api")
    for v in core.get("versions") or []:
        infos += _resources(http, str(v), "")
    for g in http.get("/apis").get("groups") or []:
        name = str(g.get("name", ""))
        preferred = (g.get("preferredVersion") or {}).get("groupVersion")
        versions = [str(v.get("groupVersion")) for v in g.get("versions") or []]
        for gv in ([preferred] if preferred else []) + [v for v in versions if v != preferred]:
            try:
                infos += _resources(http, str(gv), name)
            except NotFound:  # a group version that went away between the two calls
                continue
    seen: set[GroupResource] = set()
    unique = []
    for info in infos:  # keep the preferred version of each group-resource
        if info.group_resource not in seen:
            seen.add(info.group_resource)
            unique.append(info)
    return tuple(unique)


class KubeResourceMapper:
    def __init__(self, http: KubeHTTP, *, refresh: float = 300.0, min_refresh: float = 30.0) -> None:
        self.http = http
        self.refresh = refresh
        self.min_refresh = min_refresh
        self._table = _Table(())
        self._last = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh_now(self) -> None:
        """Rediscover synchronously (blocking). Raises ``Unavailable``/``NotFound`` on failure."""
        table = _Table(discover(self.http))
        self._table = table
        self._last = time.monotonic()

    def start(self) -> None:
        """First discovery (blocking, errors propagate), then periodic refresh in a daemon thread."""
        self.refresh_now()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kube-discovery", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self.min_refresh - (time.monotonic() - self._last)
            if wait > 0 and self._stop.wait(wait):
                return
            try:
                self.refresh_now()
            except AdapterError as e:
                log.warning("resource discovery failed (keeping the previous table): %s", e.message)

    def _miss(self) -> None:
        self._wake.set()

    def resolve(self, text: str) -> ResourceInfo:
        gr = GroupResource.parse(text.strip().lower())
        info = self._table.lookup(gr.group if gr.group else None, gr.resource) if gr.resource else None
        if info is None:
            self._miss()
            raise NotFound(f"the server doesn't have a resource type \"{text}\"")
        return info

    def resolve_label_resource(self, group: str, resource: str) -> ResourceInfo | None:
        info = self._table.lookup(group.lower() or None, resource.lower())
        if info is None:
            self._miss()
        return info

    def known(self) -> tuple[ResourceInfo, ...]:
        return self._table.ordered
