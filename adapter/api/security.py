"""Authentication + authorization of every HTTP request, and their construction from settings.

Wiring (composition root)::

    kube = connect(...)                                   # adapter.backends.kubernetes, or None
    authn, authz = build_security(settings, kube.auth if kube else None)
    ca_pems = await authn.trust_bundle()                  # flags and/or the ConfigMap; raises on failure
    ctx = build_server_ssl_context(cert_file, key_file, ca_pems)     # adapter.api.tlsproto
    authn.attach_ssl_context(ctx)                         # certificates requested once CAs are known
    app = SecurityMiddleware(fastapi_app, authn, authz)
    uvicorn.Config(app, http=tls_protocol_class(), ssl_context_factory=lambda cfg, default: ctx, ...)

The middleware parses RequestInfo from the raw path (``%2A`` decoded) BEFORE any routing or
rewriting, authenticates (401 Status on bad credentials), refuses a path with an empty segment
(``a//b``: 404 Status, before authorization, as it would be authorized as one thing and served as
another), authorizes (403 Status with the Go
message; a 500 InternalError Status when the SubjectAccessReview fails), and stores the ``Identity`` in
``scope["state"]["identity"]``. Health paths pass for anonymous kubelet probes (always-allow paths).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from adapter.api.authn import Authenticator, AuthnConfig, RequestHeaderConfig
from adapter.api.authz import AlwaysAllow, Authorizer, DelegatedAuthorizer
from adapter.api.requestinfo import has_empty_segment, request_info
from adapter.api.status import status_response
from adapter.errors import AdapterError, ConfigError, NotFound
from adapter.model import Identity
from adapter.ports import KubeAuth
from adapter.settings import Settings

log = logging.getLogger(__name__)


class Authenticates(Protocol):
    async def authenticate(self, scope: MutableMapping[str, Any]) -> Identity: ...


class SecurityMiddleware:
    """Pure ASGI middleware; non-HTTP scopes (lifespan) pass through untouched."""

    def __init__(self, app: ASGIApp, authenticator: Authenticates, authorizer: Authorizer) -> None:
        self.app = app
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        info = request_info(scope["method"], raw_path.split(b"?", 1)[0], scope.get("query_string", b""))
        try:
            identity = await self.authenticator.authenticate(scope)
            if has_empty_segment(info.path):
                raise NotFound("the server could not find the requested resource")
            await self.authorizer.authorize(identity, info)
        except AdapterError as e:
            await status_response(e)(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


def _read_pem(path: Path | None, flag: str) -> bytes:
    if path is None:
        return b""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{flag}: cannot read {str(path)!r}: {e.strerror}") from e
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(f"{flag}: {str(path)!r} holds no PEM certificate")
    return data


def static_authn_config(settings: Settings) -> AuthnConfig:
    """The parts of the authentication config given by flags."""
    rh = None
    rh_pem = _read_pem(settings.requestheader_client_ca_file, "--requestheader-client-ca-file")
    try:
        if rh_pem:
            rh = RequestHeaderConfig(
                rh_pem, settings.requestheader_allowed_names,
                settings.requestheader_username_headers or ("x-remote-user",),
                settings.requestheader_group_headers or ("x-remote-group",),
                settings.requestheader_extra_headers_prefix or ("x-remote-extra-",))
        return AuthnConfig(rh, _read_pem(settings.client_ca_file, "--client-ca-file"))
    except ValueError as e:
        raise ConfigError(f"--requestheader-client-ca-file / --client-ca-file: bad certificate: {e}") from e


def build_security(settings: Settings, kube: KubeAuth | None) -> tuple[Authenticator, Authorizer]:
    """(authenticator, authorizer) for ``SecurityMiddleware``.

    ``kube`` is ``KubeClients.auth`` from ``adapter.backends.kubernetes.connect`` (None without a
    cluster). Without a cluster only flag-given CAs authenticate, tokens are not reviewed, and
    ``--authorization-mode Delegated`` is a ``ConfigError``.
    """
    static = static_authn_config(settings)
    lookup = kube is not None and not settings.authentication_skip_lookup
    authenticator = Authenticator(
        static, source=kube, lookup_requestheader=lookup and settings.requestheader_client_ca_file is None,
        lookup_client_ca=lookup and settings.client_ca_file is None, tokens=kube,
        token_ttl=settings.authentication_token_webhook_cache_ttl)
    authorizer: Authorizer
    if settings.authorization_mode == "AlwaysAllow":
        log.warning("--authorization-mode AlwaysAllow: every authenticated or anonymous caller is allowed")
        authorizer = AlwaysAllow()
    elif settings.authorization_mode == "Delegated":
        if kube is None:
            raise ConfigError("--authorization-mode Delegated needs a Kubernetes API for SubjectAccessReviews: "
                              "pass --authorization-mode AlwaysAllow for local use, or --lister-kubeconfig "
                              "(or run in a pod)")
        authorizer = DelegatedAuthorizer(
            kube, allowed_ttl=settings.authorization_webhook_cache_authorized_ttl,
            denied_ttl=settings.authorization_webhook_cache_unauthorized_ttl,
            always_allow_paths=settings.authorization_always_allow_paths)
    else:
        raise ConfigError(f"--authorization-mode: must be Delegated or AlwaysAllow, got "
                          f"{settings.authorization_mode!r}")
    return authenticator, authorizer
