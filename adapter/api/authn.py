"""Delegated authentication, as ``DelegatingAuthenticatorConfig`` builds it (protocol.md §5.2).

    FailOnError(AuthenticatedGroupAdder(Union(requestheader, x509, bearer-token)), anonymous)

* requestheader: the TLS client chain must verify against the request-header CA (clientAuth, as
  Go's ``Certificate.Verify``: ``adapter.api.x509verify``) and its CN be in the allowed names
  (empty = any); then the user is the first non-empty username
  header, groups every value of every group header (one per header line, never split), extras from
  prefixed headers with the lower-cased, percent-decoded remainder as key. No username header:
  not applicable.
* x509: chain verified against the client CA; user = CN, groups = O, extra credential-id.
* bearer token: TokenReview, results (success and failure) cached for the TTL by token digest.
* First success wins; else any error -> 401 ``Unauthorized``; else ``system:anonymous``.

The TLS layer requests a client certificate without verifying it (``tls.RequestClientCert``), so a
certificate from another CA reaches this code and is an error here (401), as in k8s.io/apiserver.
When a request fails for a certificate reason, the reasons (Go's wording, the certificate's serial,
subject and issuer, the CA bundle's subjects) are logged at warning once per distinct certificate
and reason, so an operator sees why the aggregator gets 401.

The front-proxy headers and ``Authorization`` are always removed from the scope so nothing
downstream can read an unverified identity. CA bundles and header names come from flags, else
(unless ``--authentication-skip-lookup``) from ``kube-system/extension-apiserver-authentication``,
re-derived whenever the ConfigMap changes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from adapter.api.tlsproto import request_client_certificates
from adapter.api.x509verify import (
    CertPool,
    ChainRejected,
    common_name,
    load_pem_bundle,
    organizations,
    verify_client_chain,
)
from adapter.cache import QueryCache
from adapter.errors import AdapterError, Unauthorized
from adapter.model import Identity
from adapter.ports import AuthenticationConfig, TokenReviews

log = logging.getLogger(__name__)
ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class RequestHeaderConfig:
    ca_pem: bytes
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("x-remote-user",)
    group_headers: tuple[str, ...] = ("x-remote-group",)
    extra_prefixes: tuple[str, ...] = ("x-remote-extra-",)
    uid_headers: tuple[str, ...] = ()
    roots: CertPool = field(default_factory=CertPool, compare=False)

    def __post_init__(self) -> None:
        lower = {n: tuple(h.lower() for h in getattr(self, n))
                 for n in ("username_headers", "group_headers", "extra_prefixes", "uid_headers")}
        for name, value in lower.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "roots", CertPool(load_pem_bundle(self.ca_pem)))


@dataclass(frozen=True)
class AuthnConfig:
    requestheader: RequestHeaderConfig | None = None
    client_ca_pem: bytes = b""
    client_roots: CertPool = field(default_factory=CertPool, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_roots", CertPool(load_pem_bundle(self.client_ca_pem)))

    @property
    def ca_pems(self) -> list[bytes]:
        """What the TLS layer must trust: the union of both CAs."""
        return [p for p in ((self.requestheader.ca_pem if self.requestheader else b""), self.client_ca_pem) if p]


def _list(data: Mapping[str, str | tuple[str, ...]], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = data.get(key)
    return tuple(value) if isinstance(value, tuple) else default


def config_from_configmap(data: Mapping[str, str | tuple[str, ...]], base: AuthnConfig,
                          *, requestheader: bool, client_ca: bool) -> AuthnConfig:
    """Fill the parts not given by flags from the ConfigMap data (as decoded by the backend)."""
    rh = base.requestheader
    rh_ca = data.get("requestheader-client-ca-file")
    if requestheader and isinstance(rh_ca, str) and rh_ca.strip():
        rh = RequestHeaderConfig(
            rh_ca.encode(), _list(data, "requestheader-allowed-names", ()),
            _list(data, "requestheader-username-headers", ()), _list(data, "requestheader-group-headers", ()),
            _list(data, "requestheader-extra-headers-prefix", ()), _list(data, "requestheader-uid-headers", ()))
    ca = base.client_ca_pem
    cm_ca = data.get("client-ca-file")
    if client_ca and isinstance(cm_ca, str):
        ca = cm_ca.encode()
    return AuthnConfig(rh, ca)


def _headers(scope: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers") or []]


class Authenticator:
    """Authenticates one ASGI scope; see the module docstring."""

    def __init__(self, static: AuthnConfig, *, source: AuthenticationConfig | None = None,
                 lookup_requestheader: bool = False, lookup_client_ca: bool = False,
                 tokens: TokenReviews | None = None, token_ttl: float = 10.0) -> None:
        self.static = static
        self.source = source if (lookup_requestheader or lookup_client_ca) else None
        self.lookup_requestheader = lookup_requestheader
        self.lookup_client_ca = lookup_client_ca
        self.tokens = tokens
        self._token_cache: QueryCache[str, tuple[Identity | None]] = QueryCache(ttl=token_ttl, max_entries=10000)
        self._cm_data: object = None
        self._config = static
        self._ssl: ssl.SSLContext | None = None
        self._trusted: set[bytes] = set()
        self._warned: set[str] = set()

    async def config(self) -> AuthnConfig:
        """The current configuration (re-derived when the ConfigMap changed; the last good one on error)."""
        if self.source is None:
            return self._config
        try:
            data = await self.source.authentication_config()
        except AdapterError as e:
            log.warning("authentication config unavailable, keeping the last one: %s", e.message)
            return self._config
        if data is not self._cm_data:
            try:
                cfg = config_from_configmap(data or {}, self.static, requestheader=self.lookup_requestheader,
                                            client_ca=self.lookup_client_ca)
            except ValueError as e:
                log.warning("extension-apiserver-authentication: bad CA bundle, keeping the last one: %s", e)
            else:
                self._config = cfg
                log.info("authentication config loaded (requestheader %s, client CA %s)",
                         "on" if cfg.requestheader else "off", "on" if cfg.client_ca_pem else "off")
                self._trust(cfg)
            self._cm_data = data
        return self._config

    async def trust_bundle(self) -> list[bytes]:
        """Start-up: the CA PEMs the serving context must trust. Raises when the ConfigMap is unreadable
        (the reference server fails start-up then too)."""
        if self.source is not None:
            data = await self.source.authentication_config()
            self._config = config_from_configmap(data or {}, self.static, requestheader=self.lookup_requestheader,
                                                 client_ca=self.lookup_client_ca)
            self._cm_data = data
            if data is None:
                log.warning("kube-system/extension-apiserver-authentication not found: front-proxy and "
                            "client-certificate authentication are off")
        return self._config.ca_pems

    def attach_ssl_context(self, ctx: ssl.SSLContext) -> None:
        """Have the serving context request client certificates once CAs are known (ConfigMap changes)."""
        self._ssl = ctx
        self._trust(self._config)

    def _trust(self, cfg: AuthnConfig) -> None:
        if self._ssl is None:
            return
        for pem in cfg.ca_pems:
            if pem not in self._trusted:
                request_client_certificates(self._ssl, [pem])
                self._trusted.add(pem)

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Identity:
        cfg = await self.config()
        headers = _headers(scope)
        tls = (scope.get("extensions") or {}).get("tls") or {}
        chain: Sequence[str] = tls.get("client_cert_chain") or ()
        errors: list[str] = []
        who = None
        if chain and cfg.requestheader is not None:
            who = self._requestheader(cfg.requestheader, chain, headers, errors)
        if who is None and chain and len(cfg.client_roots):
            who = self._x509(cfg.client_roots, chain, errors)
        if who is None:
            who = await self._bearer(headers, errors)
        _strip(scope, cfg.requestheader, strip_authorization=who is not None)
        if who is not None:
            if AUTHENTICATED not in who.groups:
                who = Identity(who.user, (*who.groups, AUTHENTICATED), who.uid, who.extra)
            return who
        if errors:
            log.info("authentication failed: %s", "; ".join(errors))
            self._warn(errors)
            raise Unauthorized("Unauthorized")
        return ANONYMOUS

    def _warn(self, errors: list[str]) -> None:
        """Certificate reasons at warning, once per distinct text (the time of day left out)."""
        reasons = "; ".join(e for e in errors if e.startswith(("requestheader:", "x509:")))
        key = re.sub(r"current time \S+ ", "", reasons)
        if not reasons or key in self._warned:
            return
        if len(self._warned) >= 1024:
            self._warned.clear()
        self._warned.add(key)
        log.warning("client certificate rejected (401): %s", reasons)

    def _requestheader(self, rh: RequestHeaderConfig, chain: Sequence[str], headers: list[tuple[str, str]],
                       errors: list[str]) -> Identity | None:
        try:
            leaf = verify_client_chain(chain, rh.roots).cert
        except ChainRejected as e:
            errors.append(f"requestheader: {e} (requestheader-client-ca-file: {rh.roots.subjects()})")
            return None
        cn = common_name(leaf)
        if rh.allowed_names and cn not in rh.allowed_names:
            errors.append(f"requestheader: x509: subject with cn={cn} is not in the allowed list "
                          f"(requestheader-allowed-names: {', '.join(rh.allowed_names)})")
            return None
        user = next((v for h in rh.username_headers for k, v in headers if k == h and v), "")
        if not user:
            return None
        groups = tuple(v for h in rh.group_headers for k, v in headers if k == h and v)
        uid = next((v for h in rh.uid_headers for k, v in headers if k == h and v), "")
        extra: dict[str, tuple[str, ...]] = {}
        for k, v in headers:
            for prefix in rh.extra_prefixes:
                if k.startswith(prefix) and len(k) > len(prefix):
                    key = _unescape(k[len(prefix):])
                    extra[key] = (*extra.get(key, ()), v)
                    break
        return Identity(user, groups, uid, extra)

    def _x509(self, roots: CertPool, chain: Sequence[str], errors: list[str]) -> Identity | None:
        try:
            verified = verify_client_chain(chain, roots)
        except ChainRejected as e:
            errors.append(f"x509: {e} (client-ca-file: {roots.subjects()})")
            return None
        leaf, digest = verified.cert, hashlib.sha256(verified.der).hexdigest()
        return Identity(common_name(leaf), organizations(leaf),
                        extra={"authentication.kubernetes.io/credential-id": (f"X509SHA256={digest}",)})

    async def _bearer(self, headers: list[tuple[str, str]], errors: list[str]) -> Identity | None:
        auth = next((v for k, v in headers if k == "authorization"), "")
        parts = auth.strip().split(" ")
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1] or self.tokens is None:
            return None
        token, reviewer = parts[1], self.tokens
        key = hashlib.sha256(token.encode()).hexdigest()  # never keep or log the token itself

        async def review() -> tuple[Identity | None]:
            return (await reviewer.review_token(token),)

        try:
            (who,) = await self._token_cache.get_or_load(key, review)
        except AdapterError as e:
            errors.append(f"token review failed: {e.message}")
            return None
        if who is None:
            errors.append("invalid bearer token")
        return who


def _unescape(key: str) -> str:
    """``url.PathUnescape``; a malformed key is kept as it came (Go records it anyway)."""
    try:
        return unquote(key, errors="strict")
    except UnicodeDecodeError:
        return key


def _strip(scope: MutableMapping[str, Any], rh: RequestHeaderConfig | None, *, strip_authorization: bool) -> None:
    names = {"x-remote-user", "x-remote-group", "x-remote-uid"}
    prefixes: tuple[str, ...] = ("x-remote-extra-",)
    if rh is not None:
        names |= {*rh.username_headers, *rh.group_headers, *rh.uid_headers}
        prefixes += rh.extra_prefixes
    if strip_authorization:
        names.add("authorization")
    scope["headers"] = [(k, v) for k, v in scope.get("headers") or []
                        if (n := k.decode("latin-1").lower()) not in names and not n.startswith(prefixes)]
