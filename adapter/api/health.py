"""Health endpoints: /healthz and /livez (process is serving), /readyz (can serve the API; no backend check)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

Readiness = Callable[[], tuple[bool, str]]


Endpoint = Callable[[Request], Awaitable[Response]]


def make_health(readiness: Readiness) -> tuple[Endpoint, Endpoint]:
    """(live, ready) endpoints; async so that Starlette runs them on the loop, not in its thread pool."""
    async def live(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def ready(_: Request) -> Response:
        ok, reason = readiness()
        if ok:
            return PlainTextResponse("ok")
        return PlainTextResponse(f"[-]{reason}\nreadyz check failed", status_code=503)
    return live, ready
