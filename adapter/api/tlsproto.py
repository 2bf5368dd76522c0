"""Peer certificates for the app: uvicorn protocol subclasses exposing the ASGI TLS extension.

Released uvicorn does not put the client certificate in the ASGI scope. ``TLSH11Protocol`` (and
``TLSHttpToolsProtocol`` when httptools is installed) read the connection's ``ssl_object`` once in
``connection_made`` and wrap the app so that every request on that connection carries
``scope["extensions"]["tls"]`` as the ASGI TLS extension specifies: ``client_cert_chain`` (PEM
strings, leaf first, as the client sent them), ``client_cert_name``, ``client_cert_error``,
``server_cert``, ``tls_version`` (e.g. ``0x0304``) and ``cipher_suite`` (IANA id).

Use: ``uvicorn.Config(app, http=tls_protocol_class(read_header_timeout, max_header_bytes),
timeout_keep_alive=idle_timeout, ssl_context_factory=lambda cfg, default:
build_server_ssl_context(cert, key, [requestheader_ca_pem, client_ca_pem]))``.

Requesting a client certificate without verifying it (Go's ``tls.RequestClientCert``)
------------------------------------------------------------------------------------
k8s.io/apiserver asks for a client certificate but leaves its verification to the authenticators,
so a certificate from an unknown CA makes a request 401 (or it is authenticated by its bearer
token), never a failed handshake. Python's ``ssl`` cannot do that by itself: ``CERT_NONE`` sends no
CertificateRequest, and ``CERT_OPTIONAL`` makes OpenSSL verify any certificate sent against the
loaded CAs and abort the handshake when it does not verify; there is no verify-callback API, and
pyOpenSSL does not plug into asyncio's TLS transport. So ``request_client_certificates`` sets
``CERT_OPTIONAL`` and installs, with ``ctypes``, OpenSSL's documented
``SSL_CTX_set_cert_verify_callback`` on the context's ``SSL_CTX`` with a callback that accepts
the chain: OpenSSL still requires the client to prove possession of the certificate's key
(CertificateVerify); only chain validation moves to Python, where ``adapter.api.x509verify``
checks every request against the CA for its purpose, as Go's ``Certificate.Verify``. The
``SSL_CTX`` pointer is the first field after the object header of CPython's ``_ssl._SSLContext``
(``PySSLContext.ctx``); it is used only after ``SSL_CTX_get_options`` and ``SSL_CTX_get_verify_mode``
read through it agree with the context's ``options`` and ``verify_mode``. Where that cannot be done
(not CPython, OpenSSL symbols not reachable), the context falls back to verifying at the TLS layer
against the loaded CAs, with a warning: still secure, but a foreign certificate fails the handshake.

The same classes bound what a connection may hold before it has sent a request, as k8s.io/apiserver
does (``secure_serving.go``: ReadHeaderTimeout 32 s, MaxHeaderBytes 1 MiB; IdleTimeout 90 s is
uvicorn's ``timeout_keep_alive``): from the connection's start, and from the first byte of each
later request, the request line and headers must arrive within ``read_header_timeout`` or the
connection is closed; a header block over ``max_header_bytes`` is answered 431 (a Status) and the
connection closed; a request the HTTP parser rejects is answered 400 as a Status too (uvicorn writes
plain text). Released uvicorn only times out idle keep-alive connections (after a response),
and its httptools protocol has no header size limit at all.
"""

from __future__ import annotations

import _ssl
import asyncio
import ctypes
import logging
import ssl
import sys
import weakref
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from adapter.api.status import status_body
from adapter.errors import AdapterError, BadRequest

log = logging.getLogger(__name__)

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def build_server_ssl_context(cert_file: str, key_file: str, client_ca_pems: Sequence[bytes]) -> ssl.SSLContext:
    """Serving context: TLS >= 1.2, ALPN http/1.1; client certificates requested, not verified, when
    any client CA is given (``request_client_certificates``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.verify_mode = ssl.CERT_NONE
    pems = [p for p in client_ca_pems if p and p.strip()]
    if pems:
        request_client_certificates(ctx, pems)
    return ctx


_ACCEPT_CHAIN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(lambda _store, _arg: 1)
_SSL_VERIFY_PEER = 1
_unverified: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()  # chain left to the authenticator
_fallback: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()  # OpenSSL verifies against the loaded CAs


def _leave_chain_to_python(ctx: ssl.SSLContext) -> bool:
    """Install the accept-the-chain callback on ``ctx`` (``ctx.verify_mode`` must be CERT_OPTIONAL)."""
    if sys.implementation.name != "cpython":
        return False
    try:
        lib = ctypes.CDLL(_ssl.__file__)
        get_options, get_mode = lib.SSL_CTX_get_options, lib.SSL_CTX_get_verify_mode
        set_callback = lib.SSL_CTX_set_cert_verify_callback
    except (OSError, AttributeError):
        return False
    get_options.argtypes, get_options.restype = [ctypes.c_void_p], ctypes.c_uint64
    get_mode.argtypes, get_mode.restype = [ctypes.c_void_p], ctypes.c_int
    set_callback.argtypes, set_callback.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p], None
    ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ssl_ctx or get_options(ssl_ctx) != int(ctx.options) or get_mode(ssl_ctx) != _SSL_VERIFY_PEER:
        return False
    set_callback(ssl_ctx, ctypes.cast(_ACCEPT_CHAIN, ctypes.c_void_p), None)
    return True


def request_client_certificates(ctx: ssl.SSLContext, ca_pems: Sequence[bytes]) -> None:
    """Make ``ctx`` request a client certificate and accept any chain the client proves it owns; the
    authenticator verifies it per purpose. Call again with CAs learned later (they matter only in the
    fallback, where OpenSSL verifies against them)."""
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # no session resumption: OpenSSL does not keep the client's intermediates in a session ticket,
    # so a resumed connection would present the leaf alone (Go's server keeps the whole chain)
    ctx.num_tickets = 0
    ctx.options |= ssl.OP_NO_TICKET
    if ctx in _unverified:
        return
    if ctx not in _fallback:
        if _leave_chain_to_python(ctx):
            _unverified.add(ctx)
            return
        _fallback.add(ctx)
        log.warning("cannot leave client-certificate verification to the authenticator on this Python/OpenSSL: "
                    "certificates from CAs other than the client CAs fail the TLS handshake")
    bundle = b"\n".join(p.strip() for p in ca_pems if p and p.strip())
    if bundle:
        ctx.load_verify_locations(cadata=bundle.decode("ascii"))


def _chain_der(obj: ssl.SSLObject) -> list[bytes]:
    """The peer's certificates as sent (leaf first); the leaf alone where the chain API is missing."""
    inner: Any = getattr(obj, "_sslobj", obj)
    getter = getattr(obj, "get_unverified_chain", None) or getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        certs = getter() or []
        out = []
        for c in certs:
            der = c.public_bytes(ssl._ssl.ENCODING_DER) if hasattr(c, "public_bytes") else c  # type: ignore[attr-defined]
            if der:
                out.append(bytes(der))
        if out:
            return out
    leaf = obj.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _cipher_id(obj: ssl.SSLObject, ctx: ssl.SSLContext | None) -> int | None:
    cipher = obj.cipher()
    if cipher is None or ctx is None:
        return None
    for c in ctx.get_ciphers():
        if c.get("name") == cipher[0]:
            return int(c["id"]) & 0xFFFF
    return None


