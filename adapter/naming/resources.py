"""Resources: the built-in table used without a cluster, and the rule label <-> resource converter.

The converter mirrors prometheus-adapter's ``resourceConverter``: ``resources.overrides`` map a
Prometheus label to a group-resource; ``resources.template`` (e.g. ``<<.Resource>>`` or
``kube_<<.Group>>_<<.Resource>>``) recognises any label rendered from a (group, singular resource),
with dots and dashes in the group written as ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from adapter.errors import NotFound
from adapter.model import GroupResource, ResourceInfo
from adapter.naming.templates import Template, TemplateError, compile_template
from adapter.ports import ResourceMapper

NAMESPACES = GroupResource("", "namespaces")
NODES = GroupResource("", "nodes")
PERSISTENT_VOLUMES = GroupResource("", "persistentvolumes")
CLUSTER_LEVEL = frozenset({NAMESPACES, NODES, PERSISTENT_VOLUMES})

BUILTIN: tuple[ResourceInfo, ...] = (
    ResourceInfo(GroupResource("", "pods"), "Pod", "pod", "v1", True),
    ResourceInfo(GroupResource("", "namespaces"), "Namespace", "namespace", "v1", False),
    ResourceInfo(GroupResource("", "nodes"), "Node", "node", "v1", False),
    ResourceInfo(GroupResource("", "services"), "Service", "service", "v1", True),
    ResourceInfo(GroupResource("", "persistentvolumes"), "PersistentVolume", "persistentvolume", "v1", False),
    ResourceInfo(GroupResource("", "persistentvolumeclaims"), "PersistentVolumeClaim",
                 "persistentvolumeclaim", "v1", True),
    ResourceInfo(GroupResource("apps", "deployments"), "Deployment", "deployment", "v1", True),
    ResourceInfo(GroupResource("apps", "statefulsets"), "StatefulSet", "statefulset", "v1", True),
    ResourceInfo(GroupResource("apps", "replicasets"), "ReplicaSet", "replicaset", "v1", True),
    ResourceInfo(GroupResource("apps", "daemonsets"), "DaemonSet", "daemonset", "v1", True),
    ResourceInfo(GroupResource("batch", "jobs"), "Job", "job", "v1", True),
    ResourceInfo(GroupResource("batch", "cronjobs"), "CronJob", "cronjob", "v1", True),
)


class StaticResourceMapper:
    """A ``ResourceMapper`` over a fixed table (no cluster): plural, singular, kind, with or without group."""

    def __init__(self, infos: Iterable[ResourceInfo] = BUILTIN) -> None:
        self._by_name: dict[str, list[ResourceInfo]] = {}
        self.infos = tuple(infos)
        for info in self.infos:
            gr = info.group_resource
            for name in {gr.resource, info.singular, info.kind.lower()}:
                self._by_name.setdefault(name, []).append(info)

    def resolve(self, text: str) -> ResourceInfo:
        resource, _, group = text.lower().partition(".")
        candidates = [i for i in self._by_name.get(resource, ()) if not group or i.group_resource.group == group]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFound(f"the server doesn't have a resource type {text!r}")
        # ambiguous without a group: prefer the core group, as kubectl's priority does
        core = [i for i in candidates if not i.group_resource.group]
        if len(core) == 1:
            return core[0]
        raise NotFound(f"resource {text!r} is ambiguous; qualify it with its group")

    def resolve_label_resource(self, group: str, resource: str) -> ResourceInfo | None:
        try:
            return self.resolve(f"{resource}.{group}" if group else resource)
        except NotFound:
            return None


def _group_label(group: str) -> str:
    return group.replace(".", "_").replace("-", "_")


@dataclass(frozen=True)
class ResourceConverter:
    """Label <-> resource for one rule, bound to a mapper.

    The template and its recognising regex are compiled once; ``label_for`` (on every request) and
    ``resource_for`` (on every label of every series at relist) are memoized."""

    overrides: Mapping[str, GroupResource]
    template: Template | None
    pattern: re.Pattern[str] | None
    mapper: ResourceMapper
    _labels: dict[GroupResource, str | None] = field(default_factory=dict, compare=False)
    _resources: dict[str, GroupResource | None] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, overrides: Mapping[str, tuple[str, str]], template: str, mapper: ResourceMapper,
              where: str) -> ResourceConverter:
        resolved: dict[str, GroupResource] = {}
        for label, (group, resource) in overrides.items():
            info = mapper.resolve_label_resource(group, resource)
            resolved[label] = info.group_resource if info else GroupResource(group, resource)
        if not template:
            return cls(resolved, None, None, mapper)
        try:
            t = compile_template(template, frozenset({"Group", "Resource"}))
        except TemplateError as e:
            raise ValueError(f"{where}.resources.template: {e}") from e
        if "Resource" not in t.fields:
            raise ValueError(f"{where}.resources.template: must use <<.Resource>>")
        marker_g, marker_r = "\x00G\x00", "\x00R\x00"
        rendered = re.escape(t.render({"Group": marker_g, "Resource": marker_r}))
        rendered = rendered.replace(re.escape(marker_g), "(?P<group>[a-z0-9_]*)")
        rendered = rendered.replace(re.escape(marker_r), "(?P<resource>[a-z0-9]+)")
        return cls(resolved, t, re.compile(f"^{rendered}$"), mapper)

    def label_for(self, gr: GroupResource) -> str | None:
        if gr in self._labels:
            return self._labels[gr]
        label: str | None = next((lbl for lbl, res in self.overrides.items() if res == gr), None)
        if label is None and self.template is not None:
            info = self.mapper.resolve_label_resource(gr.group, gr.resource)
            singular = info.singular if info else gr.resource
            label = self.template.render({"Group": _group_label(gr.group), "Resource": singular})
        self._labels[gr] = label
        return label

    def resource_for(self, label: str) -> GroupResource | None:
        if label in self.overrides:
            return self.overrides[label]
        if self.pattern is None:
            return None
        if label in self._resources:
            return self._resources[label]
        m = self.pattern.match(label)
        gr: GroupResource | None = None
        if m is not None:
            info = self._find(m.groupdict().get("group") or "", m.group("resource"))
            gr = info.group_resource if info else None
        if len(self._resources) < 10_000:  # label names are few; bound it anyway
            self._resources[label] = gr
        return gr

    def _find(self, group_label: str, resource: str) -> ResourceInfo | None:
        infos: Iterable[ResourceInfo] = getattr(self.mapper, "infos", ())
        for info in infos:
            if info.singular == resource and _group_label(info.group_resource.group) == group_label:
                return info
        return self.mapper.resolve_label_resource(group_label.replace("_", "."), resource)

    def resources_for_series(self, labels: Iterable[str]) -> tuple[list[GroupResource], bool]:
        """The resources a series describes, and whether it is namespaced (has a namespace label)."""
        out: list[GroupResource] = []
        namespaced = False
        for label in labels:
            gr = self.resource_for(label)
            if gr is None:
                continue
            if gr == NAMESPACES:
                namespaced = True
            if gr not in out:
                out.append(gr)
        return out, namespaced
