"""Certificates that GitOps tools can live with, rendered by the real helm.

Without a cluster (helm template, helm install --dry-run, Argo CD, Flux) tls.mode=generate refuses,
since each render would make a new CA. With a cluster, helm's ``lookup`` is served by the fake
Kubernetes API (``helm template --dry-run=server``): the Secret is reused until it nears expiry,
then rotated with the previous CA kept in the caBundle, and the overlap is checked with real TLS
handshakes against the server's certificate reloader.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from adapter.certs import KeyPair
from tests.fakekube import DEFAULT_RESOURCES, FakeKube, ResourceDef, Store
from tests.fakekube.app import FakeKubeState
from tests.support import x509build
from tests.support.servingtls import handshake, serving

from .tools import CHART, CI_VALUES, NAMESPACE, RELEASE, helm, kinds, one, run, template_cmd

SVC = RELEASE
SERVER_NAME = f"{SVC}.{NAMESPACE}.svc"  # what the aggregator verifies
SECRET = f"{SVC}-tls"
NOT_AFTER = "accel-metrics.io/tls-not-after"
CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
GITOPS_MODES = ("tls.mode=certManager", "tls.mode=existingSecret")

# Every kind the chart renders must be known to the API for a server-side dry run.
CHART_RESOURCES = DEFAULT_RESOURCES + (
    ResourceDef("", "v1", "secrets", "Secret", "secret", True),
    ResourceDef("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", True),
    ResourceDef("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "networkpolicy", True),
    ResourceDef("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", "poddisruptionbudget", True),
    ResourceDef("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", "clusterrole", False),
    ResourceDef("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
                "clusterrolebinding", False),
    ResourceDef("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", "rolebinding", True),
    ResourceDef("apiregistration.k8s.io", "v1", "apiservices", "APIService", "apiservice", False),
    ResourceDef("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor", "servicemonitor", True),
)


# ---- without a cluster -----------------------------------------------------------------------------

def test_generate_refuses_helm_template_and_names_the_gitops_modes() -> None:
    r = run(template_cmd(allow_offline_generate=False))
    assert r.returncode != 0
    message = r.stderr
    assert "tls.mode=generate needs the cluster at render time" in message
    for mode in ("tls.mode=certManager", "tls.mode=existingSecret", "tls.generate.allowTemplate=true",
                 "--dry-run=server"):
        assert mode in message, message
    assert r.stdout == ""


def test_generate_refuses_a_client_dry_run_install() -> None:
    r = run([helm(), "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE])
    assert r.returncode != 0 and "tls.mode=generate needs the cluster" in r.stderr


def test_allow_template_renders_with_a_warning() -> None:
    r = run(template_cmd(allow_offline_generate=True))
    assert r.returncode == 0, r.stderr
    assert "# WARNING: rendered without a cluster (tls.generate.allowTemplate=true)" in r.stdout
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert one(objs, "Secret", SECRET)["data"]["ca.crt"]
    notes = run([helm(), "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
                 "--set", "tls.generate.allowTemplate=true"])
    assert notes.returncode == 0, notes.stderr
    assert "WARNING: tls.mode=generate rendered without a cluster" in notes.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("values", [CI["cert-manager"], CI["existing-secret"]], ids=lambda p: p.name)
def test_gitops_modes_render_byte_identical_twice_without_a_cluster(values: Path) -> None:
    first, second = (run(template_cmd(values=(values,), allow_offline_generate=False)) for _ in range(2))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "WARNING" not in first.stdout


def test_renew_before_must_be_shorter_than_validity() -> None:
    r = run(template_cmd(sets=("tls.generate.validityDays=30", "tls.generate.renewBeforeDays=30")))
    assert r.returncode != 0 and "tls.generate.renewBeforeDays (30) must be less than" in r.stderr


# ---- with a cluster: helm's lookup answered by the fake API --------------------------------------

@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKube]:
    fk = FakeKube(tmp_path / "kube")
    fk.state = FakeKubeState(store=Store(CHART_RESOURCES), tokens={fk.token})
    with fk:
        # kube-system only: the release namespace may not exist yet (helm install --create-namespace)
        fk.store.put("", "namespaces", {"metadata": {"name": "kube-system"}})
        yield fk


def _render_live(fk: FakeKube, *sets: str) -> str:
    cmd = [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=server",
           "--disable-openapi-validation", "--kubeconfig", str(fk.kubeconfig)]
    for s in sets:
        cmd += ["--set", s]
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _secret(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Secret", SECRET)


def _store_secret(fk: FakeKube, secret: dict[str, Any]) -> None:
    """What helm install/upgrade would have applied: the rendered Secret, owned by the release."""
    owner = {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE}
    meta = {"name": secret["metadata"]["name"], "namespace": NAMESPACE, "labels": secret["metadata"]["labels"],
            "annotations": {**secret["metadata"].get("annotations", {}), **owner}}
    fk.store.put("", "secrets", {"metadata": meta, "type": secret["type"], "data": dict(secret["data"])})


def _ca_bundle(objs: list[dict[str, Any]]) -> bytes:
    bundles = {api["spec"]["caBundle"] for api in kinds(objs, "APIService")}
    assert len(bundles) == 1, "every APIService carries the same caBundle"
    return base64.b64decode(bundles.pop())


def _pems(bundle: bytes) -> list[bytes]:
    return [c.public_bytes(Encoding.PEM) for c in x509.load_pem_x509_certificates(bundle)]


def _decoded(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def _pair(secret: dict[str, Any]) -> KeyPair:
    return KeyPair(_decoded(secret, "tls.crt"), _decoded(secret, "tls.key"))


def _not_after(secret: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(secret["metadata"]["annotations"][NOT_AFTER])


def test_live_install_generates_and_an_upgrade_renders_the_same_bytes(cluster: FakeKube) -> None:
    first = _render_live(cluster)
    assert "WARNING" not in first
    assert cluster.state.recorded("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}")
    objs = _objects(first)
    secret = _secret(objs)
    assert "ca-previous.crt" not in secret["data"]
    assert _ca_bundle(objs) == _decoded(secret, "ca.crt") == _decoded(secret, "ca-bundle.crt")
    leaf = x509.load_pem_x509_certificate(_decoded(secret, "tls.crt"))
    # the annotation is the certificate's expiry (same second, give or take the render)
    assert abs((_not_after(secret) - leaf.not_valid_after_utc).total_seconds()) <= 5
    _store_secret(cluster, secret)
    assert _render_live(cluster) == first, "an upgrade with a valid certificate changes nothing"


def test_a_server_side_dry_run_install_sees_the_cluster(cluster: FakeKube) -> None:
    """What the refusal message recommends for a preview: helm install --dry-run=server."""
    r = run([helm(), "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=server",
             "--disable-openapi-validation", "--kubeconfig", str(cluster.kubeconfig)])
    assert r.returncode == 0, r.stderr
    manifest, notes = r.stdout.split("NOTES:", 1)
    assert "kind: Secret" in manifest and "WARNING" not in manifest
    assert "WARNING: tls.mode=generate" not in notes
    assert not cluster.state.recorded("POST") and not cluster.state.recorded("PUT")


def test_rotation_near_expiry_keeps_the_old_ca_in_the_bundle_until_pods_serve_the_new_cert(
        cluster: FakeKube, tmp_path: Path) -> None:
    old = _secret(_objects(_render_live(cluster)))
    # the certificate in the cluster expires in 10 days: inside renewBeforeDays (30)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old["metadata"]["annotations"][NOT_AFTER] = soon
    _store_secret(cluster, old)

    rotated_text = _render_live(cluster, "serviceMonitor.enabled=true")
    objs = _objects(rotated_text)
    new = _secret(objs)
    assert _decoded(new, "ca.crt") != _decoded(old, "ca.crt")
    assert _decoded(new, "ca-previous.crt") == _decoded(old, "ca.crt")
    bundle = _ca_bundle(objs)
    assert _pems(bundle) == [_decoded(new, "ca.crt"), _decoded(old, "ca.crt")]
    # Prometheus scrapes through the same overlap: its CA file is the Secret's copy of the caBundle
    assert _decoded(new, "ca-bundle.crt") == bundle
    scrape_ca = one(objs, "ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]["ca"]["secret"]
    assert scrape_ca == {"name": SECRET, "key": "ca-bundle.crt"}
    assert _not_after(new) > dt.datetime.now(dt.UTC) + dt.timedelta(days=3000)

    # A pod serves the old certificate until the kubelet refreshes the mounted Secret and the
    # server's reloader picks the new pair up; an aggregator trusting the new caBundle accepts both.
    with serving(tmp_path, _pair(old)) as served:
        assert handshake(served.port, bundle, SERVER_NAME) == _decoded(old, "tls.crt")
        with pytest.raises(ssl.SSLCertVerificationError):  # the new CA alone: failed until the switch
            handshake(served.port, _decoded(new, "ca.crt"), SERVER_NAME)
        _pair(new).write(served.cert, served.key)  # the kubelet's update of the Secret volume
        assert served.reloader.check_now() is True
        assert handshake(served.port, bundle, SERVER_NAME) == _decoded(new, "tls.crt")
        with pytest.raises(ssl.SSLCertVerificationError):  # the old CA alone: failed after it
            handshake(served.port, _decoded(old, "ca.crt"), SERVER_NAME)

    # the rotated Secret in the cluster: the next upgrade renders the same bytes (old CA still there)
    _store_secret(cluster, new)
    assert _render_live(cluster, "serviceMonitor.enabled=true") == rotated_text
    # the next rotation (forced here) drops the oldest CA: the bundle holds at most two
    again = _objects(_render_live(cluster, "tls.generate.reuseExisting=false"))
    newest = _secret(again)
    assert _decoded(newest, "ca-previous.crt") == _decoded(new, "ca.crt")
    assert _pems(_ca_bundle(again)) == [_decoded(newest, "ca.crt"), _decoded(new, "ca.crt")]


@pytest.mark.parametrize(("not_after", "rotates"), [
    (dt.timedelta(days=31), False),   # valid for more than renewBeforeDays (30): kept
    (dt.timedelta(days=29), True),    # inside the window
    (dt.timedelta(days=-1), True),    # already expired
    ("next tuesday", True),           # an annotation that is not a date: treated as expired
], ids=["31d", "29d", "expired", "garbled"])
def test_rotation_starts_renew_before_days_ahead(cluster: FakeKube, not_after: dt.timedelta | str,
                                                  rotates: bool) -> None:
    secret = _secret(_objects(_render_live(cluster)))
    if isinstance(not_after, dt.timedelta):
        not_after = (dt.datetime.now(dt.UTC) + not_after).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret["metadata"]["annotations"][NOT_AFTER] = not_after
    _store_secret(cluster, secret)
    again = _secret(_objects(_render_live(cluster)))
    assert (again["data"]["ca.crt"] != secret["data"]["ca.crt"]) is rotates
    assert ("ca-previous.crt" in again["data"]) is rotates


def test_a_secret_without_the_expiry_annotation_is_reused(cluster: FakeKube) -> None:
    """A Secret made by an earlier chart version (no annotation) is kept, as that version did."""
    secret = _secret(_objects(_render_live(cluster)))
    secret["metadata"]["annotations"] = {}
    _store_secret(cluster, secret)
    again = _secret(_objects(_render_live(cluster)))
    assert again["data"] == secret["data"]
    assert NOT_AFTER not in again["metadata"].get("annotations", {})


def test_existing_secret_mode_reads_the_ca_from_the_secret_with_a_cluster(cluster: FakeKube) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    cluster.store.put("", "secrets", {"metadata": {"name": "own-tls", "namespace": NAMESPACE},
                                      "type": "kubernetes.io/tls", "data": {"ca.crt": ca}})
    objs = _objects(_render_live(cluster, "tls.mode=existingSecret", "tls.existingSecret.name=own-tls"))
    assert {api["spec"]["caBundle"] for api in kinds(objs, "APIService")} == {ca}
    assert not kinds(objs, "Secret")
    # the value wins over the Secret (GitOps: the caBundle is in Git)
    objs = _objects(_render_live(cluster, "tls.mode=existingSecret", "tls.existingSecret.name=own-tls",
                                 "tls.existingSecret.caBundle=Cg=="))
    assert {api["spec"]["caBundle"] for api in kinds(objs, "APIService")} == {"Cg=="}


# ---- cert-manager: the CA keeps its key across renewals --------------------------------------------

def test_cert_manager_ca_keeps_its_key_and_the_serving_cert_rotates_its_own() -> None:
    objs = [d for d in yaml.safe_load_all(run(template_cmd(values=(CI["cert-manager"],))).stdout) if d]
    ca = one(objs, "Certificate", f"{SVC}-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    assert one(objs, "Certificate", SVC)["spec"]["privateKey"]["rotationPolicy"] == "Always"


def test_a_ca_renewed_with_the_same_key_trusts_certificates_from_before_and_after(tmp_path: Path) -> None:
    """What cert-manager does at the CA's renewal with rotationPolicy Never, over real TLS: the caBundle
    the injector writes (the old or the renewed CA) verifies the serving certificate of either side.
    With a new key (rotationPolicy Always) the old serving certificate fails against the renewed CA."""
    ca_ku = x509build.key_usage(cert_sign=True, digital_signature=True, key_encipherment=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_before = x509build.make(f"{SVC}-ca", ca=True, ku=ca_ku, key=ca_key)
    ca_renewed = x509build.make(f"{SVC}-ca", ca=True, ku=ca_ku, key=ca_key,
                                not_after=x509build.NOW + dt.timedelta(days=3650))
    ca_new_key = x509build.make(f"{SVC}-ca", ca=True, ku=ca_ku)
    assert ca_renewed.cert.serial_number != ca_before.cert.serial_number
    san = (x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), False)
    leaf_before = x509build.make(SERVER_NAME, ca_before, extra=(san,))
    leaf_after = x509build.make(SERVER_NAME, ca_renewed, extra=(san,))

    def served(leaf: x509build.Issued, name: str) -> KeyPair:
        crt, key = leaf.write(tmp_path / name, "tls")
        return KeyPair(crt.read_bytes(), key.read_bytes())

    with serving(tmp_path / "pod", served(leaf_before, "before")) as pod:
        for ca in (ca_before, ca_renewed):
            assert handshake(pod.port, ca.pem, SERVER_NAME) == leaf_before.pem
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(pod.port, ca_new_key.pem, SERVER_NAME)
        served(leaf_after, "after").write(pod.cert, pod.key)
        assert pod.reloader.check_now() is True
        for ca in (ca_before, ca_renewed):
            assert handshake(pod.port, ca.pem, SERVER_NAME) == leaf_after.pem
