"""The swap point of a rules reload: one ASGI app that forwards every request to the current serving core.

A request reads the current generation once (one attribute read) and is served by it to the end, so a
swap never changes the core under a request in flight. The old generation counts its requests in
flight; ``drained()`` waits (bounded) until the last one has answered, after which its backends can be
closed without failing anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, Protocol, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send


class HasApp(Protocol):
    @property
    def app(self) -> ASGIApp: ...


C = TypeVar("C", bound=HasApp)


class Generation(Generic[C]):
    """One core while it serves, and its requests in flight."""

    __slots__ = ("app", "core", "idle", "inflight")

    def __init__(self, core: C) -> None:
        self.core = core
        self.app = core.app
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def drained(self, timeout: float) -> bool:
        """True once no request is in flight on this generation; False when ``timeout`` passed first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout)
        return self.inflight == 0


class Swappable(Generic[C]):
    """ASGI app serving every request with the core current when the request arrived."""

    def __init__(self, core: C) -> None:
        self._gen = Generation(core)

    @property
    def core(self) -> C:
        return self._gen.core

    def swap(self, core: C) -> Generation[C]:
        """Serve new requests with ``core``; returns the old generation (to drain, then close)."""
        old, self._gen = self._gen, Generation(core)
        return old

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gen = self._gen  # the one indirection: the whole request is served by this generation
        gen.inflight += 1
        gen.idle.clear()
        try:
            await gen.app(scope, receive, send)
        finally:
            gen.inflight -= 1
            if not gen.inflight:
                gen.idle.set()
