"""The Helm chart, rendered by the real helm: lint, TLS, security, RBAC, APIServices, values schema."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from adapter.settings import build_parser

from .tools import CHART, CI_VALUES, NAMESPACE, RELEASE, helm, kinds, one, render, run, template_cmd

SVC = RELEASE  # release "accel-metrics-adapter" contains the chart name: fullname == release name
DNS_NAMES = [SVC, f"{SVC}.{NAMESPACE}", f"{SVC}.{NAMESPACE}.svc", f"{SVC}.{NAMESPACE}.svc.cluster.local"]
APISERVICES = {"v1beta1.custom.metrics.k8s.io": 100, "v1beta2.custom.metrics.k8s.io": 200,
               "v1beta1.external.metrics.k8s.io": 100, "v1alpha1.explain.accel-metrics.io": 100}
CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}


def ci(name: str) -> tuple[Path, ...]:
    return (CI[name],)


def test_every_expected_ci_scenario_exists() -> None:
    assert set(CI) >= {"defaults", "cert-manager", "existing-secret", "external-metrics-off", "presets-only"}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict(values: Path) -> None:
    r = run([helm(), "lint", str(CHART), "--strict", "-f", str(values), "--namespace", NAMESPACE])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_template_renders_well_formed_objects(values: Path) -> None:
    objs = render((values,))
    assert {o["kind"] for o in objs} >= {"Deployment", "Service", "ServiceAccount", "APIService",
                                         "ClusterRole", "ClusterRoleBinding", "RoleBinding",
                                         "PodDisruptionBudget"}
    seen = set()
    cluster_scoped = {"APIService", "ClusterRole", "ClusterRoleBinding"}
    for o in objs:
        key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        assert key not in seen, f"duplicate object {key}"
        seen.add(key)
        if o["kind"] in cluster_scoped:
            assert "namespace" not in o["metadata"], key
        elif o["kind"] == "RoleBinding":
            assert o["metadata"]["namespace"] == "kube-system"
        else:
            assert o["metadata"]["namespace"] == NAMESPACE, key


# ---- APIServices ---------------------------------------------------------------------------------

def _apiservices(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in kinds(objs, "APIService")}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_apiservices_point_at_the_service_port(values: Path) -> None:
    objs = render((values,))
    svc = one(objs, "Service")
    port = svc["spec"]["ports"][0]
    assert (port["name"], port["port"], port["targetPort"]) == ("https", 443, "https")
    container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "https", "containerPort": 6443, "protocol": "TCP"} in container["ports"]
    for name, api in _apiservices(objs).items():
        spec = api["spec"]
        assert name == f"{spec['version']}.{spec['group']}"
        assert spec["service"] == {"name": svc["metadata"]["name"], "namespace": NAMESPACE, "port": 443}
        assert spec["groupPriorityMinimum"] == 100
        assert spec["versionPriority"] == APISERVICES[name]
        assert "insecureSkipTLSVerify" not in spec


def test_all_three_apiservices_by_default_and_each_switchable() -> None:
    assert set(_apiservices(render())) == set(APISERVICES)
    off = _apiservices(render(ci("external-metrics-off")))
    assert set(off) == {"v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io",
                        "v1alpha1.explain.accel-metrics.io"}
    for key, gone in (("customV1beta1", "v1beta1.custom.metrics.k8s.io"),
                      ("customV1beta2", "v1beta2.custom.metrics.k8s.io"),
                      ("external", "v1beta1.external.metrics.k8s.io"),
                      ("explain", "v1alpha1.explain.accel-metrics.io")):
        names = set(_apiservices(render(sets=(f"apiService.{key}=false",))))
        assert names == set(APISERVICES) - {gone}


# ---- TLS modes -----------------------------------------------------------------------------------

def _verify(ca_pem: bytes, chain_pem: bytes, hostname: str) -> None:
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf, *rest = x509.load_pem_x509_certificates(chain_pem)
    PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName(hostname)).verify(leaf, rest)


def _tls_volume_secret(objs: list[dict[str, Any]]) -> str:
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "tls")
    return str(vol["secret"]["secretName"])


def test_generated_mode_cabundle_is_the_ca_that_signed_the_serving_cert() -> None:
    objs = render()
    secret = one(objs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["name"] == _tls_volume_secret(objs)
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    bundles = {api["spec"]["caBundle"] for api in _apiservices(objs).values()}
    assert len(bundles) == 1
    ca_pem = base64.b64decode(bundles.pop())
    assert ca_pem == data["ca.crt"]
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(DNS_NAMES)
    for name in DNS_NAMES:  # the aggregator verifies <svc>.<ns>.svc
        _verify(ca_pem, data["tls.crt"], name)
    with pytest.raises(VerificationError):
        _verify(ca_pem, data["tls.crt"], f"{SVC}.other.svc")
    # the private key is the certificate's
    key = serialization.load_pem_private_key(data["tls.key"], password=None)
    assert key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert not kinds(objs, "Certificate") and not kinds(objs, "Issuer")


def test_generated_mode_sans_follow_release_and_namespace() -> None:
    objs = render(release="metrics", namespace="platform")
    secret = one(objs, "Secret")
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    svc = one(objs, "Service")["metadata"]["name"]
    assert svc == "metrics-accel-metrics-adapter"
    assert sorted(sans) == sorted([svc, f"{svc}.platform", f"{svc}.platform.svc",
                                   f"{svc}.platform.svc.cluster.local"])


def test_cert_manager_mode() -> None:
    objs = render(ci("cert-manager"))
    assert not kinds(objs, "Secret"), "cert-manager writes the Secret"
    cert = one(objs, "Certificate", SVC)
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["spec"]["dnsNames"] == DNS_NAMES
    assert cert["spec"]["secretName"] == _tls_volume_secret(objs)
    assert "server auth" in cert["spec"]["usages"]
    for api in _apiservices(objs).values():
        assert api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{SVC}"
        assert "caBundle" not in api["spec"]
    # issuer chain: serving cert <- CA Issuer <- CA Certificate <- self-signed Issuer, all in the release
    issuers = {i["metadata"]["name"]: i for i in kinds(objs, "Issuer")}
    ca_issuer = issuers[cert["spec"]["issuerRef"]["name"]]
    assert cert["spec"]["issuerRef"]["kind"] == "Issuer"
    ca_cert = one(objs, "Certificate", f"{SVC}-ca")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert "selfSigned" in issuers[ca_cert["spec"]["issuerRef"]["name"]]["spec"]


def test_cert_manager_with_own_issuer_creates_no_issuers() -> None:
    objs = render(ci("cert-manager"), sets=("tls.certManager.issuerRef.name=corp-ca",
                                            "tls.certManager.issuerRef.kind=ClusterIssuer"))
    assert not kinds(objs, "Issuer")
    cert = one(objs, "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_existing_secret_mode() -> None:
    objs = render(ci("existing-secret"))
    values = yaml.safe_load(CI["existing-secret"].read_text())
    assert not kinds(objs, "Secret") and not kinds(objs, "Certificate")
    assert _tls_volume_secret(objs) == values["tls"]["existingSecret"]["name"]
    for api in _apiservices(objs).values():
        assert api["spec"]["caBundle"] == values["tls"]["existingSecret"]["caBundle"]
    r = run(template_cmd(sets=("tls.mode=existingSecret", "tls.existingSecret.name=x")))
    assert r.returncode != 0 and "tls.existingSecret.caBundle" in r.stderr


# ---- Deployment ----------------------------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_pod_security_restricted(values: Path) -> None:
    pod = one(render((values,)), "Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field)
    for vol in pod["volumes"]:
        assert set(vol) - {"name"} <= RESTRICTED_VOLUME_TYPES, vol
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert psc["runAsNonRoot"] is True
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert not sc.get("privileged")
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        assert isinstance(uid, int) and uid > 0
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert all("hostPort" not in p for p in c["ports"])
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["resources"]["limits"]["memory"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
        assert "emptyDir" in tmp


def test_probes_are_https_on_the_serving_port() -> None:
    c = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == (path, "https", "HTTPS")


def test_replicas_anti_affinity_and_pdb_select_the_pods() -> None:
    objs = render()
    dep = one(objs, "Deployment")
    selector = dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["replicas"] == 2
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}  # stable: no version
    term = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"] == selector
    assert term["topologyKey"] == "kubernetes.io/hostname"
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1
    hard = one(render(ci("presets-only")), "Deployment")["spec"]["template"]["spec"]["affinity"]
    assert hard["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"][
        "matchLabels"] == selector
    netpol = one(objs, "NetworkPolicy")
    assert netpol["spec"]["podSelector"]["matchLabels"] == selector
    assert netpol["spec"]["ingress"] == [{"ports": [{"port": 6443, "protocol": "TCP"}]}]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_args_are_the_servers_flags(values: Path) -> None:
    objs = render((values,))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert "serve" not in args, "the image ENTRYPOINT already says serve"
    assert "command" not in pod["containers"][0]
    parsed = build_parser(argparse.ArgumentParser(exit_on_error=False)).parse_args(args)  # unknown flag: error
    assert parsed.config == "/etc/accel-adapter/rules/config.yaml"
    assert parsed.secure_port == 6443
    assert (parsed.tls_cert_file, parsed.tls_private_key_file) == (
        "/etc/accel-adapter/tls/tls.crt", "/etc/accel-adapter/tls/tls.key")
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    # the ConfigMap's directory: a subPath mount would never see a change of the rules (no reload)
    assert "subPath" not in mounts["/etc/accel-adapter/rules"]
    assert "/etc/accel-adapter/tls" in mounts
    # every file flag points into a mounted volume
    for flag in ("prometheus_token_file", "prometheus_ca_file", "prometheus_client_tls_cert_file",
                 "prometheus_client_tls_key_file"):
        path = getattr(parsed, flag)
        if path:
            assert any(path.startswith(m + "/") for m in mounts), (flag, path)


def test_prometheus_auth_values_become_flags_and_mounts() -> None:
    objs = render(ci("existing-secret"))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    parsed = build_parser(argparse.ArgumentParser()).parse_args(pod["containers"][0]["args"])
    assert parsed.prometheus_url == "https://prometheus.monitoring.svc:9091"
    assert parsed.prometheus_verb == "POST"
    assert parsed.prometheus_header == ["X-Scope-OrgID=team-ml"]
    assert parsed.prometheus_token_file == "/etc/accel-adapter/prometheus/token/token"
    assert parsed.prometheus_ca_file == "/etc/accel-adapter/prometheus/ca/ca.crt"
    assert parsed.prometheus_client_tls_cert_file == "/etc/accel-adapter/prometheus/client/tls.crt"
    assert parsed.presets == ["vllm"]  # existingConfigMap: presets come as flags
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["prometheus-token"]["secret"]["secretName"] == "prometheus-reader-token"
    assert vols["prometheus-ca"]["configMap"]["name"] == "prometheus-ca"
    assert vols["prometheus-client"]["secret"]["secretName"] == "prometheus-client-tls"
    assert vols["config"]["configMap"]["name"] == "accel-adapter-rules"
    assert not kinds(objs, "ConfigMap"), "existingConfigMap: the chart renders none"


def test_config_file_is_the_rule_file_plus_presets() -> None:
    cfg = yaml.safe_load(one(render(ci("presets-only")), "ConfigMap")["data"]["config.yaml"])
    assert cfg == {"rules": [], "externalRules": [],
                   "presets": ["nvidia-dcgm", "aws-neuron", "vllm", "triton", "tgi"]}
    rules = yaml.safe_load(CI["external-metrics-off"].read_text())["rules"]
    cfg = yaml.safe_load(one(render(ci("external-metrics-off")), "ConfigMap")["data"]["config.yaml"])
    assert cfg == {"rules": rules["rules"], "externalRules": []}


def _checksum(objs: list[dict[str, Any]]) -> str:
    return str(one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_checksum_config_changes_with_the_rules(tmp_path: Path) -> None:
    rule = {"seriesQuery": "up", "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"}
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"rules": {"rules": [rule], "restartOnChange": True}}))
    b.write_text(yaml.safe_dump({"rules": {"rules": [{**rule, "seriesQuery": "up2"}], "restartOnChange": True}}))
    on = "rules.restartOnChange=true"
    base = _checksum(render(sets=(on,)))
    assert len(base) == 64
    assert _checksum(render((a,))) != base
    assert _checksum(render((b,))) not in (base, _checksum(render((a,))))
    assert _checksum(render(sets=("presets={vllm}", on))) != base
    assert _checksum(render(sets=("replicaCount=3", on))) == base  # unrelated values do not roll pods
    assert _checksum(render((a,))) == _checksum(render((a,), sets=("logging.level=debug",)))
    assert "restartOnChange" not in one(render((a,)), "ConfigMap")["data"]["config.yaml"]


def test_rules_changes_do_not_roll_the_pods_by_default() -> None:
    """The adapter reloads a changed rules file itself: no checksum annotation unless asked for."""
    meta = one(render(), "Deployment")["spec"]["template"]["metadata"]
    assert "checksum/config" not in (meta.get("annotations") or {})
    meta = one(render(sets=("podAnnotations.team=ml",)), "Deployment")["spec"]["template"]["metadata"]
    assert meta["annotations"] == {"team": "ml"}
    meta = one(render(sets=("existingConfigMap=mine", "rules.restartOnChange=true")),
               "Deployment")["spec"]["template"]["metadata"]
    assert set(meta["annotations"]) == {"checksum/config"}


# ---- RBAC ----------------------------------------------------------------------------------------

# Kubernetes bootstrap roles the chart binds to (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).
BOOTSTRAP: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("ClusterRole", "system:auth-delegator"): [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ],
    ("Role", "extension-apiserver-authentication-reader"): [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["extension-apiserver-authentication"],
         "verbs": ["get", "list", "watch"]},
    ],
}


def _rules(objs: list[dict[str, Any]], ref: dict[str, Any], binding_ns: str | None) -> list[dict[str, Any]]:
    key = (ref["kind"], ref["name"])
    if key in BOOTSTRAP:
        return BOOTSTRAP[key]
    for o in objs:
        if o["kind"] == ref["kind"] and o["metadata"]["name"] == ref["name"] and (
                ref["kind"] == "ClusterRole" or o["metadata"].get("namespace") == binding_ns):
            return list(o["rules"])
    raise AssertionError(f"binding refers to missing {key}")


def allowed(objs: list[dict[str, Any]], sa: tuple[str, str], verb: str, group: str, resource: str,
            namespace: str | None = None, name: str | None = None) -> bool:
    for b in kinds(objs, "ClusterRoleBinding") + kinds(objs, "RoleBinding"):
        ns = b["metadata"].get("namespace")
        if b["kind"] == "RoleBinding" and ns != namespace:
            continue
        if not any(s["kind"] == "ServiceAccount" and (s["namespace"], s["name"]) == sa for s in b["subjects"]):
            continue
        for r in _rules(objs, b["roleRef"], ns):
            if (({group, "*"} & set(r.get("apiGroups", []))) and ({resource, "*"} & set(r.get("resources", [])))
                    and ({verb, "*"} & set(r["verbs"]))
                    and (not r.get("resourceNames") or name in r["resourceNames"])):
                return True
    return False


ADAPTER_CALLS = [
    ("create", "authentication.k8s.io", "tokenreviews", None, None),
    ("create", "authorization.k8s.io", "subjectaccessreviews", None, None),
    *[(v, "", "configmaps", "kube-system", "extension-apiserver-authentication") for v in ("get", "list", "watch")],
    *[(v, "", r, None, None) for r in ("pods", "namespaces", "nodes", "services") for v in ("get", "list", "watch")],
    *[(v, "apps", r, None, None) for r in ("deployments", "statefulsets", "replicasets", "daemonsets")
      for v in ("get", "list", "watch")],
    *[(v, "batch", "jobs", None, None) for v in ("get", "list", "watch")],
]


@pytest.mark.parametrize(("verb", "group", "resource", "namespace", "name"), ADAPTER_CALLS)
def test_rbac_covers_what_the_adapter_calls(verb: str, group: str, resource: str, namespace: str | None,
                                            name: str | None) -> None:
    objs = render()
    sa = (NAMESPACE, one(objs, "ServiceAccount")["metadata"]["name"])
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa[1]
    assert allowed(objs, sa, verb, group, resource, namespace, name)


def test_rbac_grants_nothing_more() -> None:
    objs = render()
    sa = (NAMESPACE, SVC)
    assert not allowed(objs, sa, "get", "", "secrets", NAMESPACE)
    assert not allowed(objs, sa, "create", "", "pods", NAMESPACE)
    assert not allowed(objs, sa, "get", "", "configmaps", "kube-system", "other")
    assert not allowed(objs, sa, "get", "", "configmaps", NAMESPACE, "extension-apiserver-authentication")
    assert not allowed(objs, sa, "get", "custom.metrics.k8s.io", "*")
    extra = render(sets=("rbac.extraRules[0].apiGroups[0]=kubeflow.org", "rbac.extraRules[0].resources[0]=pytorchjobs",
                         "rbac.extraRules[0].verbs={get,list,watch}"))
    assert allowed(extra, sa, "list", "kubeflow.org", "pytorchjobs")
    assert not allowed(objs, sa, "list", "kubeflow.org", "pytorchjobs")


def test_rbac_one_file_per_purpose() -> None:
    files = sorted(p.name for p in (CHART / "templates" / "rbac").glob("*.yaml"))
    assert files == ["auth-delegator.yaml", "auth-reader.yaml", "delegate-reader.yaml", "explain-reader.yaml",
                     "hpa-metrics-reader.yaml", "metricrules.yaml", "metrics-scraper.yaml", "resource-reader.yaml"]


def test_hpa_controller_can_read_both_metrics_apis() -> None:
    objs = render()
    hpa = ("kube-system", "horizontal-pod-autoscaler")
    for group in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        for verb in ("get", "list"):
            assert allowed(objs, hpa, verb, group, "pods/gpu_util")
            assert allowed(objs, hpa, verb, group, "vllm_queue_depth")
        assert not allowed(objs, hpa, "create", group, "pods")
    assert not allowed(render(sets=("rbac.hpaAccess=false",)), hpa, "get", "custom.metrics.k8s.io", "pods")


def test_explain_reader_grants_only_explanations_and_aggregates_to_view_on_request() -> None:
    objs = render()
    role = next(o for o in kinds(objs, "ClusterRole") if o["metadata"]["name"].endswith("-explain-reader"))
    assert role["rules"] == [{"apiGroups": ["explain.accel-metrics.io"], "resources": ["*"], "verbs": ["get"]}]
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in role["metadata"]["labels"]
    agg = render(sets=("rbac.explainReader.aggregateToView=true",))
    role = next(o for o in kinds(agg, "ClusterRole") if o["metadata"]["name"].endswith("-explain-reader"))
    assert role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for sets in (("rbac.explainReader.create=false",), ("apiService.explain=false",)):
        assert not [o for o in kinds(render(sets=sets), "ClusterRole")
                    if o["metadata"]["name"].endswith("-explain-reader")]


# ---- ServiceMonitor, names, schema, NOTES --------------------------------------------------------

def test_service_monitor_off_by_default_and_https_when_on() -> None:
    assert not kinds(render(), "ServiceMonitor")
    objs = render(ci("cert-manager"))
    sm = one(objs, "ServiceMonitor")
    ep = sm["spec"]["endpoints"][0]
    assert (ep["port"], ep["scheme"], ep["path"]) == ("https", "https", "/metrics")
    assert ep["tlsConfig"]["serverName"] == f"{SVC}.{NAMESPACE}.svc"
    assert ep["tlsConfig"]["ca"]["secret"] == {"name": _tls_volume_secret(objs), "key": "ca.crt"}
    assert sm["spec"]["selector"]["matchLabels"] == one(objs, "Service")["spec"]["selector"]
    scraper = ("monitoring", "prometheus-k8s")
    binding = one(objs, "ClusterRoleBinding", f"{SVC}-metrics-scraper")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": scraper[1], "namespace": scraper[0]}]
    role = one(objs, "ClusterRole", f"{SVC}-metrics-scraper")
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


def test_names_fit_in_63_characters_for_a_long_release() -> None:
    release = "a-very-long-release-name-for-the-metrics-adapter-chrt"
    assert len(release) == 53  # helm's maximum
    objs = render(release=release, namespace="ns")
    for o in objs:
        if o["kind"] != "APIService":
            assert len(o["metadata"]["name"]) <= 63, o["metadata"]["name"]
        for v in o["metadata"].get("labels", {}).values():
            assert len(str(v)) <= 63
    dep = one(objs, "Deployment")
    for v in dep["spec"]["selector"]["matchLabels"].values():
        assert len(v) <= 63 and not v.endswith("-")


@pytest.mark.parametrize(("sets", "message"), [
    (("bogus=1",), "additional properties 'bogus' not allowed"),
    (("tls.generate.bogus=1",), "bogus"),
    (("prometheus.auth.password=x",), "password"),
    (("tls.mode=selfSigned",), "tls/mode"),
    (("presets={nvidia}",), "presets"),
    (("cache.ttl=soon",), "cache/ttl"),
    (("logging.level=trace",), "logging/level"),
    (("prometheus.url=prometheus:9090",), "prometheus/url"),
    (("extraArgs={serve}",), "extraArgs"),
    (("tls.generate.renewBeforeDays=0",), "renewBeforeDays"),
    (("server.idleTimeout=0s",), "server/idleTimeout"),
    (("server.readHeaderTimeout=0ms",), "server/readHeaderTimeout"),
    (("server.readHeaderTimeout=soon",), "server/readHeaderTimeout"),
    (("server.maxHeaderBytes=1000",), "server/maxHeaderBytes"),
    (("server.maxConnections=10",), "maxConnections"),
])
def test_values_schema_rejects(sets: tuple[str, ...], message: str) -> None:
    r = run(template_cmd(sets=sets))
    assert r.returncode != 0, f"helm template accepted {sets}"
    assert "schema" in r.stderr and message in r.stderr, r.stderr


def test_values_schema_rejects_unknown_key_in_a_values_file(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("replicaCount: 2\nprometheus:\n  urll: http://p:9090\n")
    r = run(template_cmd(values=(bad,)))
    assert r.returncode != 0 and "urll" in r.stderr, r.stderr


def test_notes_print_the_raw_api_checks() -> None:
    r = run([helm(), "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
             "--set", "tls.generate.allowTemplate=true"])
    assert r.returncode == 0, r.stderr
    notes = r.stdout.split("NOTES:", 1)[1]
    for api in APISERVICES:
        version, group = api.split(".", 1)
        assert f"kubectl get --raw /apis/{group}/{version}" in notes
    assert "kubectl get apiservices" in notes
    assert "WARNING: no rules and no presets" in notes
    r = run([helm(), "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
             "-f", str(CI["external-metrics-off"]), "--set", "tls.generate.allowTemplate=true"])
    notes = r.stdout.split("NOTES:", 1)[1]
    assert "external.metrics.k8s.io" not in notes and "WARNING: no rules" not in notes


def test_tenancy_block_reaches_the_rules_file(tmp_path: Path) -> None:
    """``rules.tenancy`` (README "Tenancy") is written into config.yaml as the rules file's tenancy block."""
    from adapter.rules import parse_rules_text
    values = tmp_path / "tenancy.yaml"
    values.write_text("""presets: [vllm]
rules:
  tenancy:
    tenants: {team-a: {}, team-b: {orgID: b-prod}}
    namespaceLabel: example.com/tenant
    unmapped: deny
""")
    text = one(render((values,)), "ConfigMap")["data"]["config.yaml"]
    tenancy = parse_rules_text(text, "config.yaml").tenancy
    assert tenancy is not None and tenancy.namespace_label == "example.com/tenant"
    assert tenancy.tenants["team-b"].org_id == "b-prod"
    cfg = yaml.safe_load(one(render(), "ConfigMap")["data"]["config.yaml"])
    assert "tenancy" not in cfg  # off by default
