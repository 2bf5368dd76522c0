"""``explain.accel-metrics.io/v1alpha1``: the trace of one metric request, as a typed ``Explanation``.

The URL space mirrors the metrics APIs, so the path of an HPA's request becomes the path of its
explanation by swapping the group and version:

    /apis/explain.accel-metrics.io/v1alpha1/namespaces/NS/pods/*/METRIC?labelSelector=..&metricLabelSelector=..
    /apis/explain.accel-metrics.io/v1alpha1/namespaces/NS/<resource.group>/NAME/METRIC
    /apis/explain.accel-metrics.io/v1alpha1/namespaces/NS/metrics/METRIC          (the Namespace object)
    /apis/explain.accel-metrics.io/v1alpha1/<resource>/NAME/METRIC                 (cluster-scoped)
    /apis/explain.accel-metrics.io/v1alpha1/namespaces/NS/externalmetrics/METRIC?labelSelector=..

Authorization is the SecurityMiddleware's, as for the metrics: a SubjectAccessReview on group
``explain.accel-metrics.io``, resource ``pods`` (or ``externalmetrics``), subresource the metric.
An explanation of a metric that would not be served is still a 200 ``Explanation`` (``served: false``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapter.api import discovery, wire
from adapter.api.routes import parse_custom_path
from adapter.errors import BadRequest, Unavailable
from adapter.model import CustomMetricInfo, ExternalMetricInfo, Selector
from adapter.naming.selectors import parse_selector
from adapter.provider.explanation import GROUP, VERSION, Explanation

EXTERNAL_RESOURCE = "externalmetrics"


class Explains(Protocol):
    async def custom(self, resource: str, namespace: str, name: str, metric: str, selector: Selector,
                     metric_selector: Selector) -> Explanation: ...

    async def external(self, namespace: str, metric: str, selector: Selector) -> Explanation: ...


def resource_list(custom: list[CustomMetricInfo], external: list[ExternalMetricInfo]) -> dict[str, object]:
    def res(name: str, namespaced: bool) -> dict[str, object]:
        return {"name": name, "singularName": "", "namespaced": namespaced, "kind": "Explanation", "verbs": ["get"]}

    resources = [res(f"{i.group_resource}/{i.metric}", i.namespaced) for i in custom]
    resources += [res(f"{EXTERNAL_RESOURCE}/{i.metric}", True) for i in external]
    if not resources:  # never empty (client-go treats an empty list as a discovery failure)
        resources.append(res("explanations", True))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": resources}


def explain_routes(explainer: Explains, request_timeout: float,
                   custom_infos: Callable[[], list[CustomMetricInfo]],
                   external_infos: Callable[[], list[ExternalMetricInfo]]) -> list[Route]:
    async def bounded(call: Awaitable[Explanation]) -> Explanation:
        try:
            return await asyncio.wait_for(call, request_timeout)
        except TimeoutError as e:
            raise Unavailable(f"the explanation could not be made within the request timeout "
                              f"({request_timeout:g}s)") from e

    def selector(request: Request, param: str) -> Selector:
        try:
            return parse_selector(request.query_params.get(param))
        except BadRequest as e:
            raise BadRequest(f"{param}: {e.message}") from e

    def respond(doc: object, request: Request) -> Response:
        pretty = request.query_params.get("pretty") in ("true", "1")
        return Response(wire.dumps(doc, pretty), media_type="application/json")

    async def group(request: Request) -> Response:
        return respond(discovery.api_group(GROUP, (VERSION,)), request)

    async def version(request: Request) -> Response:
        rest = request.path_params.get("rest", "")
        parts = [p for p in rest.split("/") if p]
        if not parts:
            return respond(resource_list(custom_infos(), external_infos()), request)
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == EXTERNAL_RESOURCE:
            ex = await bounded(explainer.external(parts[1], parts[3], selector(request, "labelSelector")))
            return respond(ex.to_dict(), request)
        t = parse_custom_path(parts)
        ex = await bounded(explainer.custom(t.resource, t.namespace, t.name, t.metric,
                                            selector(request, "labelSelector"),
                                            selector(request, "metricLabelSelector")))
        return respond(ex.to_dict(), request)

    base = f"/apis/{GROUP}"
    return [Route(base, group, methods=["GET"]),
            Route(f"{base}/{VERSION}", version, methods=["GET"]),
            Route(f"{base}/{VERSION}/{{rest:path}}", version, methods=["GET"])]
