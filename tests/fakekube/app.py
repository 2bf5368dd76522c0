"""The fake Kubernetes API as a Starlette app: discovery, list/get/watch, TokenReview, SubjectAccessReview.

JSON shapes follow the real API (kind/apiVersion/metadata.resourceVersion/items; watch streams of
newline-delimited ``{"type": ..., "object": ...}``; errors as ``metav1.Status``). Every request is
recorded before anything else happens.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from adapter.api.requestinfo import parse_label_selector
from adapter.model import Requirement, Selector
from tests.fakekube.store import Event, Obj, ResourceDef, Store

SarRule = Callable[[dict[str, Any]], tuple[bool, bool, str]]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: bool  # whether an Authorization header was present (never its value)
    accept: str = ""

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch", [""])[0] in ("1", "true")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def selector_of(text: str) -> Selector:
    parsed = parse_label_selector(text)
    reqs = tuple(Requirement(k, "=" if op == "==" else op, tuple(v)) for k, op, v in parsed)
    return Selector(reqs, text)


@dataclass
class FakeKubeState:
    store: Store = field(default_factory=Store)
    tokens: set[str] = field(default_factory=lambda: {"adapter-token"})
    # TokenReview: token -> user info ({"username":..., "uid":..., "groups":[...], "extra":{...}})
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    sar_rule: SarRule = field(default=lambda spec: (False, False, ""))
    fail_status: dict[str, int] = field(default_factory=dict)  # path -> HTTP status to answer instead
    # API group -> (backend URL, TLS context with the front-proxy client cert): proxied as the aggregator does
    aggregated: dict[str, tuple[str, ssl.SSLContext]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    on_request: Callable[[Recorded], None] | None = None  # called after recording, before answering
    watch_generation: int = 0
    closing: bool = False
    open_watches: int = 0  # WATCH responses being streamed now
    peak_watches: int = 0  # the most ever streamed at once
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch_opened(self) -> None:
        with self._lock:
            self.open_watches += 1
            self.peak_watches = max(self.peak_watches, self.open_watches)

    def watch_closed(self) -> None:
        with self._lock:
            self.open_watches -= 1

    def record(self, r: Recorded) -> None:
        with self._lock:
            self.requests.append(r)

    def recorded(self, method: str | None = None, path: str | None = None,
                 watch: bool | None = None) -> list[Recorded]:
        with self._lock:
            reqs = list(self.requests)
        return [r for r in reqs if (method is None or r.method == method) and (path is None or r.path == path)
                and (watch is None or r.is_watch == watch)]

    def sars(self) -> list[dict[str, Any]]:
        """The ``spec`` of every SubjectAccessReview received, in order."""
        reqs = self.recorded("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews")
        return [r.body["spec"] for r in reqs]

    def drop_watches(self) -> None:
        """End every open watch stream now (as an apiserver restart or a load balancer would)."""
        self.watch_generation += 1
        self.store.bump()


def _discovery(st: Store, group: str, version: str) -> dict[str, Any]:
    res = []
    for r in st.resources:
        if (r.group, r.version) != (group, version):
            continue
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        res.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


def _groups(st: Store) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for r in st.resources:
        if r.group:
            gv = {"groupVersion": r.group_version, "version": r.version}
            g = out.setdefault(r.group, {"name": r.group, "versions": [], "preferredVersion": gv})
            if gv not in g["versions"]:
                g["versions"].append(gv)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(out.values())}


def build_app(state: FakeKubeState) -> Starlette:
    st = state.store

    async def handle(request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        path = unquote(raw_path.split("?")[0])
        query = parse_qs(request.url.query, keep_blank_values=True)
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            body = json.loads(raw) if raw else None
        rec = Recorded(request.method, path, query, body, "authorization" in request.headers,
                       request.headers.get("accept", ""))
        state.record(rec)
        if state.on_request is not None:
            state.on_request(rec)
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in state.tokens:
            return JSONResponse(status(401, "Unauthorized", "Unauthorized"), 401)
        parts = path.split("/")
        if request.method == "GET" and len(parts) > 2 and parts[1] == "apis" and parts[2] in state.aggregated:
            return await _proxy(state, request, raw_path)
        if path in state.fail_status:
            code = state.fail_status[path]
            return JSONResponse(status(code, "InternalError", "injected failure"), code)
        if path == "/version":
            return JSONResponse({"major": "1", "minor": "35", "gitVersion": "v1.35.0-fake", "platform": "linux/amd64"})
        if path == "/api":
            return JSONResponse({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
        if path == "/apis":
            return JSONResponse(_groups(st))
        if request.method == "POST" and path == "/apis/authentication.k8s.io/v1/tokenreviews":
            return JSONResponse(_token_review(state, body), 201)
        if request.method == "POST" and path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
            allowed, denied, reason = state.sar_rule(body["spec"])
            result: dict[str, Any] = {"allowed": allowed}
            if denied:
                result["denied"] = True
            if reason:
                result["reason"] = reason
            return JSONResponse({**body, "status": result}, 201)
        return _resource(request, path, query, body)

    def _resource(request: Request, path: str, query: dict[str, list[str]], body: Any = None) -> Response:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return _not_found()
        if not rest:
            if not any((r.group, r.version) == (group, version) for r in st.resources):
                return _not_found()
            return JSONResponse(_discovery(st, group, version))
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rdef = st.find(group, version, rest[0])
        if rdef is not None and request.method == "PATCH" and len(rest) == 3 and rest[2] == "status" \
                and st.find(group, version, f"{rdef.plural}/status") is not None:
            return _patch_status(rdef, namespace, rest[1], request.headers.get("content-type", ""), body)
        if rdef is None or request.method != "GET":
            return _not_found()
        if len(rest) == 3 and rest[2] == "scale" and st.find(group, version, f"{rdef.plural}/scale"):
            obj = st.get(group, rdef.plural, namespace, rest[1])
            if obj is None:
                return JSONResponse(status(404, "NotFound", f'{rdef.plural}.{group} "{rest[1]}" not found'), 404)
            return JSONResponse(_scale(obj))
        if len(rest) == 2:
            obj = st.get(group, rdef.plural, namespace, rest[1])
            if obj is None:
                msg = f'{rdef.plural} "{rest[1]}" not found'
                return JSONResponse(status(404, "NotFound", msg), 404)
            return JSONResponse({"kind": rdef.kind, "apiVersion": rdef.group_version, **obj})
        sel = selector_of(query.get("labelSelector", [""])[0])
        field_name = _field_name(query.get("fieldSelector", [""])[0])
        watching = query.get("watch", [""])[0] in ("1", "true")
        partial = _negotiate(request.headers.get("accept", ""), "PartialObjectMetadata" if watching
                             else "PartialObjectMetadataList")
        if partial is None:
            return JSONResponse(status(406, "NotAcceptable", "only the following media types are accepted: "
                                       "application/json"), 406)
        if watching:
            stream = _watch(rdef, namespace, sel, field_name, query, partial)
            return StreamingResponse(stream, media_type="application/json")
        return _list(rdef, namespace, sel, field_name, query, partial)

    def _patch_status(rdef: ResourceDef, namespace: str, name: str, content_type: str, body: Any) -> Response:
        """PATCH of the status subresource: merge patch only (a custom resource has no strategic merge)."""
        if content_type.split(";", maxsplit=1)[0].strip() != "application/merge-patch+json":
            return JSONResponse(status(415, "UnsupportedMediaType",
                                       f"the body of the request was in an unknown format - accepted media types "
                                       f"include: application/json-patch+json, application/merge-patch+json, "
                                       f"application/apply-patch+yaml (got {content_type!r})"), 415)
        if not isinstance(body, dict):
            return JSONResponse(status(400, "BadRequest", "the patch is not a JSON object"), 400)
        obj = st.patch_status(rdef.group, rdef.plural, namespace, name, body)
        if obj is None:
            return JSONResponse(status(404, "NotFound", f'{rdef.plural}.{rdef.group} "{name}" not found'), 404)
        return JSONResponse({"kind": rdef.kind, "apiVersion": rdef.group_version, **obj})

    def _list(rdef: ResourceDef, namespace: str, sel: Selector, field_name: str,
              query: dict[str, list[str]], partial: bool) -> Response:
        """LIST, paged as kube-apiserver pages from etcd: ``limit`` matching items per page, and a
        ``continue`` token that reads the rest of the same snapshot (410 once that is compacted)."""
        token = query.get("continue", [""])[0]
        at, after = None, None
        if token:
            try:
                cont = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                at, after = int(cont["rv"]), (str(cont["ns"]), str(cont["name"]))
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                return JSONResponse(status(400, "BadRequest", f"continue key is not valid: {e}"), 400)
        limit = int(query.get("limit", ["0"])[0] or 0)
        page = st.page(rdef.group, rdef.plural, namespace, lambda o: _matches(o, sel, field_name), limit=limit,
                       after=after, at=at)
        if page is None:
            msg = "The provided continue parameter is too old to display a consistent list result."
            return JSONResponse(status(410, "Expired", msg), 410)
        items, rv, left = page
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if left:
            ns, name = _key(items[-1])
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "ns": ns, "name": name}).encode()).decode().rstrip("=")
            if not sel.requirements and not field_name:
                meta["remainingItemCount"] = left
        if partial:
            return JSONResponse({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": meta, "items": [_partial(o) for o in items]})
        return JSONResponse({"kind": f"{rdef.kind}List", "apiVersion": rdef.group_version,
                             "metadata": meta, "items": items})

    async def _watch(rdef: ResourceDef, namespace: str, sel: Selector, field_name: str,
                     query: dict[str, list[str]], partial: bool) -> AsyncIterator[bytes]:
        gen = state.watch_generation
        deadline = time.monotonic() + float(query.get("timeoutSeconds", ["300"])[0] or 300)
        bookmarks = query.get("allowWatchBookmarks", [""])[0] == "true"
        start = query.get("resourceVersion", [""])[0]
        wake = st.waiter()
        state.watch_opened()

        def line(kind: str, obj: Obj) -> bytes:
            out = _partial(obj) if partial else {"kind": rdef.kind, "apiVersion": rdef.group_version, **obj}
            return (json.dumps({"type": kind, "object": out}) + "\n").encode()

        try:
            compacted = st.compacted
            if start in ("", "0"):
                items, rv = st.list(rdef.group, rdef.plural, namespace)
                for o in items:
                    if _matches(o, sel, field_name):
                        yield line("ADDED", o)
            else:
                rv = int(start)
            last_bookmark = rv
            while not state.closing and state.watch_generation == gen and time.monotonic() < deadline:
                wake.clear()
                events = st.events_since(rdef.group, rdef.plural, rv)
                if events is None or st.compacted != compacted:  # compaction also ends open watches
                    msg = f"too old resource version: {rv} ({st.compacted})"
                    err = status(410, "Expired", msg)
                    yield (json.dumps({"type": "ERROR", "object": err}) + "\n").encode()
                    return
                for e in events:
                    rv = e.rv
                    out = _translate(e, namespace, sel, field_name)
                    if out is not None:
                        yield line(out, e.obj)
                now_rv = st.resource_version
                if bookmarks and now_rv > last_bookmark and not events:
                    last_bookmark = now_rv
                    yield line("BOOKMARK", {"metadata": {"resourceVersion": str(now_rv)}})
                    rv = max(rv, now_rv)
                with contextlib.suppress(TimeoutError):
                    pause = min(0.5, max(0.01, deadline - time.monotonic()))
                    await asyncio.wait_for(wake.wait(), timeout=pause)
        finally:
            st.unwait(wake)
            state.watch_closed()

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])


def _scale(obj: Obj) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale of a Deployment/StatefulSet, as the scale subresource returns it."""
    meta = obj["metadata"]
    labels = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}}


