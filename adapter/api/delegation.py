"""HTTP side of delegation (``adapter.provider.delegation``): forwarding one request and merging a
delegate's discovery resource list into ours.

Forwarding sends the request's path (as received, still percent-encoded) and query string, nothing
else of the caller's request; the caller was authorized by ``SecurityMiddleware`` before any handler
runs, so a denied caller never reaches a delegate. The answer is passed through unchanged.

Merging: our entries first and unchanged; a delegate entry whose name we list too is left out (ours
win; logged once per name), and so is a custom entry whose parent resource we list with the other
scope (a parent listed both namespaced and cluster-scoped makes the aggregator drop the whole group
version). Our placeholder entry (``custommetrics`` / ``externalmetrics``, listed only so the list is
never empty) is dropped when the delegate contributes entries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from adapter.api.discovery import _resource as resource_entry
from adapter.errors import NotFound
from adapter.naming.validation import path_segment_problems
from adapter.provider.delegation import Delegate

log = logging.getLogger(__name__)


def path_and_query(request: Request) -> str:
    """The request's path as received and its query string. Only when every decoded segment is a plain
    path segment: the delegate decodes the path as we did, and must not resolve a ``..`` (``%2E%2E``)
    we authorized as a resource name into another namespace's metric."""
    if any(path_segment_problems(seg) for seg in request.scope["path"].split("/")[1:]):
        raise NotFound("the server could not find the requested resource")
    raw = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    path = raw.split(b"?", 1)[0].decode("latin-1")
    qs = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{qs}" if qs else path


async def forward(delegate: Delegate, request: Request) -> Response:
    answer = await delegate.forward(path_and_query(request))
    return Response(answer.body, status_code=answer.status, headers={"Content-Type": answer.content_type})


class Merger:
    """Merges one group's resource lists; remembers which left-out names were already logged."""

    def __init__(self) -> None:
        self._logged: set[str] = set()

    def _once(self, name: str, why: str, delegate: Delegate) -> None:
        if name not in self._logged:
            self._logged.add(name)
            log.warning("delegate resource left out of discovery: %s", why,
                        extra={"resource": name, "delegate": delegate.url, "group": delegate.group})

    def merge(self, doc: dict[str, object], ours_empty: bool, delegate: Delegate, version: str,
              kind: str) -> dict[str, object]:
        theirs: Sequence[tuple[str, bool]] = delegate.resources(version)
        if not theirs:
            return doc
        ours = doc["resources"]
        assert isinstance(ours, list)
        resources: list[dict[str, object]] = [] if ours_empty else list(ours)
        names = {str(r["name"]) for r in resources}
        scopes: dict[str, set[bool]] = {}
        for r in resources:
            scopes.setdefault(str(r["name"]).split("/")[0], set()).add(bool(r["namespaced"]))
        for name, namespaced in theirs:
            parent = name.split("/")[0]
            if name in names:
                self._once(name, "we serve a metric of that name (ours win)", delegate)
                continue
            if "/" in name and parent in scopes and namespaced not in scopes[parent]:
                self._once(name, "we list its resource with the other scope", delegate)
                continue
            resources.append(resource_entry(name, namespaced, kind))
            names.add(name)
            scopes.setdefault(parent, set()).add(namespaced)
        if not resources:
            return doc
        return {**doc, "resources": resources}