def tls_extension(obj: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension dict for a connection, or None when it is not TLS."""
    if obj is None:
        return None
    chain = _chain_der(obj)
    pems = [ssl.DER_cert_to_PEM_cert(d) for d in chain]
    name = None
    if chain:
        try:
            name = x509.load_der_x509_certificate(chain[0]).subject.rfc4514_string()
        except ValueError:
            name = None
    version = obj.version()
    return {
        "server_cert": None,
        "client_cert_chain": pems,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": _cipher_id(obj, obj.context),
    }


class _WithTLS:
    """ASGI wrapper adding a fixed TLS extension dict to each HTTP scope of one connection."""

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": dict(self.tls)}
        await self.app(scope, receive, send)


class _TLSMixin:
    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        tls = tls_extension(transport.get_extra_info("ssl_object"))
        if tls is not None:
            self.app = _WithTLS(self.app, tls)


READ_HEADER_TIMEOUT = 32.0  # k8s.io/apiserver secure_serving.go
MAX_HEADER_BYTES = 1 << 20


class HeaderTooLarge(AdapterError):
    code = 431
    reason = ""  # Go answers this before any request exists: no StatusReason for it


def _closing_response(status_line: bytes, err: AdapterError) -> bytes:
    body = status_body(err)
    return (b"HTTP/1.1 " + status_line + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


_431_RESPONSE = _closing_response(b"431 Request Header Fields Too Large",
                                  HeaderTooLarge("request header fields too large"))
_400_RESPONSE = _closing_response(b"400 Bad Request", BadRequest("invalid HTTP request"))


class _HeaderLimitsMixin:
    """Header-read timeout, header size limit and Status answers for uvicorn's protocols (h11 and httptools).

    "Waiting for headers" means no request cycle or the last one answered; the timer runs from the
    connection's start and from the first byte of each later request until a request's headers are
    complete (uvicorn then starts a new cycle)."""

    read_header_timeout: float = READ_HEADER_TIMEOUT
    max_header_bytes: int = MAX_HEADER_BYTES
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        waiting = before is None or before.response_complete
        if waiting:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._cancel_header_timer()
                if not self.transport.is_closing():
                    self.transport.write(_431_RESPONSE)
                    self.transport.close()
                return
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:  # a request's headers are complete
            self._header_bytes = 0
            self._cancel_header_timer()
        elif waiting:
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser rejects: a 400 Status (uvicorn writes plain text), then close."""
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self.transport.write(_400_RESPONSE)
            self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self.read_header_timeout > 0:
            self._header_timer = self.loop.call_later(self.read_header_timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()  # as Go's server does: no answer to a request that never arrived


class TLSH11Protocol(_HeaderLimitsMixin, _TLSMixin, H11Protocol):
    """uvicorn's h11 protocol plus the ASGI TLS extension and the header limits."""


def tls_protocol_class(read_header_timeout: float = READ_HEADER_TIMEOUT,
                       max_header_bytes: int = MAX_HEADER_BYTES) -> type[asyncio.Protocol]:
    """httptools-based when httptools is installed (what uvicorn's ``auto`` picks), else h11; with
    these header limits (give uvicorn ``h11_max_incomplete_event_size=max_header_bytes`` too)."""
    base: type[Any]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    except ImportError:
        base = TLSH11Protocol
    else:
        class TLSHttpToolsProtocol(_HeaderLimitsMixin, _TLSMixin, HttpToolsProtocol):
            """uvicorn's httptools protocol plus the ASGI TLS extension and the header limits."""

        base = TLSHttpToolsProtocol
    attrs = {"read_header_timeout": read_header_timeout, "max_header_bytes": max_header_bytes}
    cls: type[asyncio.Protocol] = type(base.__name__, (base,), attrs)
    return cls

