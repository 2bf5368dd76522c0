"""Raw TLS connections to a test server: send bytes exactly as given, read until the server closes."""

from __future__ import annotations

import socket
import ssl

BOUND = 30.0  # generous: a loaded machine still closes within it; never asserted as a duration


def connect(port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=BOUND), server_hostname="localhost")


def read_until_closed(sock: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes the connection (fails if still open after BOUND)."""
    data = b""
    sock.settimeout(BOUND)
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError as e:
            raise AssertionError(f"connection still open after {BOUND:g}s; received {data[:200]!r}") from e
        except (ssl.SSLError, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk
