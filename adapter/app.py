"""``create_app`` -> the ASGI application: routes, the Status error mapping, access logs and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.api import discovery, wire
from adapter.api.health import Readiness, make_health
from adapter.api.routes import Handlers, error_group_version
from adapter.api.status import status_response
from adapter.errors import AdapterError, InternalError, MethodNotAllowed, NotFound
from adapter.observability import Metrics

log = logging.getLogger("adapter.access")


class AccessLog:
    """Pure ASGI middleware: one debug line per request, request metrics by group/version/code."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            took = time.perf_counter() - start
            path: str = scope.get("path", "")
            group, version = error_group_version(path)
            if self.metrics is not None and group:
                self.metrics.observe_request(group, version, code, took)
            if log.isEnabledFor(logging.DEBUG):
                ident = scope.get("state", {}).get("identity")
                log.debug("request", extra={
                    "method": scope.get("method"), "path": path,
                    "query": scope.get("query_string", b"").decode("latin-1"), "code": code,
                    "ms": round(took * 1000, 2), "user": getattr(ident, "user", None)})


def create_app(handlers: Handlers, readiness: Readiness, metrics: Metrics | None = None, *,
               external_enabled: bool = True,
               wrap: Callable[[ASGIApp], ASGIApp] | None = None, extra_routes: Sequence[Route] = (),
               extra_groups: Sequence[tuple[str, tuple[str, ...]]] = ()) -> ASGIApp:
    routes: list[Route] = list(extra_routes)  # other API groups (explain.accel-metrics.io)

    def add_route(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        routes.append(Route(path, endpoint, methods=["GET"]))

    def json_doc(doc: dict[str, object]) -> Callable[[Request], Awaitable[Response]]:
        body = wire.dumps(doc)

        async def handler(_: Request) -> Response:
            return Response(body, media_type="application/json")
        return handler

    add_route("/apis", json_doc(discovery.api_group_list(external_enabled, extra_groups)))
    add_route("/apis/", json_doc(discovery.api_group_list(external_enabled, extra_groups)))
    add_route(f"/apis/{discovery.CUSTOM}", json_doc(discovery.api_group(discovery.CUSTOM, discovery.CUSTOM_VERSIONS)))
    if external_enabled:
        add_route(f"/apis/{discovery.EXTERNAL}",
                  json_doc(discovery.api_group(discovery.EXTERNAL, discovery.EXTERNAL_VERSIONS)))

    async def custom(request: Request) -> Response:
        p = request.path_params
        return await handlers.custom_api(request, p["version"], p.get("rest", ""))

    async def external(request: Request) -> Response:
        p = request.path_params
        return await handlers.external_api(request, p["version"], p.get("rest", ""))

    for prefix, fn in ((discovery.CUSTOM, custom), (discovery.EXTERNAL, external)):
        add_route(f"/apis/{prefix}/{{version}}", fn)
        add_route(f"/apis/{prefix}/{{version}}/{{rest:path}}", fn)

    live, ready = make_health(readiness)
    for path in ("/healthz", "/livez"):
        add_route(path, live)
    add_route("/readyz", ready)

    if metrics is not None:
        async def metrics_handler(request: Request) -> Response:
            body, ctype = metrics.render(request.headers.get("accept"))
            return Response(body, media_type=ctype)
        add_route("/metrics", metrics_handler)

    async def on_adapter_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AdapterError)
        return status_response(exc)

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return status_response(MethodNotAllowed("the server does not allow this method on the requested resource"))
        return status_response(NotFound("the server could not find the requested resource"))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        return status_response(InternalError("Internal error occurred: unexpected server error"))

    # Starlette, not FastAPI: every route is a plain ASGI endpoint, and FastAPI's import (its OpenAPI
    # models) costs about 11 MB of RSS for nothing we use.
    # No slash redirects: Starlette would answer ``/healthz/`` with a 307 to a URL built from the Host
    # header (an open redirect); the Kubernetes API never redirects, it answers 404.
    starlette = Starlette(routes=routes, exception_handlers={
        AdapterError: on_adapter_error, HTTPException: on_http_error, Exception: on_unexpected})
    starlette.router.redirect_slashes = False
    asgi: Any = starlette
    if wrap is not None:
        asgi = wrap(asgi)
    return AccessLog(asgi, metrics)
