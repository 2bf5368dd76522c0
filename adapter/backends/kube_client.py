"""Blocking JSON access to a Kubernetes API through the ``kubernetes`` client's ApiClient.

The typed API classes deserialise into models; we need raw JSON for arbitrary group-resources and
watch streams, so requests go through ``ApiClient.param_serialize`` / ``call_api`` (the client's own
auth, TLS, proxy and token refresh) and JSON is decoded here. Library errors become ours here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from adapter.backends.cluster import in_cluster
from adapter.errors import ConfigError, NotFound, Unavailable

log = logging.getLogger(__name__)
JSON = dict[str, Any]
# Metadata only (client-go's metadata client): a server that cannot send it falls back to plain JSON.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


class Gone(Unavailable):
    """410: the resourceVersion is too old; relist."""


def api_client(kubeconfig: Path | None) -> kclient.ApiClient:
    """An ApiClient from a kubeconfig file, else from the in-cluster service account."""
    try:
        if kubeconfig is not None:
            api: kclient.ApiClient = kconfig.new_client_from_config(  # type: ignore[no-untyped-call]
                str(kubeconfig), persist_config=False)
            return api
        if in_cluster():
            cfg = kclient.Configuration()
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            return kclient.ApiClient(cfg)
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as e:
        where = kubeconfig or "the pod's service account"
        raise ConfigError(f"cannot load Kubernetes client configuration from {where}: {e}") from e
    raise ConfigError("no Kubernetes configuration: pass --lister-kubeconfig or run in a pod")


def _status_message(e: ApiException) -> str:
    try:
        body = json.loads(e.body or "")
        return str(body.get("message") or e.reason)
    except (ValueError, AttributeError):
        return str(e.reason)


class KubeHTTP:
    """JSON requests and watch streams against one cluster; thread-safe (urllib3 pool)."""

    def __init__(self, api: kclient.ApiClient, *, timeout: float = 10.0) -> None:
        self.api = api
        self.timeout = timeout
        self.host = api.configuration.host
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, query: Mapping[str, str] | None, body: Any,
              timeout: float | tuple[float, float], accept: str = "application/json",
              content_type: str = "application/json") -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            req = self.api.param_serialize(method, path, query_params=list((query or {}).items()),
                                           header_params=headers, body=body, auth_settings=["BearerToken"])
            return self.api.call_api(*req, _request_timeout=timeout)
        except ApiException as e:
            raise self._error(method, path, e) from e
        except (urllib3.exceptions.HTTPError, OSError, OpenApiException) as e:
            raise Unavailable(f"Kubernetes API {method} {path}: {type(e).__name__}: {e}") from e

    def _error(self, method: str, path: str, e: ApiException) -> Exception:
        msg = f"Kubernetes API {method} {path}: {e.status} {_status_message(e)}"
        if e.status == 404:
            return NotFound(msg)
        if e.status == 410:
            return Gone(msg)
        return Unavailable(msg)

    def request(self, method: str, path: str, query: Mapping[str, str] | None = None, body: Any = None,
                timeout: float | None = None, accept: str = "application/json",
                content_type: str = "application/json") -> JSON:
        """``content_type`` of ``body``: e.g. ``application/merge-patch+json`` for a PATCH."""
        resp = self._call(method, path, query, body, timeout or self.timeout, accept, content_type)
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Unavailable(f"Kubernetes API {method} {path}: {type(e).__name__}") from e
        finally:
            resp.response.release_conn()
        if not 200 <= resp.status <= 299:
            exc = ApiException(http_resp=resp)
            raise self._error(method, path, exc)
        try:
            out = json.loads(data)
        except ValueError as e:
            raise Unavailable(f"Kubernetes API {method} {path}: invalid JSON") from e
        if not isinstance(out, dict):
            raise Unavailable(f"Kubernetes API {method} {path}: expected an object")
        return out

    def get(self, path: str, query: Mapping[str, str] | None = None, accept: str = "application/json") -> JSON:
        return self.request("GET", path, query, accept=accept)

    def watch(self, path: str, query: Mapping[str, str], read_timeout: float,
              tracker: set[Any] | None = None, accept: str = "application/json") -> Iterator[JSON]:
        """Events of a watch stream (``{"type":..., "object":...}``) until the server ends it.

        An ``ERROR`` event with code 410 raises ``Gone``; other ``ERROR`` events raise ``Unavailable``.
        """
        resp = self._call("GET", path, {**query, "watch": "1"}, None, (self.timeout, read_timeout), accept)
        raw = resp.response
        opened = self._open if tracker is None else tracker
        with self._lock:
            opened.add(raw)
        try:
            if not 200 <= resp.status <= 299:
                resp.read()
                raise self._error("GET", path, ApiException(http_resp=resp))
            for line in iter_resp_lines(raw):  # type: ignore[no-untyped-call]
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError as e:
                    raise Unavailable(f"watch {path}: invalid JSON event") from e
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    msg = f"watch {path}: {obj.get('code')} {obj.get('message', '')}"
                    raise Gone(msg) if obj.get("code") == 410 else Unavailable(msg)
                yield event
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Unavailable(f"watch {path}: {type(e).__name__}") from e
        finally:
            with self._lock:
                opened.discard(raw)
            raw.release_conn()

    def close(self) -> None:
        """Interrupt the watches and close the connection pool."""
        self.close_streams()
        with contextlib.suppress(Exception):
            self.api.close()  # type: ignore[no-untyped-call]

    def close_streams(self, tracker: set[Any] | None = None) -> None:
        """Interrupt the open watches (all untracked ones, or those of ``tracker``) when stopping."""
        with self._lock:
            streams = list(self._open if tracker is None else tracker)
        for raw in streams:
            with contextlib.suppress(Exception):  # best effort on shutdown
                raw.shutdown()
