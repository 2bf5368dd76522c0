"""Label sets exactly as the real exporters (after Prometheus' scrape) carry them.

Each function returns ``(name, value)`` pairs; ``fmt`` turns them into the ``{...}`` part of a
sample line once, so scrapes only format numbers.
"""

from __future__ import annotations

import re

from adapter.simulator.topology import Gpu, ModelServer, NeuronNode, Node, Pod, PoolDemand

Labels = list[tuple[str, str]]
DRIVER_VERSION = "550.54.15"
_KSM_BAD = re.compile(r"[^a-zA-Z0-9_]")


def fmt(pairs: Labels) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs) + "}"


def ksm_sanitize(name: str) -> str:
    """kube-state-metrics' label/resource name sanitizing: every invalid character becomes ``_``."""
    return _KSM_BAD.sub("_", name)


def target(pod: Pod, service: str, port: int, endpoint: str = "metrics") -> Labels:
    """Labels a ServiceMonitor adds for the scraped pod (prometheus-operator's target labels)."""
    return [("container", pod.container), ("endpoint", endpoint), ("instance", f"{pod.ip}:{port}"),
            ("job", service), ("namespace", pod.namespace), ("pod", pod.name), ("service", service)]


def dcgm(g: Gpu) -> Labels:
    """dcgm-exporter's template; pod labels per ``g.layout``.

    ``exported``: honorLabels false - the workload is in ``exported_*``, ``namespace``/``pod`` are
    the exporter's; a GPU with no workload only has the exporter's. ``direct``: honorLabels true -
    ``namespace``/``pod`` are the workload's; empty (so dropped by Prometheus) when unallocated.
    """
    bus = f"00000000:{0x10 + g.index * 0x10:02X}:00.0"
    pairs: Labels = [("gpu", str(g.index)), ("UUID", g.uuid), ("pci_bus_id", bus), ("device", f"nvidia{g.index}"),
                     ("modelName", g.model)]
    if g.mig_profile:
        pairs += [("GPU_I_PROFILE", g.mig_profile), ("GPU_I_ID", str(g.mig_instance))]
    pairs += [("Hostname", g.node.name), ("DCGM_FI_DRIVER_VERSION", DRIVER_VERSION)]
    tgt = target(g.exporter, "nvidia-dcgm-exporter", 9400, "gpu-metrics")
    if g.layout == "exported":
        if g.owner is not None:
            pairs += [("exported_container", g.owner.container), ("exported_namespace", g.owner.namespace),
                      ("exported_pod", g.owner.name)]
        return pairs + tgt
    o = g.owner
    workload = [("container", o.container if o else ""), ("namespace", o.namespace if o else ""),
                ("pod", o.name if o else "")]
    return pairs + workload + [kv for kv in tgt if kv[0] not in ("container", "namespace", "pod")]


def neuron_instance(host: NeuronNode) -> Labels:
    n = host.node
    return [("availability_zone", n.zone), ("instance_id", n.instance_id), ("instance_name", n.name.split(".")[0]),
            ("instance_type", n.instance_type), ("region", n.zone[:-1]), ("subnet_id", "subnet-0a1b2c3d4e5f60718")]


def neuron_target(host: NeuronNode) -> Labels:
    return target(host.monitor, "neuron-monitor", 8000)


def server(s: ModelServer, model: str) -> Labels:
    port = {"vllm": 8000, "triton": 8002, "tgi": 80, "sglang": 30000, "nim": 8000}[s.kind]
    tgt = target(s.pod, s.service, port, "http")
    if s.kind == "vllm":
        return [("engine", "0"), ("model_name", model), *tgt]
    if s.kind in ("sglang", "nim"):
        return [("model_name", model), *tgt]
    if s.kind == "triton":
        return [("model", model), ("version", "1"), *tgt]
    return tgt


def ksm(ksm_pod: Pod) -> Labels:
    """KSM's own target labels minus namespace/pod (honorLabels true keeps the subject's)."""
    return [kv for kv in target(ksm_pod, "kube-state-metrics", 8080, "http") if kv[0] not in ("namespace", "pod")]


def ksm_pod(p: Pod) -> Labels:
    return [("namespace", p.namespace), ("pod", p.name), ("uid", p.uid)]


def ksm_pod_info(p: Pod, node: Node) -> Labels:
    created_kind = "ReplicaSet" if p.owner_kind == "ReplicaSet" else p.owner_kind
    return [*ksm_pod(p), ("host_ip", node.internal_ip), ("pod_ip", p.ip), ("node", p.node),
            ("created_by_kind", created_kind), ("created_by_name", p.owner_name), ("priority_class", ""),
            ("host_network", "false")]


def ksm_pod_labels(p: Pod) -> Labels:
    return [*ksm_pod(p), *((f"label_{ksm_sanitize(k)}", v) for k, v in p.labels)]


def ksm_node_info(n: Node) -> Labels:
    return [("node", n.name), ("provider_id", n.provider_id), ("internal_ip", n.internal_ip),
            ("kernel_version", "6.1.102-111.182.amzn2023.x86_64"), ("os_image", "Amazon Linux 2023.5.20240819"),
            ("container_runtime_version", "containerd://1.7.20"), ("kubelet_version", "v1.30.2-eks-1552ad0"),
            ("kubeproxy_version", "deprecated"), ("system_uuid", f"ec2{n.instance_id[2:10]}")]


def epp(gateway: Pod, d: PoolDemand, priority: str, fairness_id: str) -> Labels:
    """The EPP's flow-control labels (gateway-api-inference-extension metrics guide) + its target labels."""
    return [("fairness_id", fairness_id), ("inference_pool", d.pool), ("model_name", d.model),
            ("priority", priority), ("target_model_name", d.model), *target(gateway, "llm-d-epp", 9090)]


def wva(controller: Pod, d: PoolDemand) -> Labels:
    """WVA's labels as stored after a honorLabels-false scrape: its namespace label -> exported_namespace."""
    return [("accelerator_type", "L40S"), ("exported_namespace", d.namespace), ("variant_name", d.deployment),
            *target(controller, "workload-variant-autoscaler-controller-manager-metrics-service", 8443, "https")]
