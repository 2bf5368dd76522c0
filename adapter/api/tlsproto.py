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

The same classes bound what a connection may hold before it has sent a request, as k8s.io/apiserver
does (``secure_serving.go``: ReadHeaderTimeout 32 s, MaxHeaderBytes 1 MiB; IdleTimeout 90 s is
uvicorn's ``timeout_keep_alive``): from the connection's start, and from the first byte of each
later request, the request line and headers must arrive within ``read_header_timeout`` or the
connection is closed; a header block over ``max_header_bytes`` is answered 431 (a Status) and the
connection closed; a request the HTTP parser rejects is answered 400 as a Status too (uvicorn writes
plain text). Released uvicorn only times out idle keep-alive connections (after a response),
and its httptools protocol has no header size limit at all.

The server context requests but does not require a certificate (``CERT_OPTIONAL``) and trusts
the union of the request-header CA and the client CA, so OpenSSL only lets through chains that
verify against one of them; the authenticator then re-verifies the chain against the right CA for
each purpose (``verify_client_chain``): signature, validity period and ExtendedKeyUsage clientAuth.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, Policy, PolicyBuilder, Store, VerificationError
from uvicorn.protocols.http.h11_impl import H11Protocol

from adapter.api.status import status_body
from adapter.errors import AdapterError, BadRequest

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def build_server_ssl_context(cert_file: str, key_file: str, client_ca_pems: Sequence[bytes]) -> ssl.SSLContext:
    """Serving context: TLS >= 1.2, ALPN http/1.1, client certs requested (not required) from the CAs given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    bundle = b"\n".join(p.strip() for p in client_ca_pems if p and p.strip())
    if bundle:
        ctx.load_verify_locations(cadata=bundle.decode("ascii"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


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


# --- per-purpose verification ----------------------------------------------------------------------


class ChainRejected(Exception):
    """The presented chain does not verify for this purpose (message says why)."""


def load_pem_bundle(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []


def _client_auth_usage(_policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    """Go's rule: a leaf without EKU may be used for anything; with EKU it must allow clientAuth."""
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
        raise ValueError("certificate specifies an incompatible key usage")


# Web-PKI profile for the leaf, relaxed where Go's crypto/x509 is: client certs (kubeadm's
# front-proxy-client) have no SAN and may lack AKI; a leaf without EKU is accepted.
_EE_POLICY = (ExtensionPolicy.webpki_defaults_ee()
              .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
              .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
              .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _client_auth_usage))


def verify_client_chain(chain_pems: Sequence[str], roots: Sequence[x509.Certificate],
                        now: dt.datetime | None = None) -> x509.Certificate:
    """Verify a client chain (leaf first) against ``roots`` for clientAuth; return the leaf.

    Uses cryptography's RFC 5280 path builder (signatures, validity period, basic constraints,
    key usage, ExtendedKeyUsage clientAuth). Raises ``ChainRejected``.
    """
    if not chain_pems:
        raise ChainRejected("no client certificate")
    if not roots:
        raise ChainRejected("no trusted CA configured")
    try:
        certs = [x509.load_pem_x509_certificate(p.encode("ascii")) for p in chain_pems]
    except ValueError as e:
        raise ChainRejected(f"unparseable certificate: {e}") from e
    builder = (PolicyBuilder().store(Store(list(roots))).time(now or dt.datetime.now(dt.UTC))
               .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_EE_POLICY))
    try:
        verified = builder.build_client_verifier().verify(certs[0], certs[1:])
    except VerificationError as e:
        raise ChainRejected(f"x509: {e}") from e
    return verified.chain[0]


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def organizations(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME))


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
