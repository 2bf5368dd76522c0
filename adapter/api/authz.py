"""Delegated authorization, as k8s.io/apiserver's ``DelegatingAuthorizationOptions`` builds it (§5.4).

Union of: the ``system:masters`` group (allow, no SAR); the always-allow paths (non-resource
requests; exact match, or prefix when the pattern ends in ``*``); a SubjectAccessReview whose spec
is built from the RequestInfo (before any path rewriting) and the identity, cached by the spec's
JSON for the allowed / denied TTLs. Denied or no opinion -> 403 ``Forbidden`` with the Go message
(``forbiddenMessage`` + ``NewForbidden``); a failed review -> ``AuthorizationFailed``, a 500
``InternalError`` Status (where Go's filter writes text/plain: every error we serve is a Status).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Protocol

from adapter.api.requestinfo import RequestInfo, sar_attributes
from adapter.cache import QueryCache
from adapter.errors import AdapterError, Forbidden
from adapter.model import Identity
from adapter.ports import AccessDecision, AccessReviews

log = logging.getLogger(__name__)
MAX_CACHEABLE = 10000


class AuthorizationFailed(AdapterError):
    """The SubjectAccessReview could not be made: a 500 ``InternalError`` Status, as ``NewInternalError``
    writes it (the Go filter answers text/plain here; every error we serve is a Status)."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]})


class Authorizer(Protocol):
    async def authorize(self, identity: Identity, info: RequestInfo) -> None:
        """Return when allowed; raise ``Forbidden`` or ``AuthorizationFailed``."""
        ...


class AlwaysAllow:
    """``--authorization-mode AlwaysAllow``: for local use without a cluster."""

    async def authorize(self, identity: Identity, info: RequestInfo) -> None:
        return None


def go_quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``) for the strings found in these messages."""
    out = ['"']
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b",
               "\f": "\\f", "\v": "\\v"}
    for ch in text:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable() and ord(ch) > 0x7F:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _sanitize(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def forbidden_message(user: str, info: RequestInfo) -> str:
    """``responsewriters.forbiddenMessage``."""
    if not info.is_resource_request:
        return f"User {go_quote(user)} cannot {info.verb} path {go_quote(info.path)}"
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    head = f"User {go_quote(user)} cannot {info.verb} resource {go_quote(resource)} in API group " \
           f"{go_quote(info.api_group)}"
    if info.namespace:
        return f"{head} in the namespace {go_quote(info.namespace)}"
    return f"{head} at the cluster scope"


def forbidden(identity: Identity, info: RequestInfo, reason: str = "") -> Forbidden:
    """``responsewriters.Forbidden`` -> ``apierrors.NewForbidden``: message and details as Go writes them."""
    msg = _sanitize(forbidden_message(identity.user, info))
    err = f"{msg}: {reason}" if reason else msg
    group = info.api_group if info.is_resource_request else ""
    resource = info.resource if info.is_resource_request else ""
    name = info.name if info.is_resource_request else ""
    if not group and not resource:
        message = f"forbidden: {err}"
    else:
        qualified = f"{resource}.{group}" if group else resource
        message = f"{qualified} {go_quote(name)} is forbidden: {err}" if name else f"{qualified} is forbidden: {err}"
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", resource)) if v}
    return Forbidden(message, details=details)


def sar_spec(identity: Identity, info: RequestInfo) -> dict[str, object]:
    """``SubjectAccessReviewSpec`` in Go's field order, omitempty."""
    spec: dict[str, object] = dict(sar_attributes(info))
    spec["user"] = identity.user
    if identity.groups:
        spec["groups"] = list(identity.groups)
    if identity.extra:
        spec["extra"] = {k: list(v) for k, v in identity.extra.items()}
    if identity.uid:
        spec["uid"] = identity.uid
    return spec


def _path_allowed(path: str, patterns: Sequence[str]) -> bool:
    return any(path == p or (p.endswith("*") and path.startswith(p[:-1])) for p in patterns)


class DelegatedAuthorizer:
    def __init__(self, reviews: AccessReviews, *, allowed_ttl: float = 10.0, denied_ttl: float = 10.0,
                 always_allow_paths: Sequence[str] = ("/healthz", "/livez", "/readyz"),
                 always_allow_groups: Sequence[str] = ("system:masters",)) -> None:
        self.reviews = reviews
        self.allowed_ttl = allowed_ttl
        self.denied_ttl = denied_ttl
        self.always_allow_paths = tuple(always_allow_paths)
        self.always_allow_groups = frozenset(always_allow_groups)
        self._cache: QueryCache[str, AccessDecision] = QueryCache(ttl=0, max_entries=10000)

    async def authorize(self, identity: Identity, info: RequestInfo) -> None:
        if self.always_allow_groups.intersection(identity.groups):
            return
        if not info.is_resource_request and _path_allowed(info.path, self.always_allow_paths):
            return
        decision = await self._review(sar_spec(identity, info), info)
        if decision.allowed and decision.denied:
            log.warning("subject access review returned both allow and deny")
            raise AuthorizationFailed("webhook subject access review returned both allow and deny response")
        if decision.allowed:
            return
        raise forbidden(identity, info, decision.reason)

    async def _review(self, spec: dict[str, object], info: RequestInfo) -> AccessDecision:
        key = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        cached = self._cache.peek(key)
        if cached is not None:
            return cached
        reviews = self.reviews

        async def load() -> AccessDecision:
            return await reviews.review_access(spec)

        try:
            decision = await self._cache.get_or_load(key, load)  # coalesces identical concurrent reviews
        except AdapterError as e:
            log.warning("subject access review failed: %s", e.message)
            raise AuthorizationFailed("subject access review failed") from e
        size = sum(len(x) for x in (info.namespace, info.verb, info.api_group, info.api_version, info.resource,
                                     info.subresource, info.name, info.path))
        if size <= MAX_CACHEABLE:
            self._cache.put(key, decision, self.allowed_ttl if decision.allowed else self.denied_ttl)
        return decision
