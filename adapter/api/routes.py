"""URL -> provider call for both metrics APIs (protocol.md §1). The provider never sees HTTP.

The path arrives percent-decoded (``%2A`` -> ``*``); ``*`` in the name position means "objects
selected by ``labelSelector``", a name means that one object. A path with an empty segment (``//``)
is not found; namespaces, object names and metric names are validated as Kubernetes validates them
(``adapter.naming.validation``) before any provider call, so no PromQL is built from them otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from adapter.api import discovery, wire
from adapter.api.delegation import Merger, forward
from adapter.errors import BadRequest, MetricNotFound, NotFound, Unavailable
from adapter.model import CustomMetricInfo, CustomValue, ExternalMetricInfo, ExternalValue, Selector
from adapter.naming.selectors import parse_selector
from adapter.naming.validation import check_metric_name, check_namespace, check_object_name
from adapter.provider.delegation import Delegate

T = TypeVar("T")


class CustomProvider(Protocol):
    def list_metrics(self) -> list[CustomMetricInfo]: ...

    def serves(self, resource: str, namespace: str, metric: str) -> bool: ...

    async def get_by_name(self, resource: str, namespace: str, name: str, metric: str,
                          metric_selector: Selector) -> CustomValue: ...

    async def get_by_selector(self, resource: str, namespace: str, selector: Selector, metric: str,
                              metric_selector: Selector) -> list[CustomValue]: ...


class ExternalProvider(Protocol):
    def list_metrics(self) -> list[ExternalMetricInfo]: ...

    def serves(self, namespace: str, metric: str) -> bool: ...

    async def get(self, namespace: str, metric: str, selector: Selector) -> list[ExternalValue]: ...


@dataclass(frozen=True)
class CustomTarget:
    resource: str
    namespace: str
    name: str
    metric: str


def parse_custom_path(parts: list[str]) -> CustomTarget:
    """Decompose the path after ``/apis/custom.metrics.k8s.io/<version>/`` (CMA's three routes)."""
    if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "metrics":
        return CustomTarget("namespaces", "", parts[1], parts[3])
    if len(parts) == 5 and parts[0] == "namespaces":
        return CustomTarget(parts[2], parts[1], parts[3], parts[4])
    if len(parts) == 3 and parts[0] == "namespaces":
        raise BadRequest("invalid request path")
    if len(parts) == 3:
        return CustomTarget(parts[0], "", parts[1], parts[2])
    raise NotFound("the server could not find the requested resource")


def validate_custom_target(t: CustomTarget) -> None:
    """Namespace, object name and metric name as Kubernetes validates them: 400 when one is not a path
    segment, 404 when no such namespace, object or metric can exist."""
    if t.namespace:
        check_namespace(t.namespace)
    if t.name != "*":
        check_object_name(t.resource, t.name)
    check_metric_name(t.metric, MetricNotFound(t.metric, t.resource, "" if t.name == "*" else t.name))


def path_parts(rest: str) -> list[str]:
    """The segments after the version (one trailing ``/`` ignored); 404 on an empty segment (``a//b``)."""
    if not rest:
        return []
    parts = rest.removesuffix("/").split("/")
    if "" in parts:
        raise NotFound("the server could not find the requested resource")
    return parts


class Handlers:
    def __init__(self, custom: CustomProvider, external: ExternalProvider | None, request_timeout: float,
                 delegates: Mapping[str, Delegate] | None = None) -> None:
        self.custom = custom
        self.external = external
        self.request_timeout = request_timeout
        self.encoder = wire.FastEncoder()
        # per API group: the server that answers the metrics we do not serve (adapter.provider.delegation)
        self.delegates = dict(delegates or {})
        self._mergers = {group: Merger() for group in self.delegates}

    def _listed(self, group: str, version: str, doc: dict[str, object], ours_empty: bool, kind: str,
                request: Request) -> Response:
        delegate = self.delegates.get(group)
        if delegate is not None:
            doc = self._mergers[group].merge(doc, ours_empty, delegate, version, kind)
        return self._json(doc, request)

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.request_timeout)
        except TimeoutError as e:
            raise Unavailable(f"the metric could not be fetched within the request timeout "
                              f"({self.request_timeout:g}s)") from e

    @staticmethod
    def _json(doc: object, request: Request) -> Response:
        pretty = request.query_params.get("pretty") in ("true", "1")
        return _response(*wire.maybe_gzip(wire.dumps(doc, pretty),
                                          wire.accepts_gzip(request.headers.get("accept-encoding"))))

    @staticmethod
    def _selector(request: Request, param: str) -> Selector:
        return parse_selector(request.query_params.get(param))

    async def custom_api(self, request: Request, version: str, rest: str) -> Response:
        if version not in discovery.CUSTOM_VERSIONS:
            raise NotFound("the server could not find the requested resource")
        parts = path_parts(rest)
        if not parts:
            infos = self.custom.list_metrics()
            return self._listed(discovery.CUSTOM, version, discovery.custom_resource_list(version, infos),
                                not infos, "MetricValueList", request)
        t = parse_custom_path(parts)
        validate_custom_target(t)
        delegate = self.delegates.get(discovery.CUSTOM)
        if delegate is not None and not self.custom.serves(t.resource, t.namespace, t.metric):
            return await self._bounded(forward(delegate, request))
        selector = self._selector(request, "labelSelector")
        try:
            metric_selector = self._selector(request, "metricLabelSelector")
        except BadRequest as e:
            raise BadRequest(f"metricLabelSelector: {e.message}") from e
        shape: tuple[str, ...] | None = None
        if t.name == "*":
            values = await self._bounded(
                self.custom.get_by_selector(t.resource, t.namespace, selector, t.metric, metric_selector))
            # the provider answers a repeated request with the same list object: its body is remembered
            shape = (version, t.resource, t.namespace, t.metric, selector.raw, metric_selector.raw)
        else:  # one item, a new list each time: encoded from memoized fragments, never remembered
            values = [await self._bounded(
                self.custom.get_by_name(t.resource, t.namespace, t.name, t.metric, metric_selector))]
        if request.query_params.get("pretty") in ("true", "1"):
            return self._json(wire.custom_list(version, values), request)
        body, gzipped = self.encoder.custom(version, values, wire.accepts_gzip(request.headers.get("accept-encoding")),
                                            shape)
        return _response(body, gzipped)

    async def external_api(self, request: Request, version: str, rest: str) -> Response:
        delegate = self.delegates.get(discovery.EXTERNAL)
        if (self.external is None and delegate is None) or version not in discovery.EXTERNAL_VERSIONS:
            raise NotFound("the server could not find the requested resource")
        parts = path_parts(rest)
        if not parts:
            infos = self.external.list_metrics() if self.external is not None else []
            return self._listed(discovery.EXTERNAL, version, discovery.external_resource_list(infos), not infos,
                                "ExternalMetricValueList", request)
        if len(parts) != 3 or parts[0] != "namespaces":
            raise NotFound("the server could not find the requested resource")
        check_namespace(parts[1])
        check_metric_name(parts[2], NotFound(f"the server could not find the metric {parts[2]} for namespace "
                                             f"{parts[1]}"))
        if delegate is not None and (self.external is None or not self.external.serves(parts[1], parts[2])):
            return await self._bounded(forward(delegate, request))
        if self.external is None:
            raise NotFound("the server could not find the requested resource")
        selector = self._selector(request, "labelSelector")
        values = await self._bounded(self.external.get(parts[1], parts[2], selector))
        return self._json(wire.external_list(values), request)


_GZIP_HEADERS = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}


def _response(body: bytes, gzipped: bool) -> Response:
    return Response(body, media_type="application/json", headers=_GZIP_HEADERS if gzipped else None)


def error_group_version(path: str) -> tuple[str, str]:
    """(group, version) of a path for metrics labels; "" for non-API paths."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "apis":
        return parts[2], parts[3] if len(parts) > 3 else ""
    return "", ""


