"""Connections that never finish a request are closed; header blocks over the limit are refused.

A real uvicorn HTTPS server in a thread with each of our protocol classes (h11 and httptools), a
1 s header-read timeout and an 8 KiB header limit, and uvicorn's idle keep-alive timeout left long
(60 s), so a close can only come from the header limits. Waits are bounded, never asserted as
durations. The real process's flags: tests/integration/test_connection_limits.py.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from adapter import certs
from adapter.api.tlsproto import TLSH11Protocol, tls_protocol_class
from tests.support.procs import free_port, uvicorn_in_thread
from tests.support.rawtls import connect, read_until_closed

LIMIT = 8192


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module", params=["h11", "httptools"])
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    base: type[Any] = TLSH11Protocol if request.param == "h11" else tls_protocol_class()
    assert request.param == "h11" or base.__name__ == "TLSHttpToolsProtocol", "pip install httptools"
    protocol = type(base.__name__, (base,), {"read_header_timeout": 1.0, "max_header_bytes": LIMIT})
    cert, key = certs.ensure_self_signed(Path(tmp_path_factory.mktemp("certs")))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    p = free_port()
    config = uvicorn.Config(ok_app, host="127.0.0.1", port=p, http=protocol, ssl_certfile=str(cert),
                            ssl_keyfile=str(key), ssl_context_factory=lambda cfg, default: ctx, lifespan="off",
                            log_level="critical", timeout_keep_alive=60, h11_max_incomplete_event_size=LIMIT,
                            timeout_graceful_shutdown=1)
    with uvicorn_in_thread(config, f"limits-{request.param}"):
        yield p


def read_response(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_connection_that_sends_nothing_is_closed(port: int) -> None:
    with connect(port) as s:
        assert read_until_closed(s) == b""


@pytest.mark.parametrize("partial", [b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n"],
                         ids=["request-line", "headers"])
def test_partial_request_is_closed_without_an_answer(port: int, partial: bytes) -> None:
    with connect(port) as s:
        s.sendall(partial)
        assert read_until_closed(s) == b""


def test_partial_second_request_on_a_keep_alive_connection_is_closed(port: int) -> None:
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        assert read_until_closed(s) == b""


def test_header_block_over_the_limit_gets_431_or_is_closed(port: int) -> None:
    with connect(port) as s:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (3 * LIMIT) + b"\r\n")
        except (ssl.SSLError, ConnectionError):
            return  # closed while we were still sending
        data = read_until_closed(s)
    assert data == b"" or data.startswith(b"HTTP/1.1 431"), data[:200]
    if data:
        status = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert status["kind"] == "Status" and status["code"] == 431


def test_complete_requests_under_the_limit_are_served(port: int) -> None:
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (LIMIT // 2) + b"\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 200")
        for _ in range(3):  # headers arriving in pieces, each well within the timeout
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            s.sendall(b"Host: a\r\n\r\n")
            assert read_response(s).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("request_bytes", [b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
                                           b"\x16\x03\x01 not http\r\n\r\n"], ids=["header-line", "garbage"])
def test_request_the_parser_rejects_gets_a_400_status(port: int, request_bytes: bytes) -> None:
    with connect(port) as s:
        s.sendall(request_bytes)
        data = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    status = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert status["kind"] == "Status" and status["code"] == 400 and status["reason"] == "BadRequest"
