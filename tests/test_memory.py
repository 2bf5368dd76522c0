import asyncio.sslproto

from adapter.memory import tls_read_buffer, tune_malloc


def test_malloc_tuning_applies_on_glibc() -> None:
    assert tune_malloc() is True  # the supported platform (Debian, glibc); a no-op elsewhere


def test_tls_read_buffer_is_set_and_used_by_new_transports() -> None:
    before = asyncio.sslproto.SSLProtocol.max_size
    try:
        tls_read_buffer(32 * 1024)
        assert asyncio.sslproto.SSLProtocol.max_size == 32 * 1024
    finally:
        asyncio.sslproto.SSLProtocol.max_size = before
