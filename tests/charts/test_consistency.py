"""apiservice/ (plain manifests) says the same as the chart rendered as release accel-metrics-adapter."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .tools import NAMESPACE, ROOT, helm, render, run

PLAIN_DIR = ROOT / "apiservice"
# The plain Deployment mounts the Secret that certs/generate.sh prints the command for.
CHART_SETS = ("tls.mode=existingSecret", "tls.existingSecret.name=accel-metrics-adapter-tls",
              "tls.existingSecret.caBundle=Cg==")
SHARED = ("APIService", "ClusterRole", "ClusterRoleBinding", "RoleBinding", "Service", "ServiceAccount",
          "Deployment", "PodDisruptionBudget", "ConfigMap")
Key = tuple[str, str | None, str]


def _index(objs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}


def _plain() -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for path in sorted(PLAIN_DIR.glob("*.yaml")):
        objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objs


def _chart() -> list[dict[str, Any]]:
    return render(sets=CHART_SETS)


def _comparable(o: dict[str, Any]) -> Any:
    kind = o["kind"]
    if kind == "APIService":
        return {k: v for k, v in o["spec"].items() if k != "caBundle"}
    if kind in ("ClusterRole", "Role"):
        return o["rules"]
    if kind in ("ClusterRoleBinding", "RoleBinding"):
        return {"roleRef": o["roleRef"], "subjects": o["subjects"]}
    if kind == "Service":
        return {"ports": o["spec"]["ports"], "selector": o["spec"]["selector"], "type": o["spec"].get("type")}
    if kind == "ServiceAccount":
        return o.get("automountServiceAccountToken")
    if kind == "Deployment":
        spec = dict(o["spec"])
        template = dict(spec.pop("template"))
        meta = {"labels": template["metadata"]["labels"]}  # the checksum annotation is Helm's business
        return {"spec": spec, "template": {"metadata": meta, "spec": template["spec"]}}
    if kind == "PodDisruptionBudget":
        return o["spec"]
    if kind == "ConfigMap":
        return sorted(o["data"])
    raise AssertionError(kind)


def test_plain_manifests_parse_and_live_in_the_namespace() -> None:
    objs = _plain()
    ns = [o for o in objs if o["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in ns] == [NAMESPACE]
    assert sorted(PLAIN_DIR.glob("*.yaml"))[0].name == "00-namespace.yaml", "kubectl apply -f applies in order"
    for o in objs:
        if o["kind"] in ("Namespace", "APIService", "ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in o["metadata"]
        elif o["kind"] == "RoleBinding":
            assert o["metadata"]["namespace"] == "kube-system"
        else:
            assert o["metadata"]["namespace"] == NAMESPACE, o["metadata"]
    for api in (o for o in objs if o["kind"] == "APIService"):
        assert "caBundle" not in api["spec"] and not api["spec"].get("insecureSkipTLSVerify")


def test_same_shared_objects_in_both() -> None:
    chart = {k for k in _index(_chart()) if k[0] in SHARED}
    plain = {k for k in _index(_plain()) if k[0] in SHARED}
    assert chart == plain, f"only in chart: {sorted(chart - plain)}; only in apiservice/: {sorted(plain - chart)}"


@pytest.mark.parametrize("key", sorted(k for k in _index(_plain()) if k[0] in SHARED), ids=str)
def test_shared_object_matches_the_chart(key: Key) -> None:
    chart = _index(_chart())
    assert key in chart, f"{key} is in apiservice/ but the chart does not render it"
    assert _comparable(_index(_plain())[key]) == _comparable(chart[key])


def test_every_plain_file_is_covered() -> None:
    names = {p.name for p in PLAIN_DIR.glob("*.yaml")}
    assert names >= {"apiservices.yaml", "service.yaml", "serviceaccount.yaml", "rbac-auth-delegator.yaml",
                     "rbac-auth-reader.yaml", "rbac-resource-reader.yaml", "rbac-metrics-reader-hpa.yaml"}
    kinds = {o["kind"] for o in _plain()}
    assert kinds <= set(SHARED) | {"Namespace"}, "a kind the consistency test does not compare"


def _doc_block(marker: str) -> str:
    text = (ROOT / "docs" / "install.md").read_text()
    start = text.index(marker)
    block = text[text.index("```sh\n", start) + 6:]
    return block[:block.index("```")]


def test_the_documented_metricrule_add_on_for_plain_manifests_renders() -> None:
    """docs/install.md's "Plain manifests": the CRD directory and the helm command it gives produce
    the adapter's MetricRule ClusterRole and its binding to the plain manifests' ServiceAccount."""
    block = _doc_block("team-owned rules (MetricRule) are off")
    lines = block.replace("\\\n", " ").splitlines()
    assert lines[0].strip() == "kubectl apply -f charts/accel-metrics-adapter/crds/"
    crds = list((ROOT / "charts" / "accel-metrics-adapter" / "crds").glob("*.yaml"))
    assert [yaml.safe_load(c.read_text())["kind"] for c in crds] == ["CustomResourceDefinition"]
    helm_cmd = lines[1].split("|")[0].split()
    assert helm_cmd[:2] == ["helm", "template"]
    out = run([helm(), *helm_cmd[1:]])
    assert out.returncode == 0, out.stderr
    objs = {o["kind"]: o for o in yaml.safe_load_all(out.stdout) if o}
    assert {"apiGroups": ["accel-metrics.io"], "resources": ["metricrules"],
            "verbs": ["get", "list", "watch"]} in objs["ClusterRole"]["rules"]
    sa = next(o for o in _plain() if o["kind"] == "ServiceAccount")
    assert objs["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    plain_deploy = (ROOT / "apiservice" / "deployment.yaml").read_text()
    assert "--metric-rules" not in plain_deploy  # off by default, as the doc says
