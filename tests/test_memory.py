import asyncio.sslproto
from pathlib import Path

from adapter.memory import tls_read_buffer, trim, tune_malloc


def test_malloc_tuning_applies_on_glibc() -> None:
    assert tune_malloc() is True  # the supported platform (Debian, glibc); a no-op elsewhere


def test_tls_read_buffer_is_set_and_used_by_new_transports() -> None:
    before = asyncio.sslproto.SSLProtocol.max_size
    try:
        tls_read_buffer(32 * 1024)
        assert asyncio.sslproto.SSLProtocol.max_size == 32 * 1024
    finally:
        asyncio.sslproto.SSLProtocol.max_size = before



def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_trim_returns_freed_pages_inside_the_heap() -> None:
    # 100 KB blocks (below the mmap threshold: heap), every other one freed: holes the automatic
    # top-of-heap trimming cannot release, but malloc_trim(0) can
    blocks = [bytearray(100_000) for _ in range(600)]
    keep = blocks[1::2]
    del blocks
    before = _rss_kb()
    assert trim() is True
    assert _rss_kb() < before - 10_000  # > 10 MB of the ~30 MB freed went back
    del keep
