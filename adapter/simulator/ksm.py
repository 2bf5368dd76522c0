"""kube-state-metrics series for the simulated cluster (static: rendered once).

Label names and values follow kube-state-metrics v2: pod labels as ``label_<sanitized>`` (they
need ``--metric-labels-allowlist`` in a real cluster), extended resources sanitized
(``nvidia.com/gpu`` -> ``nvidia_com_gpu``), ``provider_id`` on ``kube_node_info``.
"""

from __future__ import annotations

from collections import Counter

from adapter.simulator import labels as L
from adapter.simulator.topology import Topology

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def _head(out: list[str], name: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} gauge")


def render_ksm(topo: Topology) -> list[str]:
    if topo.ksm is None:
        return []
    own = L.ksm(topo.ksm)
    nodes = {n.name: n for n in topo.nodes}
    out: list[str] = []

    def line(name: str, pairs: L.Labels, value: float = 1) -> None:
        names = {k for k, _ in pairs}  # honorLabels: the subject's labels win over KSM's target labels
        out.append(f"{name}{L.fmt([*pairs, *(kv for kv in own if kv[0] not in names)])} {value}")

    _head(out, "kube_node_info", "Information about a cluster node.")
    for n in topo.nodes:
        line("kube_node_info", L.ksm_node_info(n))
    _head(out, "kube_pod_info", "Information about pod.")
    for p in topo.pods:
        line("kube_pod_info", L.ksm_pod_info(p, nodes[p.node]))
    _head(out, "kube_pod_labels", "Kubernetes labels converted to Prometheus labels.")
    for p in topo.pods:
        line("kube_pod_labels", L.ksm_pod_labels(p))
    _head(out, "kube_pod_owner", "Information about the Pod's owner.")
    for p in topo.pods:
        line("kube_pod_owner", [*L.ksm_pod(p), ("owner_kind", p.owner_kind), ("owner_name", p.owner_name),
                                ("owner_is_controller", "true")])
    _head(out, "kube_pod_status_phase", "The pods current phase.")
    for p in topo.pods:
        for ph in PHASES:
            line("kube_pod_status_phase", [*L.ksm_pod(p), ("phase", ph)], int(ph == "Running"))
    _head(out, "kube_pod_status_ready", "Describes whether the pod is ready to serve requests.")
    for p in topo.pods:
        for cond in ("true", "false", "unknown"):
            line("kube_pod_status_ready", [*L.ksm_pod(p), ("condition", cond)], int(cond == "true"))
    _head(out, "kube_pod_container_resource_requests", "The number of requested request resource by a container.")
    for p in topo.pods:
        for res, amount, unit in p.requests:
            line("kube_pod_container_resource_requests",
                 [*L.ksm_pod(p), ("container", p.container), ("node", p.node), ("resource", L.ksm_sanitize(res)),
                  ("unit", unit)], int(amount) if float(amount).is_integer() else amount)
    replicas = Counter((p.namespace, p.deployment, p.owner_name) for p in topo.pods if p.deployment)
    _head(out, "kube_replicaset_owner", "Information about the ReplicaSet's owner.")
    for (ns, dep, rs) in replicas:
        line("kube_replicaset_owner", [("namespace", ns), ("replicaset", rs), ("owner_kind", "Deployment"),
                                       ("owner_name", dep), ("owner_is_controller", "true")])
    per_dep: Counter[tuple[str, str]] = Counter()
    for (ns, dep, _), count in replicas.items():
        per_dep[(ns, dep)] += count
    for name, help_text in (("kube_deployment_spec_replicas", "Number of desired pods for a deployment."),
                            ("kube_deployment_status_replicas_ready", "The number of ready replicas per deployment.")):
        _head(out, name, help_text)
        for (ns, dep), count in sorted(per_dep.items()):
            line(name, [("namespace", ns), ("deployment", dep)], count)
    return out
