"""The simulated cluster: nodes, pods, GPUs, Neuron runtimes and model servers.

Pure data, built deterministically from a seed. ``demo_topology`` is the realistic fleet used by
the demo and the tests; ``scale_topology`` is a synthetic GPU fleet for benchmarks.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

LAYOUTS = ("exported", "direct", "mixed")


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    instance_id: str
    instance_type: str
    zone: str
    internal_ip: str

    @property
    def provider_id(self) -> str:
        return f"aws:///{self.zone}/{self.instance_id}"


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    node: str
    uid: str
    ip: str
    container: str
    owner_kind: str = "ReplicaSet"
    owner_name: str = ""
    deployment: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    requests: tuple[tuple[str, float, str], ...] = ()  # (resource, amount, KSM unit)
    phase: float = 0.0  # load-curve phase offset, in periods

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


@dataclass(frozen=True, slots=True)
class Gpu:
    """A physical GPU, or one MIG instance of it when ``mig_profile`` is set."""

    node: Node
    index: int
    uuid: str
    model: str
    exporter: Pod
    layout: str  # "exported" (honorLabels false) or "direct" (honorLabels true)
    owner: Pod | None = None
    fb_total_mib: int = 40960
    mig_profile: str = ""
    mig_instance: int = 0
    lo: float = 0.1  # utilization at load 0 (fraction)
    hi: float = 0.9  # utilization at load 1 (fraction)
    tdp_watts: float = 400.0


@dataclass(frozen=True, slots=True)
class NeuronNode:
    node: Node
    monitor: Pod
    devices: int
    cores_per_device: int = 2


@dataclass(frozen=True, slots=True)
class NeuronRuntime:
    """One Neuron application (``runtime_tag``) of a pod, using some NeuronCores of its node."""

    host: NeuronNode
    pod: Pod
    runtime_tag: str
    cores: tuple[int, ...]
    lo: float = 0.1
    hi: float = 0.9
    latency_p50: float = 0.02  # seconds at load 0; doubles at load 1
    error_rate: float = 0.5  # errors/s at load 1
    device_memory_bytes: float = 8e9


@dataclass(frozen=True, slots=True)
class ModelServer:
    kind: str  # "vllm" | "triton" | "tgi" | "sglang" | "nim"
    pod: Pod
    models: tuple[str, ...]
    service: str
    request_rate: float = 5.0  # requests/s per model (constant; latency follows the load)
    legacy_names: bool = False  # vLLM: the pre-0.9 KV-cache name (vllm:gpu_cache_usage_perc)


@dataclass(frozen=True, slots=True)
class PoolDemand:
    """Requests held at the inference gateway (llm-d EPP flow control) for one model of an
    InferencePool, and the replicas WVA wants for its Deployment (which may have zero pods)."""

    namespace: str
    pool: str  # inference_pool
    model: str  # target_model_name
    deployment: str  # WVA's variant_name
    phase: float
    queue_at_full: float  # requests queued at load 1


@dataclass(frozen=True, slots=True)
class HpaMetric:
    """One ``spec.metrics`` entry: a Pods metric (``averageValue``) or an External one."""

    name: str
    kind: str  # "Pods" | "External"
    target: float
    target_type: str = "average"  # kube-state-metrics' metric_target_type: "average" | "value"
    external_key: str = ""  # External: the selected model / service


@dataclass(frozen=True, slots=True)
class Hpa:
    """A HorizontalPodAutoscaler over a Deployment, as kube-state-metrics reports it."""

    namespace: str
    name: str
    deployment: str
    metrics: tuple[HpaMetric, ...]
    min_replicas: int = 1
    max_replicas: int = 10


@dataclass
class Topology:
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    gpus: list[Gpu] = field(default_factory=list)
    neuron_nodes: list[NeuronNode] = field(default_factory=list)
    runtimes: list[NeuronRuntime] = field(default_factory=list)
    servers: list[ModelServer] = field(default_factory=list)
    hpas: list[Hpa] = field(default_factory=list)
    demand: list[PoolDemand] = field(default_factory=list)
    gateway: Pod | None = None  # the EPP pod (llm-d inference scheduler)
    wva: Pod | None = None  # the Workload Variant Autoscaler controller
    ksm: Pod | None = None


class _Ids:
    """Deterministic names, ids and addresses from the seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"accel-sim/{seed}")  # noqa: S311 - simulation, not security
        self._ip = 20
        self._rs: dict[tuple[str, str], str] = {}

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def suffix(self, n: int = 5) -> str:
        return "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ip(self, subnet: int) -> str:
        self._ip += 1
        return f"10.0.{subnet}.{self._ip % 250 + 2}"

    def node(self, subnet: int, instance_type: str, zone: str = "us-west-2a") -> Node:
        octet = subnet * 10 + 3
        return Node(name=f"ip-10-0-{subnet}-{octet}.us-west-2.compute.internal", instance_id=f"i-0{self.hex(16)}",
                    instance_type=instance_type, zone=zone, internal_ip=f"10.0.{subnet}.{octet}")

    def pod(self, ns: str, base: str, node: Node, container: str, *, kind: str = "ReplicaSet",
            deployment: str = "", labels: dict[str, str] | None = None,
            requests: tuple[tuple[str, float, str], ...] = (), phase: float = 0.0,
            name: str | None = None, owner: str | None = None) -> Pod:
        rs = base
        if kind == "ReplicaSet":  # one ReplicaSet per Deployment
            rs = self._rs.setdefault((ns, base), f"{base}-{self.suffix(10)}")
        pod_name = name or (f"{rs}-{self.suffix()}" if kind != "StatefulSet" else base)
        lbls = dict(labels or {})
        if kind == "ReplicaSet":
            lbls.setdefault("pod-template-hash", rs.rsplit("-", 1)[1])
        base_requests = (("cpu", 1.0, "core"), ("memory", 4.0 * 2**30, "byte"))
        subnet = int(node.internal_ip.split(".")[2])
        return Pod(namespace=ns, name=pod_name, node=node.name, uid=self.uid(), ip=self.ip(subnet),
                   container=container, owner_kind=kind, owner_name=owner or rs, deployment=deployment,
                   labels=tuple(sorted(lbls.items())), requests=base_requests + requests, phase=phase)

    def gpu_uuid(self) -> str:
        h = self.hex(32)
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _layouts(layout: str, n: int) -> list[str]:
    if layout not in LAYOUTS:
        raise ValueError(f"dcgm layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "mixed":
        return ["exported" if i % 2 == 0 else "direct" for i in range(n)]
    return [layout] * n


def add_gpu_node(topo: Topology, ids: _Ids, node: Node, model: str, fb: int, tdp: float, layout: str) -> Pod:
    """Register ``node`` with its dcgm-exporter DaemonSet pod; returns the exporter pod."""
    topo.nodes.append(node)
    exporter = ids.pod("gpu-operator", "nvidia-dcgm-exporter", node, "nvidia-dcgm-exporter", kind="DaemonSet",
                       owner="nvidia-dcgm-exporter", labels={"app": "nvidia-dcgm-exporter"})
    topo.pods.append(exporter)
    return exporter


def gpu(ids: _Ids, node: Node, index: int, model: str, fb: int, tdp: float, exporter: Pod, layout: str,
        owner: Pod | None, **kw: object) -> Gpu:
    r = random.Random(f"{ids.rng.random()}")  # noqa: S311 - simulation, not security
    lo, hi = round(r.uniform(0.05, 0.2), 3), round(r.uniform(0.7, 0.98), 3)
    return Gpu(node=node, index=index, uuid=ids.gpu_uuid(), model=model, exporter=exporter, layout=layout,
               owner=owner, fb_total_mib=fb, lo=lo, hi=hi, tdp_watts=tdp, **kw)  # type: ignore[arg-type]


def scale_topology(seed: int, namespaces: int, pods_per_namespace: int, layout: str = "mixed") -> Topology:
    """``namespaces`` x ``pods_per_namespace`` single-GPU pods on 8-GPU nodes, plus KSM series."""
    ids = _Ids(seed)
    topo = Topology()
    cpu = ids.node(250, "m6i.4xlarge")
    topo.nodes.append(cpu)
    topo.ksm = ids.pod("monitoring", "kube-state-metrics", cpu, "kube-state-metrics")
    topo.pods.append(topo.ksm)
    total = namespaces * pods_per_namespace
    n_nodes = (total + 7) // 8
    layouts = _layouts(layout, n_nodes)
    exporters: list[tuple[Node, Pod, str]] = []
    for i in range(n_nodes):
        node = ids.node(100 + i // 200, "p4d.24xlarge")
        node = Node(f"gpu-{i:04d}.us-west-2.compute.internal", node.instance_id, node.instance_type,
                    node.zone, f"10.1.{i // 250}.{i % 250 + 2}")
        exporters.append((node, add_gpu_node(topo, ids, node, "NVIDIA A100-SXM4-40GB", 40960, 400.0, layouts[i]),
                          layouts[i]))
    k = 0
    for n in range(namespaces):
        ns = f"bench-{n:03d}"
        phase = (n * 0.137) % 1.0
        for _ in range(pods_per_namespace):
            node, exporter, lay = exporters[k // 8]
            p = ids.pod(ns, "gpu-app", node, "app", deployment="gpu-app", labels={"app": "gpu-app"},
                        requests=(("nvidia.com/gpu", 1.0, "integer"),), phase=phase)
            topo.pods.append(p)
            topo.gpus.append(gpu(ids, node, k % 8, "NVIDIA A100-SXM4-40GB", 40960, 400.0, exporter, lay, p))
            k += 1
    return topo
