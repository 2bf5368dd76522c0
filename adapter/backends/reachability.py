"""Whether Prometheus answers: one log line per change of state, a callback for the ``up`` gauge.

During an outage every call fails; logging each (or urllib3's ``Retrying ...`` per connection) floods
the log with hundreds of lines a second under load. Instead the state flips at most once per change,
with the reason, and the calls themselves are counted in /metrics by the backend's outcome counters.

A timeout only means "unreachable" when no call has succeeded since the timed-out call started: one
slow query next to answered ones is a slow query, not an outage.

Our urllib3 ``Retry`` is a ``QuietRetry``: its ``Retrying (...) after connection broken`` warnings are
dropped by a filter on urllib3's logger, so other sessions in the process keep theirs.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from urllib3.util.retry import Retry

from adapter.model import DEFAULT_BACKEND

log = logging.getLogger("adapter.backends.prometheus")


class QuietRetry(Retry):
    """urllib3 ``Retry`` whose retry warnings are not logged (see ``install_retry_filter``)."""


class _DropQuietRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and args and isinstance(args[0], QuietRetry))


_FILTER = _DropQuietRetries()


def install_retry_filter() -> None:
    """Idempotent: urllib3.connectionpool logs ``Retrying (<Retry>) ...`` with the Retry as first argument."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def short_reason(e: BaseException) -> str:
    """A one-line cause for the log: the OS error of a failed connect, else the exception's type."""
    text = str(e)
    m = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    return m.group(0).strip() if m else type(e).__name__


class Reachability:
    def __init__(self, url: str, on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, backend: str = DEFAULT_BACKEND) -> None:
        self._url = url
        self._backend = backend  # the rules file's name of it (``default``: the --prometheus-* flags)
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self.up: bool | None = None  # unknown until the first call ends
        self._last_success = float("-inf")

    def started(self) -> float:
        return self._clock()

    def success(self) -> None:
        with self._lock:
            self._last_success = self._clock()
            changed, before = self.up is not True, self.up
            self.up = True
        if changed:
            log.info("Prometheus is reachable" + (" again" if before is False else ""),
                     extra={"url": self._url, "backend": self._backend})
            if self._on_change:
                self._on_change(True)

    def failure(self, reason: str, started: float, *, timeout: bool = False) -> None:
        with self._lock:
            if self.up is False or (timeout and self._last_success >= started):
                return  # already down, or a slow call while others were answered
            self.up = False
        log.warning("Prometheus is unreachable; requests answer 503 Status until it is back",
                    extra={"url": self._url, "backend": self._backend, "reason": reason})
        if self._on_change:
            self._on_change(False)
