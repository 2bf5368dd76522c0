"""The cluster's ``MetricRule`` objects (accel-metrics.io/v1alpha1, namespaced): a list+watch cache of
the full objects in every namespace, and status writes as merge patches to the status subresource.

Implements ``ports.MetricRuleSource``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from adapter.backends.kube_client import JSON, KubeHTTP
from adapter.backends.kube_informer import Informer
from adapter.ports import MetricRuleObject

GROUP = "accel-metrics.io"
VERSION = "v1alpha1"
PLURAL = "metricrules"
COLLECTION = f"/apis/{GROUP}/{VERSION}/{PLURAL}"


def _keep(obj: JSON) -> MetricRuleObject:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    status = obj.get("status")
    return MetricRuleObject(str(meta.get("namespace", "")), str(meta.get("name", "")),
                            int(meta.get("generation") or 0), spec if isinstance(spec, dict) else {},
                            status if isinstance(status, dict) else {})


class MetricRuleWatcher:
    def __init__(self, http: KubeHTTP, *, resync: float = 600.0) -> None:
        self.http = http
        self.informer: Informer[MetricRuleObject] = Informer(http, COLLECTION, _keep, resync=resync)

    def start(self, on_change: Callable[[], None]) -> None:
        self.informer.on_change = on_change
        self.informer.start()

    async def wait_synced(self, timeout: float) -> None:
        await self.informer.wait_synced(timeout, f"list {PLURAL}.{GROUP}")

    def snapshot(self) -> Sequence[MetricRuleObject]:
        return sorted(self.informer.snapshot(), key=lambda o: (o.namespace, o.name))

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, object]) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        body = {"status": dict(status)}
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.http.request(
            "PATCH", path, body=body, content_type="application/merge-patch+json"))

    def stop(self) -> None:
        self.informer.stop()
