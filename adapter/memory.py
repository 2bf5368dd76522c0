"""Process memory tuning for glibc, applied once at start-up by ``serve``.

asyncio's TLS transport allocates a 256 KiB read buffer per connection. glibc's dynamic mmap
threshold rises after the first such buffer is freed, so later ones come from the heap and stay
there after their connection closes: a burst of 500 connections left ~160 MB behind for good.
Pinning the threshold (which also turns its dynamic adjustment off) makes those buffers mmap'd and
returned to the system on close. Two malloc arenas are plenty for our few worker threads.
No-op where glibc is not the C library.

``tls_read_buffer`` shrinks that per-connection buffer itself (asyncio's ``SSLProtocol.max_size``,
the size passed to each TLS read): 16 KiB holds a full TLS record, and the requests this server
reads are small GETs, so 1,000 idle keep-alive connections cost ~16 MB instead of ~256 MB.

``trim`` (``malloc_trim(0)``, after every relist) hands freed heap pages back to the system.
"""

from __future__ import annotations

import asyncio.sslproto
import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_malloc(mmap_threshold: int = 128 * 1024, arenas: int = 2) -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_ARENA_MAX, arenas))
    log.debug("malloc tuned", extra={"mmap_threshold": mmap_threshold, "arenas": arenas, "ok": ok})
    return ok


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def trim() -> bool:
    """``malloc_trim(0)``: give free heap pages back to the system (glibc also releases free pages
    inside the heap, not only at its top). Called after each relist: a few ms at most."""
    libc = _glibc()
    fn = getattr(libc, "malloc_trim", None) if libc is not None else None
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return bool(fn(0))


def tls_read_buffer(size: int = 16 * 1024) -> None:
    """Per-connection TLS read buffer of asyncio's transport (default 256 KiB)."""
    if hasattr(asyncio.sslproto.SSLProtocol, "max_size"):
        asyncio.sslproto.SSLProtocol.max_size = size


# diagnosis only: with this variable set to a directory, ``serve`` traces allocations (slower) and
# writes a tracemalloc snapshot there on each SIGUSR1 (``benchmarks.soak --tracemalloc`` diffs them)
TRACEMALLOC_ENV = "ACCEL_ADAPTER_TRACEMALLOC"


def snapshots_on_signal(directory: str | None, frames: int = 8) -> bool:
    """Start tracemalloc and dump ``snapshot-<n>.tracemalloc`` into ``directory`` on SIGUSR1."""
    if not directory:
        return False
    import itertools  # noqa: PLC0415 - diagnosis only
    import signal  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(frames)
    seq = itertools.count(1)

    def dump(_sig: int, _frame: object) -> None:
        path = out / f"snapshot-{next(seq)}.tracemalloc"
        tracemalloc.take_snapshot().dump(str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").rename(path)  # complete when it appears
        log.warning("tracemalloc snapshot written", extra={"path": str(path)})

    signal.signal(signal.SIGUSR1, dump)
    log.warning("tracing allocations (diagnosis mode)", extra={"directory": str(out)})
    return True