async def _proxy(state: FakeKubeState, request: Request, raw_path: str) -> Response:
    """Forward to an aggregated API server as kube-aggregator does: front-proxy client certificate and
    the caller's identity in X-Remote-User / X-Remote-Group (from the TokenReview users map)."""
    url, ctx = state.aggregated[raw_path.split("/")[2]]
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    user = state.users.get(token) or {"username": "kubernetes-admin", "groups": ["system:masters"]}
    headers = [("X-Remote-User", str(user["username"]))]
    headers += [("X-Remote-Group", g) for g in [*user.get("groups", []), "system:authenticated"]]
    query = request.url.query
    async with httpx.AsyncClient(verify=ctx, timeout=30) as client:
        r = await client.get(url + raw_path + (f"?{query}" if query else ""), headers=headers)
    return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))


def _negotiate(accept: str, partial_kind: str) -> bool | None:
    """Whether the first media type of ``accept`` this API can serve asks for ``partial_kind``
    (``PartialObjectMetadata[List]`` of meta.k8s.io/v1, client-go's metadata client); None: none can be."""
    for item in (accept or "application/json").split(","):
        mime, *params = (p.strip() for p in item.split(";"))
        args = dict(p.partition("=")[::2] for p in params)
        if mime not in ("application/json", "application/*", "*/*"):
            continue
        if "as" not in args:
            return False
        if (args["as"], args.get("g"), args.get("v")) == (partial_kind, "meta.k8s.io", "v1"):
            return True
    return None


