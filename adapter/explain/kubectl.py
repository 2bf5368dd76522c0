"""``kubectl accel explain hpa/NAME [-n NS]``: why did my HPA (not) scale?

Installed as the ``kubectl-accel`` executable (a kubectl plugin). With the user's kubeconfig and
RBAC it reads the HPA, its target's Scale and pods, and per metric the adapter's ``Explanation``
(``explain.accel-metrics.io``, through the API server like any aggregated API), then replays the
controller's arithmetic (``adapter.explain.autoscaler``). The first line is the verdict.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from adapter.errors import AdapterError, ConfigError, NotFound
from adapter.explain import autoscaler, render
from adapter.explain.requests import metric_request
from adapter.hpa import parse_quantity

EXPLAIN_APISERVICE = "v1alpha1.explain.accel-metrics.io"


class Cluster:
    """What the plugin reads, as the user (``adapter.backends.kube_user``)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from adapter.backends.kube_user import UserKube  # noqa: PLC0415 - the client only when running

        self.kube = UserKube(kubeconfig, context)
        self.namespace = self.kube.namespace
        self._resources: dict[str, list[dict[str, Any]]] = {}

    def get(self, path: str) -> dict[str, Any]:
        base, _, query = path.partition("?")
        return self.kube.get(base, dict(parse_qsl(query)) if query else None)

    def resource(self, api_version: str, kind: str) -> tuple[str, str]:
        """(URL prefix of the group version, plural resource) of ``kind``, from discovery."""
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if prefix not in self._resources:
            self._resources[prefix] = list(self.get(prefix).get("resources") or [])
        for r in self._resources[prefix]:
            if r.get("kind") == kind and "/" not in r.get("name", ""):
                return prefix, str(r["name"])
        raise NotFound(f"{kind} is not served by {api_version}")

    def close(self) -> None:
        self.kube.close()


def _explain_error(e: AdapterError) -> str:
    if isinstance(e, NotFound) and "could not find the requested resource" in e.message:
        return f"the explain API is not installed (APIService {EXPLAIN_APISERVICE}): {e.message}"
    if " 403 " in e.message:
        return f"forbidden: {e.message} (grant get on explain.accel-metrics.io, e.g. the chart's " \
               "explain-reader ClusterRole)"
    return e.message


def _from_metrics_api(cluster: Cluster, api_path: str, why: str) -> dict[str, Any] | None:
    """Without an explanation, the values the HPA reads (the metrics API itself, if the user may read
    it): the calculation can still be replayed, only the trace is missing."""
    try:
        doc = cluster.get(api_path)
    except AdapterError:
        return None
    objs = []
    for i, item in enumerate(doc.get("items") or ()):
        if "describedObject" in item:
            name = str(item["describedObject"].get("name", i))
        else:
            name = ",".join(f"{k}={v}" for k, v in sorted((item.get("metricLabels") or {}).items())) or "{}"
        objs.append({"name": name, "served": True, "value": parse_quantity(str(item["value"]))})
    return {"kind": "Explanation", "served": bool(objs), "objects": objs, "fromMetricsApi": True,
            "summary": f"values read from the metrics API ({len(objs)} items); no trace: {why}"}


def explain_hpa(cluster: Cluster, namespace: str, name: str, now: float) -> dict[str, Any]:
    obj = cluster.get(f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}")
    ref = obj["spec"]["scaleTargetRef"]
    notes: list[str] = []
    scale: dict[str, Any] | None = None
    try:
        prefix, plural = cluster.resource(ref.get("apiVersion", "apps/v1"), ref["kind"])
        scale = cluster.get(f"{prefix}/namespaces/{namespace}/{plural}/{ref['name']}/scale")
    except AdapterError as e:
        notes.append(f"the scale target could not be read: {e.message}")
    selector = str((scale or {}).get("status", {}).get("selector", ""))
    pods: list[dict[str, Any]] = []
    if selector:
        pods = list(cluster.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}").get("items") or [])
    resource_of: dict[str, str] = {}
    for m in obj["spec"].get("metrics") or ():
        if m.get("type") == "Object":
            d = m["object"]["describedObject"]
            key = f"{d.get('apiVersion', '')}/{d['kind']}"
            try:
                prefix, plural = cluster.resource(d.get("apiVersion", "v1"), d["kind"])
                group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
                resource_of[key] = f"{plural}.{group}" if group else plural
            except AdapterError as e:
                notes.append(f"{d['kind']}: {e.message}")
    explained: list[autoscaler.Explained] = []
    for m in obj["spec"].get("metrics") or ():
        api_path, _, explain_path = metric_request(namespace, m, selector, resource_of)
        if not explain_path:
            explained.append(None)
            continue
        try:
            explained.append(cluster.get(explain_path))
        except AdapterError as e:
            why = _explain_error(e)
            explained.append(_from_metrics_api(cluster, api_path, why) or why)
    report = autoscaler.analyse(obj, scale, pods, explained, now, resource_of)
    report["notes"] = notes
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl accel", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("explain", help="why did an HPA (not) scale")
    e.add_argument("target", nargs="+", help="hpa/NAME (or: hpa NAME)")
    e.add_argument("-n", "--namespace")
    e.add_argument("--kubeconfig")
    e.add_argument("--context")
    e.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    return p


def _target(words: Sequence[str]) -> str:
    kind, _, name = words[0].partition("/")
    if not name and len(words) > 1:
        name = words[1]
    if kind.lower() not in ("hpa", "hpas", "horizontalpodautoscaler", "horizontalpodautoscalers",
                            "horizontalpodautoscaler.autoscaling") or not name:
        raise ConfigError(f"expected hpa/NAME, got {' '.join(words)!r}")
    return name


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        name = _target(args.target)
        cluster = Cluster(args.kubeconfig, args.context)
    except ConfigError as e:
        print(f"kubectl accel: {e.message}", file=sys.stderr)
        return 2
    try:
        report = explain_hpa(cluster, args.namespace or cluster.namespace, name, time.time())
    except AdapterError as e:
        print(f"kubectl accel: {e.message}", file=sys.stderr)
        return 1
    finally:
        cluster.close()
    out = render.hpa_report(report) if args.output == "text" else render.dump(report, args.output)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
