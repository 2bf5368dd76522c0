"""A fake Kubernetes API served over real HTTPS on 127.0.0.1, for use through the real ``kubernetes`` client.

    with FakeKube(tmp_path) as fk:
        fk.kubeconfig            # a kubeconfig file (CA generated here, bearer token auth)
        fk.add_pod("ns1", "p1", {"app": "a"})
        fk.state.recorded("GET", "/api/v1/namespaces/ns1/pods")   # what the client sent
        fk.state.open_watches    # WATCH responses streaming now (peak_watches: the most at once)
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from adapter.certs import create_ca, issue
from tests.fakekube.app import FakeKubeState, Recorded, build_app
from tests.fakekube.store import DEFAULT_RESOURCES, ResourceDef, Store
from tests.support.procs import free_port, uvicorn_in_thread

__all__ = ["DEFAULT_RESOURCES", "FakeKube", "FakeKubeState", "Recorded", "ResourceDef", "Store"]


class FakeKube:
    def __init__(self, workdir: Path, *, token: str = "adapter-token") -> None:
        self.workdir = workdir
        self.token = token
        self.state = FakeKubeState(tokens={token})
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = create_ca("fake-kube-ca")
        self._serving: contextlib.AbstractContextManager[Any] | None = None
        self.kubeconfig = workdir / "fake-kubeconfig.yaml"

    @property
    def store(self) -> Store:
        return self.state.store

    def __enter__(self) -> FakeKube:
        self.workdir.mkdir(parents=True, exist_ok=True)
        leaf = issue(self.ca, "fake-kube", dns_names=("localhost",), ips=("127.0.0.1",), server=True)
        cert, key, ca = self.workdir / "fk.crt", self.workdir / "fk.key", self.workdir / "fk-ca.crt"
        leaf.write(cert, key)
        ca.write_bytes(self.ca.cert_pem)
        self.write_kubeconfig(self.kubeconfig, self.token)
        config = uvicorn.Config(build_app(self.state), host="127.0.0.1", port=self.port,
                                ssl_certfile=str(cert), ssl_keyfile=str(key), log_level="critical",
                                lifespan="off", timeout_graceful_shutdown=1)
        self._serving = uvicorn_in_thread(config, "fakekube", start_timeout=10)
        self._serving.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.state.closing = True
        self.store.bump()
        if self._serving is not None:
            self._serving.__exit__(et, e, tb)

    def write_kubeconfig(self, path: Path, token: str) -> Path:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {
                "server": self.url, "certificate-authority": str(self.workdir / "fk-ca.crt")}}],
            "users": [{"name": "adapter", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "adapter"}}],
        }
        path.write_text(json.dumps(cfg))
        return path

    # --- convenience mutations ------------------------------------------------------------------------
    def add_pod(self, namespace: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.store.put("", "pods", {"metadata": {"name": name, "namespace": namespace,
                                                        "labels": labels or {}},
                                           "spec": {"containers": [{"name": "c", "image": "pause"}]},
                                           "status": {"phase": "Running"}})

    def relabel_pod(self, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        obj = self.store.get("", "pods", namespace, name)
        assert obj is not None
        obj["metadata"]["labels"] = labels
        return self.store.put("", "pods", obj)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.store.delete("", "pods", namespace, name)

    def put_metricrule(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Create or update a MetricRule (accel-metrics.io/v1alpha1) as ``kubectl apply`` would."""
        return self.store.put_spec("accel-metrics.io", "metricrules", {
            "apiVersion": "accel-metrics.io/v1alpha1", "kind": "MetricRule",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec})

    def metricrule(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get("accel-metrics.io", "metricrules", namespace, name)

    def delete_metricrule(self, namespace: str, name: str) -> None:
        self.store.delete("accel-metrics.io", "metricrules", namespace, name)

    def put_namespace(self, name: str, labels: dict[str, str] | None = None,
                      annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """Create or replace a Namespace (the store adds what kube-apiserver adds, e.g. the
        ``kubernetes.io/metadata.name`` label)."""
        meta: dict[str, Any] = {"name": name, "labels": labels or {}}
        if annotations:
            meta["annotations"] = annotations
        return self.store.put("", "namespaces", {"metadata": meta})

    def set_auth_configmap(self, data: dict[str, str]) -> dict[str, Any]:
        return self.store.put("", "configmaps", {"metadata": {"name": "extension-apiserver-authentication",
                                                              "namespace": "kube-system"}, "data": data})

    def list_calls(self, path: str) -> list[Recorded]:
        return self.state.recorded("GET", path, watch=False)

    def watch_calls(self, path: str) -> list[Recorded]:
        return self.state.recorded("GET", path, watch=True)
