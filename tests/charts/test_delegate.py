"""The chart's delegate values: flags the server accepts, the CA bundle and credentials mounted where the
flags point, the RBAC a delegate checks for our service account, and values it refuses."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from adapter.settings import build_parser, from_args

from .test_chart import CI, allowed
from .tools import CHART, NAMESPACE, RELEASE, kinds, one, render, run, template_cmd

KEDA = "https://keda-operator-metrics-apiserver.keda.svc:443"
SA = (NAMESPACE, RELEASE)


def pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objs, "Deployment")["spec"]["template"]["spec"]
    return spec


def args(objs: list[dict[str, Any]]) -> argparse.Namespace:
    return build_parser(argparse.ArgumentParser(exit_on_error=False)).parse_args(pod(objs)["containers"][0]["args"])


def test_no_delegate_by_default() -> None:
    objs = render()
    assert not [a for a in pod(objs)["containers"][0]["args"] if a.startswith("--delegate")]
    assert not [o for o in objs if "delegate" in o["metadata"]["name"]]


def test_delegate_values_become_flags_mounts_and_a_ca_configmap(tmp_path: Path) -> None:
    objs = render((CI["delegate"],))
    parsed = args(objs)
    assert parsed.delegate_external_metrics == KEDA
    assert parsed.delegate_custom_metrics == "https://prometheus-adapter.monitoring.svc:443"
    assert parsed.delegate_ca_file == "/etc/accel-adapter/delegate/ca/ca.crt"
    # our service account's projected token, re-read by the adapter when the kubelet rotates it
    assert parsed.delegate_token_file == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert (parsed.delegate_timeout, parsed.delegate_discovery_interval, parsed.delegate_discovery_max_age) == (
        "10s", "30s", "5m")
    spec = pod(objs)
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert mounts["delegate-ca"] == "/etc/accel-adapter/delegate/ca"
    cm = one(objs, "ConfigMap", f"{RELEASE}-delegate-ca")
    assert vols["delegate-ca"]["configMap"]["name"] == cm["metadata"]["name"]
    assert cm["data"]["ca.crt"].count("-----BEGIN CERTIFICATE-----") == 1
    # a directory mount: a changed bundle reaches the pod without a restart (read at each new connection)
    assert "subPath" not in next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "delegate-ca")
    # the flags pass the server's own validation (files stand in for the mounted ones)
    for name in ("config", "delegate_ca_file", "tls_cert_file", "tls_private_key_file"):
        f = tmp_path / name
        f.write_text("x")
        setattr(parsed, name, str(f))
    token = tmp_path / "token"
    token.write_text("t")
    parsed.delegate_token_file = str(token)
    st = from_args(parsed, env={})
    assert st.delegate_external_metrics == KEDA and st.delegate_discovery_max_age == 300


def test_both_ca_bundles_are_one_file() -> None:
    objs = render((CI["delegate"],), sets=(
        "delegate.custom.caBundle=-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----",))
    assert one(objs, "ConfigMap", f"{RELEASE}-delegate-ca")["data"]["ca.crt"].count("BEGIN CERTIFICATE") == 2


def test_client_certificate_and_ca_secret() -> None:
    objs = render(sets=(f"delegate.external.url={KEDA}", "delegate.auth.mode=clientCert",
                        "delegate.auth.clientCertSecret=adapter-to-keda", "delegate.caSecret.name=keda-ca",
                        "delegate.caSecret.key=ca.pem"))
    parsed = args(objs)
    assert parsed.delegate_client_cert_file == "/etc/accel-adapter/delegate/client/tls.crt"
    assert parsed.delegate_client_key_file == "/etc/accel-adapter/delegate/client/tls.key"
    assert parsed.delegate_token_file is None and parsed.delegate_custom_metrics is None
    assert parsed.delegate_ca_file == "/etc/accel-adapter/delegate/ca/ca.pem"
    vols = {v["name"]: v for v in pod(objs)["volumes"]}
    assert vols["delegate-client"]["secret"]["secretName"] == "adapter-to-keda"
    assert vols["delegate-ca"]["secret"]["secretName"] == "keda-ca"
    assert not [o for o in kinds(objs, "ConfigMap") if "delegate" in o["metadata"]["name"]]


def test_the_delegate_may_authorize_our_service_account_for_the_delegated_groups_only() -> None:
    objs = render(sets=(f"delegate.external.url={KEDA}",))
    assert allowed(objs, SA, "get", "external.metrics.k8s.io", "s0-prometheus-http_requests", "team-a")
    assert not allowed(objs, SA, "get", "custom.metrics.k8s.io", "pods/gpu_util", "team-a")
    objs = render((CI["delegate"],))
    assert allowed(objs, SA, "get", "custom.metrics.k8s.io", "pods/gpu_util", "team-a")
    assert not allowed(render(), SA, "get", "external.metrics.k8s.io", "x", "team-a")
    assert not allowed(render((CI["delegate"],), sets=("rbac.delegateReader=false",)), SA, "get",
                       "external.metrics.k8s.io", "x", "team-a")
    assert one(objs, "ClusterRole", f"{RELEASE}-delegate-reader")  # in rbac/delegate-reader.yaml
    assert (CHART / "templates" / "rbac" / "delegate-reader.yaml").is_file()


@pytest.mark.parametrize(("sets", "message"), [
    (("delegate.external.url=http://keda.keda.svc",), "/delegate/external/url"),
    (("delegate.custom.url=keda.keda.svc:443",), "/delegate/custom/url"),
    ((f"delegate.external.url={KEDA}", "delegate.external.caBundle=not a pem"), "/delegate/external/caBundle"),
    ((f"delegate.external.url={KEDA}", "delegate.auth.mode=token"), "/delegate/auth/mode"),
    ((f"delegate.external.url={KEDA}", "delegate.auth.mode=clientCert"),
     "delegate.auth: mode clientCert needs clientCertSecret"),
    ((f"delegate.external.url={KEDA}", "serviceAccount.automountServiceAccountToken=false"),
     "delegate.auth: mode serviceAccountToken needs serviceAccount.automountServiceAccountToken: true"),
    ((f"delegate.external.url={KEDA}", "delegate.caSecret.name=x",
      "delegate.external.caBundle=-----BEGIN CERTIFICATE-----"), "not both"),
])
def test_refused_values(sets: tuple[str, ...], message: str) -> None:
    r = run(template_cmd(sets=sets))
    assert r.returncode != 0 and message in r.stderr, r.stderr
