"""Discovery documents (protocol.md §2): /apis, /apis/<group>, /apis/<group>/<version>. Served from memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from adapter.model import CustomMetricInfo, ExternalMetricInfo

log = logging.getLogger(__name__)

CUSTOM = "custom.metrics.k8s.io"
EXTERNAL = "external.metrics.k8s.io"
CUSTOM_VERSIONS = ("v1beta2", "v1beta1")  # preferred first
EXTERNAL_VERSIONS = ("v1beta1",)


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group(group: str, versions: tuple[str, ...], typed: bool = True) -> dict[str, object]:
    doc: dict[str, object] = {}
    if typed:
        doc = {"kind": "APIGroup", "apiVersion": "v1"}
    doc["name"] = group
    doc["versions"] = [_gv(group, v) for v in versions]
    doc["preferredVersion"] = _gv(group, versions[0])
    return doc


def api_group_list(external: bool, extra: Sequence[tuple[str, tuple[str, ...]]] = ()) -> dict[str, object]:
    """Every group this server serves: the metrics APIs and ``extra`` (name, versions preferred first)."""
    groups = [api_group(CUSTOM, CUSTOM_VERSIONS, typed=False)]
    if external:
        groups.append(api_group(EXTERNAL, EXTERNAL_VERSIONS, typed=False))
    groups += [api_group(name, versions, typed=False) for name, versions in extra]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource(name: str, namespaced: bool, kind: str) -> dict[str, object]:
    return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get"]}


def custom_resource_list(version: str, infos: list[CustomMetricInfo]) -> dict[str, object]:
    # a parent listed both namespaced and cluster-scoped makes the aggregator drop the whole group
    # version from aggregated discovery: keep the namespaced entries and say so in the log
    scopes: dict[str, set[bool]] = {}
    for i in infos:
        scopes.setdefault(str(i.group_resource), set()).add(i.namespaced)
    resources = []
    for i in infos:
        gr = str(i.group_resource)
        if len(scopes[gr]) > 1 and not i.namespaced:
            log.warning("metric listed for %s both namespaced and not; hiding the cluster-scoped %s", gr, i.metric)
            continue
        resources.append(_resource(f"{gr}/{i.metric}", i.namespaced, "MetricValueList"))
    if not resources:  # never empty: client-go treats an empty list as a discovery failure
        resources.append(_resource("custommetrics", True, "MetricValueList"))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{CUSTOM}/{version}",
            "resources": resources}


def external_resource_list(infos: list[ExternalMetricInfo]) -> dict[str, object]:
    resources = [_resource(i.metric, True, "ExternalMetricValueList") for i in infos]
    if not resources:
        resources.append(_resource("externalmetrics", True, "ExternalMetricValueList"))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{EXTERNAL}/v1beta1",
            "resources": resources}
