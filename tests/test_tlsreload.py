"""CertReloader over real TLS: a real uvicorn server on 127.0.0.1 whose certificate is swapped on disk."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adapter.certs import KeyPair, create_ca, issue
from adapter.tlsreload import CertReloader
from tests.support.procs import free_port, uvicorn_in_thread


def _der(pair: KeyPair) -> bytes:
    return x509.load_pem_x509_certificate(pair.cert_pem).public_bytes(serialization.Encoding.DER)


def _file_der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def _leaf(ca: KeyPair, cn: str) -> KeyPair:
    return issue(ca, cn, dns_names=("localhost",), ips=("127.0.0.1",), server=True)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Served:
    port: int
    config: uvicorn.Config
    cert: Path
    key: Path
    ca: KeyPair



@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ca = create_ca("reload-test-ca")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _leaf(ca, "first").write(cert, key)
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                            lifespan="off", ws="none", log_level="warning", timeout_keep_alive=60)
    config.load()  # builds config.ssl: the context the server will use for every handshake
    with uvicorn_in_thread(config, "uvicorn-tls"):
        yield Served(port, config, cert, key, ca)


def _server_ctx(served: Served) -> ssl.SSLContext:
    ctx = served.config.ssl
    assert isinstance(ctx, ssl.SSLContext)
    return ctx


def _client_ctx(*cas: KeyPair) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.load_verify_locations(cadata="".join(c.cert_pem.decode() for c in cas))
    return ctx


def _connect(port: int, ctx: ssl.SSLContext) -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    conn.connect()
    return conn


def _get(conn: http.client.HTTPSConnection, path: str) -> str:
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("connection", "").lower() != "close"
    return resp.read().decode()


def _peer(conn: http.client.HTTPSConnection) -> bytes:
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def _served_der(port: int, ctx: ssl.SSLContext) -> bytes:
    conn = _connect(port, ctx)
    try:
        assert _get(conn, "/probe") == "/probe"
        return _peer(conn)
    finally:
        conn.close()


def _replace(pair: KeyPair, cert: Path, key: Path) -> None:
    """Swap both files atomically, the way the kubelet's symlink flip looks to a reader."""
    pair.write(cert.with_suffix(".crt.new"), key.with_suffix(".key.new"))
    os.replace(key.with_suffix(".key.new"), key)
    os.replace(cert.with_suffix(".crt.new"), cert)


def test_swapped_certificate_is_served_to_new_connections_and_old_connection_survives(served: Served) -> None:
    first_der = _file_der(served.cert)
    reloader = CertReloader(_server_ctx(served), served.cert, served.key)
    new_ca = create_ca("rotated-ca")  # a rotation to a new CA: clients trusting both accept either
    trust_both = _client_ctx(served.ca, new_ca)

    conn_a = _connect(served.port, trust_both)
    try:
        assert _get(conn_a, "/a1") == "/a1"
        assert _peer(conn_a) == first_der
        assert reloader.check_now() is False  # nothing changed yet

        second = _leaf(new_ca, "second")
        _replace(second, served.cert, served.key)
        # Not reloaded yet: a new connection still gets the first certificate.
        assert _served_der(served.port, trust_both) == first_der

        assert reloader.check_now() is True
        assert reloader.reloads == 1
        assert _served_der(served.port, trust_both) == _der(second)
        # Only the new CA is needed from now on.
        assert _served_der(served.port, _client_ctx(new_ca)) == _der(second)
        with pytest.raises(ssl.SSLCertVerificationError):
            _served_der(served.port, _client_ctx(served.ca))

        # Connection A was never dropped: same socket, old certificate, still answering.
        assert _get(conn_a, "/a2") == "/a2"
        assert _peer(conn_a) == first_der
        assert reloader.check_now() is False  # the same files are not loaded twice
    finally:
        conn_a.close()


@pytest.mark.parametrize("breakage", ["mismatched-key", "half-written-cert", "empty-key", "missing-key"])
def test_invalid_pair_is_rejected_with_a_warning_and_old_cert_kept(
        served: Served, breakage: str, caplog: pytest.LogCaptureFixture) -> None:
    first_der = _file_der(served.cert)
    reloader = CertReloader(_server_ctx(served), served.cert, served.key)
    trust = _client_ctx(served.ca)
    good = _leaf(served.ca, "good-next")
    other = _leaf(served.ca, "other")
    if breakage == "mismatched-key":  # new certificate written, key not yet
        served.cert.write_bytes(good.cert_pem)
    elif breakage == "half-written-cert":
        served.cert.write_bytes(good.cert_pem[: len(good.cert_pem) // 2])
        served.key.write_bytes(good.key_pem)
    elif breakage == "empty-key":
        served.cert.write_bytes(good.cert_pem)
        served.key.write_bytes(b"")
    else:
        served.key.unlink()
    with caplog.at_level(logging.WARNING, logger="adapter.tlsreload"):
        assert reloader.check_now() is False
        assert reloader.check_now() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "an invalid pair must be logged at warning"
    if breakage != "missing-key":
        assert len(warnings) == 1, "the same bad pair is reported once, not on every poll"
    assert reloader.reloads == 0
    assert _served_der(served.port, trust) == first_der  # the server still works, old certificate

    # The writer finishes: the next check picks the good pair up.
    _replace(good, served.cert, served.key)
    assert reloader.check_now() is True
    assert _served_der(served.port, trust) == _der(good)
    # and a different mismatched pair after that is refused again
    served.key.write_bytes(other.key_pem)
    assert reloader.check_now() is False
    assert _served_der(served.port, trust) == _der(good)


def test_run_polls_and_stops_on_cancel(served: Served) -> None:
    reloader = CertReloader(_server_ctx(served), served.cert, served.key, interval=0.05)
    second = _leaf(served.ca, "polled")

    async def scenario() -> None:
        task = asyncio.create_task(reloader.run())
        await asyncio.sleep(0.12)
        assert reloader.reloads == 0
        _replace(second, served.cert, served.key)
        for _ in range(100):  # bounded: at most ~5 s
            if reloader.reloads:
                break
            await asyncio.sleep(0.05)
        assert reloader.reloads == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=2)
        assert task.cancelled()

    asyncio.run(scenario())
    assert _served_der(served.port, _client_ctx(served.ca)) == _der(second)


def test_rejects_non_positive_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CertReloader(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tmp_path / "c", tmp_path / "k", interval=0)
