"""What starts a rules reload: a changed ``--config`` file (polled) and SIGHUP.

Kubernetes updates a mounted ConfigMap by pointing its ``..data`` symlink at a new directory, which
inotify on the file's path does not reliably report, so the file is polled: every ``interval``
seconds its resolved real path and the SHA-256 of its bytes are compared with the last seen. A change
asks for a reload once; the reloader itself decides whether the rules changed (and keeps serving the
old ones when the new file is invalid, until the file changes again or SIGHUP asks to retry).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Reload = Callable[[str], Coroutine[Any, Any, bool]]


def observe(path: Path) -> tuple[str, str]:
    """(real path, SHA-256 of the bytes) of ``path``; ("", "") while it cannot be read."""
    try:
        real = os.path.realpath(path)
        with open(real, "rb") as fh:
            return real, hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return "", ""


class ConfigWatcher:
    """Poll ``path``; call ``reload("file changed")`` when its target or content changes."""

    def __init__(self, path: Path, reload: Reload, interval: float, seen: tuple[str, str] | None = None) -> None:
        """``seen``: ``observe(path)`` taken before the rules now served were read (default: now)."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.path = path
        self._reload = reload
        self.interval = interval
        self._seen = observe(path) if seen is None else seen

    async def check_now(self) -> bool:
        """Ask for a reload if the file changed since the last check; True when one was asked for."""
        seen = observe(self.path)
        if seen == self._seen:
            return False
        self._seen = seen
        log.info("rules file changed", extra={"path": str(self.path), "target": seen[0] or "(unreadable)"})
        await self._reload("file changed")
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep watching: a later fix of the file must still be picked up
                log.exception("rules file: reload check failed")


def reload_on_sighup(reload: Reload) -> Callable[[], None]:
    """Reload on SIGHUP (one at a time: the reloader serializes); returns a function removing the handler."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[bool]] = set()

    def on_signal() -> None:
        log.info("SIGHUP: reloading the rules")
        task = loop.create_task(reload("SIGHUP"), name="reload-sighup")
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_signal)
    except (ValueError, RuntimeError, NotImplementedError) as e:  # not the main thread (embedded), or no signals
        log.warning("SIGHUP cannot be handled here (%s); the rules file is still watched", e)
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)
    return remove
