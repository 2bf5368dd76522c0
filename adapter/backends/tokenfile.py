"""A bearer token read from a file and re-read when the file changes (bound service account tokens
rotate: the kubelet rewrites the projected file well before expiry). The token is never logged."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from adapter.errors import Unavailable

log = logging.getLogger(__name__)


class TokenFile:
    """``get()``: the file's stripped content, re-read when its mtime or size changes ("" without a file)."""

    def __init__(self, path: Path | None, what: str = "Prometheus") -> None:
        self._path = path
        self._what = what
        self._stamp: tuple[float, int] | None = None
        self._value = ""
        self._lock = threading.Lock()

    def get(self) -> str:
        if self._path is None:
            return ""
        try:
            st = os.stat(self._path)
        except OSError as e:
            raise Unavailable(f"cannot read the {self._what} token file") from e
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._value = self._path.read_text().strip()
                self._stamp = stamp
                log.info("%s token file (re)loaded", self._what.lower(), extra={"path": str(self._path)})
            return self._value