def _partial(o: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}


def _not_found() -> Response:
    return JSONResponse(status(404, "NotFound", "the server could not find the requested resource"), 404)


def _key(o: Obj) -> tuple[str, str]:
    return (o["metadata"].get("namespace", ""), o["metadata"]["name"])


def _field_name(text: str) -> str:
    for term in text.split(","):
        k, _, v = term.partition("=")
        if k == "metadata.name":
            return v.lstrip("=")
    return ""


def _matches(o: Obj, sel: Selector, field_name: str) -> bool:
    meta = o["metadata"]
    return sel.matches(meta.get("labels") or {}) and (not field_name or meta["name"] == field_name)


def _translate(e: Event, namespace: str, sel: Selector, field_name: str) -> str | None:
    """Event type a filtered watch shows, from the object before and after the event (as the real
    watch cache filters): objects leaving the filter are DELETED, entering it ADDED."""
    if namespace and _key(e.obj)[0] != namespace:
        return None
    was = e.prev is not None and _matches(e.prev, sel, field_name)
    now = e.type != "DELETED" and _matches(e.obj, sel, field_name)
    if now:
        return "MODIFIED" if was else "ADDED"
    return "DELETED" if was else None


def _token_review(state: FakeKubeState, body: dict[str, Any]) -> dict[str, Any]:
    user = state.users.get(body.get("spec", {}).get("token", ""))
    review_status: dict[str, Any] = {"authenticated": True, "user": user} if user else {
        "authenticated": False, "error": "token not recognised"}
    return {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
            "spec": body.get("spec", {}), "status": review_status}
