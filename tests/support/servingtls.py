"""A real HTTPS server on a serving pair, with the adapter's certificate reloader, and a handshake that
verifies it as the aggregator does (chain to the caBundle, the Service DNS name)."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapter.certs import KeyPair
from adapter.tlsreload import CertReloader
from tests.support.procs import free_port, uvicorn_in_thread


@dataclass
class Served:
    port: int
    cert: Path  # the mounted files: write a new pair here, then reloader.check_now()
    key: Path
    reloader: CertReloader


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@contextlib.contextmanager
def serving(directory: Path, pair: KeyPair) -> Iterator[Served]:
    """Serve ``pair`` on 127.0.0.1 until the block ends."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    pair.write(cert, key)
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                            lifespan="off", ws="none", log_level="warning")
    config.load()  # builds config.ssl, the context every handshake uses
    assert isinstance(config.ssl, ssl.SSLContext)
    with uvicorn_in_thread(config, "serving-tls"):
        yield Served(port, cert, key, CertReloader(config.ssl, cert, key))


def handshake(port: int, trusted_pem: bytes, server_name: str) -> bytes:
    """PEM of the certificate the server presented, verified against ``trusted_pem`` for ``server_name``
    (raises ssl.SSLCertVerificationError otherwise)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=trusted_pem.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
