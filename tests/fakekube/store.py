"""In-memory object store of the fake Kubernetes API: resourceVersions, event history, watch wake-ups.

Thread-safe: tests mutate it from their own thread while the server's event loop reads it.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceDef:
    """One resource as discovery shows it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...] = ("get", "list", "watch")
    short_names: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


DEFAULT_RESOURCES = (
    ResourceDef("", "v1", "pods", "Pod", "pod", True, short_names=("po",)),
    ResourceDef("", "v1", "pods/status", "Pod", "", True),
    ResourceDef("", "v1", "namespaces", "Namespace", "namespace", False, short_names=("ns",)),
    ResourceDef("", "v1", "nodes", "Node", "node", False, short_names=("no",)),
    ResourceDef("", "v1", "services", "Service", "service", True, short_names=("svc",)),
    ResourceDef("", "v1", "configmaps", "ConfigMap", "configmap", True, short_names=("cm",)),
    ResourceDef("apps", "v1", "deployments", "Deployment", "deployment", True, short_names=("deploy",)),
    ResourceDef("apps", "v1", "deployments/scale", "Scale", "", True),
    ResourceDef("apps", "v1", "statefulsets", "StatefulSet", "statefulset", True, short_names=("sts",)),
    # singularName left empty on purpose: the mapper must derive it from the kind (as RESTMapper does)
    ResourceDef("batch", "v1", "jobs", "Job", "", True),
    ResourceDef("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", "tokenreview", False,
                verbs=("create",)),
    ResourceDef("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
                "subjectaccessreview", False, verbs=("create",)),
    # a second group that also has "pods": makes plain "metrics"-style names ambiguous tests possible
    ResourceDef("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", "", True, verbs=("get", "list")),
    ResourceDef("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", "horizontalpodautoscaler",
                True, short_names=("hpa",)),
    # the chart's CRD (charts/accel-metrics-adapter/crds/metricrules.accel-metrics.io.yaml), status subresource
    ResourceDef("accel-metrics.io", "v1alpha1", "metricrules", "MetricRule", "metricrule", True,
                verbs=("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")),
    ResourceDef("accel-metrics.io", "v1alpha1", "metricrules/status", "MetricRule", "", True,
                verbs=("get", "patch", "update")),
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``application/merge-patch+json``): null deletes, objects merge, the rest
    (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class Event:
    rv: int
    type: str
    obj: Obj
    prev: Obj | None = None  # the object before this event (as the real watch cache keeps it for filtering)


@dataclass
class _Collection:
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    history: list[Event] = field(default_factory=list)


def _namespace_defaults(obj: Obj) -> None:
    """What kube-apiserver (1.21 and later, 1.36 included) does to every Namespace it stores: the
    immutable ``kubernetes.io/metadata.name`` label set to the name (any other value is overwritten),
    the ``kubernetes`` finalizer, and phase Active."""
    meta = obj["metadata"]
    meta.pop("namespace", None)  # cluster-scoped
    meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


class Store:
    def __init__(self, resources: tuple[ResourceDef, ...] = DEFAULT_RESOURCES) -> None:
        self.resources = resources
        self._lock = threading.RLock()
        self._rv = 100
        self._compacted = 0
        self._cols: dict[tuple[str, str], _Collection] = {}
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def find(self, group: str, version: str, plural: str) -> ResourceDef | None:
        for r in self.resources:
            if (r.group, r.version, r.plural) == (group, version, plural):
                return r
        return None

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def _col(self, group: str, plural: str) -> _Collection:
        return self._cols.setdefault((group, plural), _Collection())

    def put(self, group: str, plural: str, obj: Obj) -> Obj:
        """Create or replace (ADDED / MODIFIED); returns the stored copy with its new resourceVersion."""
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if (group, plural) == ("", "namespaces"):
                _namespace_defaults(obj)
            key = (meta.get("namespace", ""), meta["name"])
            col = self._col(group, plural)
            prev = col.objects.get(key)
            kind = "MODIFIED" if prev is not None else "ADDED"
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            meta.setdefault("uid", f"uid-{meta['name']}-{self._rv}")
            col.objects[key] = obj
            col.history.append(Event(self._rv, kind, copy.deepcopy(obj), copy.deepcopy(prev)))
        self._wake()
        return obj

    def put_spec(self, group: str, plural: str, obj: Obj) -> Obj:
        """Create or update the main resource of a kind with a status subresource, as kube-apiserver
        does: ``metadata.generation`` starts at 1 and grows when the spec changes; the stored status
        is kept (a write to the main resource never changes it)."""
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            prev = self._col(group, plural).objects.get((meta.get("namespace", ""), meta["name"]))
            if prev is None:
                meta["generation"] = 1
                obj.pop("status", None)
            else:
                changed = prev.get("spec") != obj.get("spec")
                meta["generation"] = prev["metadata"].get("generation", 1) + (1 if changed else 0)
                meta["uid"] = prev["metadata"]["uid"]
                if "status" in prev:
                    obj["status"] = copy.deepcopy(prev["status"])
                else:
                    obj.pop("status", None)
            return self.put(group, plural, obj)

    def patch_status(self, group: str, plural: str, namespace: str, name: str, patch: Obj) -> Obj | None:
        """A merge patch through the status subresource: only ``status`` changes (generation stays)."""
        with self._lock:
            prev = self._col(group, plural).objects.get((namespace, name))
            if prev is None:
                return None
            obj = copy.deepcopy(prev)
            status = merge_patch(prev.get("status"), patch.get("status")) if "status" in patch else prev.get("status")
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
            return self.put(group, plural, obj)

    def delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            col = self._col(group, plural)
            obj = col.objects.pop((namespace, name))
            self._rv += 1
            prev = copy.deepcopy(obj)
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            col.history.append(Event(self._rv, "DELETED", obj, prev))
        self._wake()

    def get(self, group: str, plural: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            obj = self._col(group, plural).objects.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, group: str, plural: str, namespace: str) -> tuple[list[Obj], int]:
        with self._lock:
            items = [copy.deepcopy(o) for (ns, _), o in sorted(self._col(group, plural).objects.items())
                     if not namespace or ns == namespace]
            return items, self._rv

    def page(self, group: str, plural: str, namespace: str, match: Callable[[Obj], bool], *, limit: int = 0,
             after: tuple[str, str] | None = None, at: int | None = None
             ) -> tuple[builtins.list[Obj], int, int] | None:
        """One page of a LIST, as kube-apiserver reads it from etcd: up to ``limit`` (0 = all) matching
        objects in key order after ``after``, as they were at resourceVersion ``at`` (default: now).
        Returns (objects, resourceVersion, matching objects left); None when ``at`` is compacted."""
        with self._lock:
            col = self._col(group, plural)
            objs, rv = col.objects, self._rv
            if at is not None:
                if at < self._compacted:
                    return None
                objs, rv = dict(col.objects), at
                for e in reversed(col.history):  # undo the events after ``at``
                    if e.rv <= at:
                        break
                    key = (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"])
                    if e.prev is None:
                        objs.pop(key, None)
                    else:
                        objs[key] = e.prev
            out: builtins.list[Obj] = []
            left = 0
            for key in sorted(k for k in objs if (not namespace or k[0] == namespace)
                              and (after is None or k > after)):
                if not match(objs[key]):
                    continue
                if limit and len(out) == limit:
                    left += 1
                else:
                    out.append(copy.deepcopy(objs[key]))
            return out, rv, left

    def compact(self) -> None:
        """Forget history: every open watch, and any watch from an older resourceVersion, gets 410 Gone."""
        with self._lock:
            self._rv += 1
            self._compacted = self._rv
            for col in self._cols.values():
                col.history.clear()
        self._wake()

    def events_since(self, group: str, plural: str, rv: int) -> builtins.list[Event] | None:
        """Events after ``rv``; None when ``rv`` is too old (compacted)."""
        with self._lock:
            if rv < self._compacted:
                return None
            return [e for e in self._col(group, plural).history if e.rv > rv]

    @property
    def compacted(self) -> int:
        with self._lock:
            return self._compacted

    def bump(self) -> None:
        """Advance the resourceVersion without an event (other resources changed)."""
        with self._lock:
            self._rv += 1
        self._wake()

    # --- watch wake-ups ----------------------------------------------------------------------------
    def waiter(self) -> asyncio.Event:
        ev = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), ev))
        return ev

    def unwait(self, ev: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {(lp, e) for lp, e in self._waiters if e is not ev}

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, ev in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(ev.set)
