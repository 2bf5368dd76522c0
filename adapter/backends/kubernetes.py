"""Kubernetes backend: clients for object resolution, TokenReview, SubjectAccessReview and the
``extension-apiserver-authentication`` ConfigMap. With ``kube_*.py`` the only code importing ``kubernetes``.

Composition root use::

    kube = connect(settings.lister_kubeconfig, settings.authentication_kubeconfig,
                   settings.authorization_kubeconfig)       # None when there is no cluster
    if kube is not None:
        kube.mapper.start()          # first discovery, blocking; raises Unavailable
        ... kube.mapper (ResourceMapper), kube.objects (ObjectResolver), kube.auth (ports.KubeAuth)
        kube.close()                 # at shutdown

Blocking client calls run in a dedicated thread pool (reviews) or in informer threads (watches);
every public method here that touches the network from the request path is ``async``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from adapter.backends.cluster import cluster_configured
from adapter.backends.kube_client import JSON, KubeHTTP, api_client
from adapter.backends.kube_informer import Informer
from adapter.backends.kube_mapper import KubeResourceMapper
from adapter.backends.kube_metricrules import MetricRuleWatcher
from adapter.backends.kube_namespaces import KubeNamespaces
from adapter.backends.kube_objects import KubeObjectResolver
from adapter.errors import NotFound, Unavailable
from adapter.model import Identity
from adapter.ports import AccessDecision

log = logging.getLogger(__name__)
T = TypeVar("T")

AUTH_CONFIGMAP_NAMESPACE = "kube-system"
AUTH_CONFIGMAP_NAME = "extension-apiserver-authentication"
_LIST_KEYS = frozenset({"requestheader-allowed-names", "requestheader-username-headers",
                        "requestheader-group-headers", "requestheader-extra-headers-prefix",
                        "requestheader-uid-headers"})


class _Runner:
    """Blocking calls off the event loop, with a bounded retry for transient failures."""

    def __init__(self, executor: ThreadPoolExecutor, attempts: int = 3, backoff: float = 0.5) -> None:
        self.executor = executor
        self.attempts = attempts
        self.backoff = backoff

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return await loop.run_in_executor(self.executor, fn)
            except NotFound:
                raise
            except Unavailable:
                if attempt == self.attempts:
                    raise
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter
            delay *= 1.5
        raise AssertionError("unreachable")


class TokenReviewer:
    """``ports.TokenReviews`` via ``authentication.k8s.io/v1`` TokenReview."""

    path = "/apis/authentication.k8s.io/v1/tokenreviews"

    def __init__(self, http: KubeHTTP, runner: _Runner) -> None:
        self.http = http
        self.runner = runner

    async def review_token(self, token: str) -> Identity | None:
        body = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                "spec": {"token": token}, "status": {}}
        resp = await self.runner.run(lambda: self.http.request("POST", self.path, body=body))
        status = resp.get("status") or {}
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        extra = {str(k): tuple(str(x) for x in v or ()) for k, v in (user.get("extra") or {}).items()}
        groups = tuple(str(g) for g in user.get("groups") or ())
        return Identity(user=str(user.get("username", "")), groups=groups, uid=str(user.get("uid", "")),
                        extra=extra)


class AccessReviewer:
    """``ports.AccessReviews`` via ``authorization.k8s.io/v1`` SubjectAccessReview."""

    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

    def __init__(self, http: KubeHTTP, runner: _Runner) -> None:
        self.http = http
        self.runner = runner

    async def review_access(self, spec: Mapping[str, object]) -> AccessDecision:
        body = {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                "spec": dict(spec), "status": {"allowed": False}}
        resp = await self.runner.run(lambda: self.http.request("POST", self.path, body=body))
        st = resp.get("status") or {}
        return AccessDecision(allowed=bool(st.get("allowed")), denied=bool(st.get("denied")),
                              reason=str(st.get("reason", "")),
                              evaluation_error=str(st.get("evaluationError", "")))


def decode_auth_configmap(data: Mapping[str, Any]) -> dict[str, str | tuple[str, ...]]:
    """ConfigMap data with the JSON-array string values (``["X-Remote-User"]``) decoded to tuples."""
    out: dict[str, str | tuple[str, ...]] = {}
    for key, value in data.items():
        if key in _LIST_KEYS:
            try:
                items = json.loads(value) if value else []
            except ValueError:
                log.warning("%s/%s: %s is not a JSON array; ignored", AUTH_CONFIGMAP_NAMESPACE,
                            AUTH_CONFIGMAP_NAME, key)
                continue
            out[key] = tuple(str(x) for x in items or ())
        else:
            out[key] = str(value)
    return out


def _keep_data(obj: JSON) -> Mapping[str, str | tuple[str, ...]]:
    return decode_auth_configmap(obj.get("data") or {})


class AuthConfigWatcher:
    """``ports.AuthenticationConfig``: the ConfigMap via a field-selected list+watch, re-read on change."""

    def __init__(self, http: KubeHTTP, *, sync_timeout: float = 10.0) -> None:
        self.http = http
        self.sync_timeout = sync_timeout
        path = f"/api/v1/namespaces/{AUTH_CONFIGMAP_NAMESPACE}/configmaps"
        self.informer: Informer[Mapping[str, str | tuple[str, ...]]] = Informer(
            http, path, _keep_data, query={"fieldSelector": f"metadata.name={AUTH_CONFIGMAP_NAME}"})

    def read_extension_apiserver_authentication(self) -> dict[str, str | tuple[str, ...]] | None:
        """One blocking GET (no cache); None when the ConfigMap does not exist."""
        path = f"/api/v1/namespaces/{AUTH_CONFIGMAP_NAMESPACE}/configmaps/{AUTH_CONFIGMAP_NAME}"
        try:
            return decode_auth_configmap(self.http.get(path).get("data") or {})
        except NotFound:
            return None

    async def authentication_config(self) -> Mapping[str, str | tuple[str, ...]] | None:
        inf = self.informer
        inf.start()
        await inf.wait_synced(self.sync_timeout, f"read {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME}")
        return inf.get(AUTH_CONFIGMAP_NAMESPACE, AUTH_CONFIGMAP_NAME)

    def stop(self) -> None:
        self.informer.stop()


@dataclass
class KubeAuthClients:
    """``ports.KubeAuth``: TokenReview, SubjectAccessReview and the authentication ConfigMap."""

    tokens: TokenReviewer
    access: AccessReviewer
    config: AuthConfigWatcher

    async def review_token(self, token: str) -> Identity | None:
        return await self.tokens.review_token(token)

    async def review_access(self, spec: Mapping[str, object]) -> AccessDecision:
        return await self.access.review_access(spec)

    async def authentication_config(self) -> Mapping[str, str | tuple[str, ...]] | None:
        return await self.config.authentication_config()


@dataclass
class KubeClients:
    lister: KubeHTTP
    others: tuple[KubeHTTP, ...]  # authentication / authorization clients when their kubeconfigs differ
    mapper: KubeResourceMapper
    objects: KubeObjectResolver
    auth: KubeAuthClients
    executor: ThreadPoolExecutor = field(repr=False)
    metric_rules: MetricRuleWatcher | None = None  # started only with --metric-rules
    namespaces: KubeNamespaces | None = None  # tenancy's namespace labels/annotations (started on first use)

    def close(self) -> None:
        if self.metric_rules is not None:
            self.metric_rules.stop()
        self.mapper.stop()
        self.objects.stop()
        if self.namespaces is not None:
            self.namespaces.stop()
        self.auth.config.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for http in (self.lister, *self.others):
            http.close()


def connect(lister_kubeconfig: Path | None, authentication_kubeconfig: Path | None = None,
            authorization_kubeconfig: Path | None = None, *, timeout: float = 10.0,
            discovery_refresh: float = 300.0, resync: float = 600.0) -> KubeClients | None:
    """Build the clients; None when no cluster is configured (no kubeconfig, not in a pod).

    The authentication/authorization kubeconfigs default to the lister's. No network I/O here.
    Raises ``ConfigError`` when a kubeconfig cannot be loaded.
    """
    if not cluster_configured(lister_kubeconfig):
        return None
    lister = KubeHTTP(api_client(lister_kubeconfig), timeout=timeout)
    authn = KubeHTTP(api_client(authentication_kubeconfig), timeout=timeout) if authentication_kubeconfig \
        else lister
    authz = KubeHTTP(api_client(authorization_kubeconfig), timeout=timeout) if authorization_kubeconfig \
        else lister
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="kube-review")
    runner = _Runner(executor)
    auth = KubeAuthClients(TokenReviewer(authn, runner), AccessReviewer(authz, runner),
                           AuthConfigWatcher(lister))
    mapper = KubeResourceMapper(lister, refresh=discovery_refresh)
    objects = KubeObjectResolver(lister, resync=resync)
    log.info("Kubernetes API: %s (objects from list+watch caches)", lister.host)
    others = tuple(h for h in (authn, authz) if h is not lister)
    return KubeClients(lister, others, mapper, objects, auth, executor,
                       metric_rules=MetricRuleWatcher(lister, resync=resync),
                       namespaces=KubeNamespaces(lister, resync=resync))
