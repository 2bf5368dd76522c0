"""Health endpoints: /healthz and /livez (process is serving), /readyz (first relist succeeded)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

Readiness = Callable[[], tuple[bool, str]]


def make_health(readiness: Readiness) -> tuple[Callable[[Request], Response], Callable[[Request], Response]]:
    def live(_: Request) -> Response:
        return PlainTextResponse("ok")

    def ready(_: Request) -> Response:
        ok, reason = readiness()
        if ok:
            return PlainTextResponse("ok")
        return PlainTextResponse(f"[-]metrics-discovery failed: {reason}\nreadyz check failed", status_code=503)
    return live, ready
