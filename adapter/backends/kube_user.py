"""The user's own Kubernetes access for ``kubectl accel``: their kubeconfig, context and RBAC.

Everything the plugin reads (the HPA, the scale subresource, pods, explanations) goes through the
cluster's API server with the user's credentials, as ``kubectl`` does; nothing is read with the
adapter's identity. JSON in, JSON out; library errors become ours (``adapter.backends.kube_client``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.config.config_exception import ConfigException

from adapter.backends.cluster import in_cluster
from adapter.backends.kube_client import KubeHTTP
from adapter.errors import ConfigError


def default_kubeconfig() -> Path | None:
    """``$KUBECONFIG`` (its first existing file) or ``~/.kube/config``, as kubectl finds it."""
    for part in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if part and Path(part).is_file():
            return Path(part)
    home = Path.home() / ".kube" / "config"
    return home if home.is_file() else None


class UserKube:
    """GET JSON as the user (``get`` raises ``NotFound`` / ``Unavailable`` with the API's message)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, timeout: float = 30.0) -> None:
        path = Path(kubeconfig) if kubeconfig else default_kubeconfig()
        try:
            if path is not None:
                api: kclient.ApiClient = kconfig.new_client_from_config(  # type: ignore[no-untyped-call]
                    str(path), context=context, persist_config=False)
            elif in_cluster():
                cfg = kclient.Configuration()
                kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                api = kclient.ApiClient(cfg)
            else:
                raise ConfigError("no kubeconfig: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config")
        except (ConfigException, OSError, ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot load kubeconfig {path}: {e}") from e
        self.http = KubeHTTP(api, timeout=timeout)
        self.namespace = _context_namespace(path, context) if path is not None else "default"

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.http.get(path, query)

    def close(self) -> None:
        self.http.close()


def _context_namespace(path: Path, context: str | None) -> str:
    """The namespace of the kubeconfig's (current) context, as ``kubectl`` defaults ``-n``."""
    try:
        contexts, current = kconfig.list_kube_config_contexts(str(path))  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError, yaml.YAMLError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), current) if context else current
    ns = ((chosen or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else "default"
