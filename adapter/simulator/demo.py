"""The realistic demo fleet (what ``accel-adapter simulate`` serves by default).

* ``gpu-a`` (p4d, 8x A100) and ``gpu-b`` (p5, 8x H100, GPU 0 in MIG mode), each with a
  dcgm-exporter DaemonSet pod; with layout ``mixed`` gpu-a is scraped as "exported" and gpu-b
  as "direct". Each node keeps an unallocated GPU (gpu-b also an unallocated MIG instance).
* ``trn1`` and ``inf2`` Neuron nodes running neuron-monitor, Neuron pods requesting
  ``aws.amazon.com/neuron``, ``neuroncore`` or ``neurondevice``, and CPU-only pods beside them.
* vLLM (3 models, one on Neuron; served names without '/', as ``--served-model-name`` sets them,
  so an HPA's External-metric selector can match them), Triton (2 models per pod), TGI servers.
* kube-state-metrics on a CPU node, with the HorizontalPodAutoscalers of the demo workloads
  (``kube_horizontalpodautoscaler_*``: what the HPA controller read and decided).
"""

from __future__ import annotations

from adapter.simulator.topology import (
    Hpa,
    HpaMetric,
    ModelServer,
    NeuronNode,
    NeuronRuntime,
    Node,
    PoolDemand,
    Topology,
    _Ids,
    _layouts,
    add_gpu_node,
    gpu,
)

A100, A100_FB = "NVIDIA A100-SXM4-40GB", 40960
H100, H100_FB = "NVIDIA H100 80GB HBM3", 81559
GPU = "nvidia.com/gpu"


def _app(name: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance, "app": instance}


def demo_topology(seed: int, layout: str = "mixed") -> Topology:
    ids = _Ids(seed)
    t = Topology()
    lay_a, lay_b = _layouts(layout, 2)

    cpu = ids.node(5, "m6i.4xlarge", zone="us-west-2b")
    t.nodes.append(cpu)
    t.ksm = ids.pod("monitoring", "kube-state-metrics", cpu, "kube-state-metrics",
                    labels=_app("kube-state-metrics", "kube-state-metrics"))
    t.pods.append(t.ksm)

    # gpu-a: vLLM 8B (3 x 1 GPU), vLLM 70B (1 x 4 GPUs), GPU 7 idle
    node_a = ids.node(1, "p4d.24xlarge")
    exp_a = add_gpu_node(t, ids, node_a, A100, A100_FB, 400.0, lay_a)
    for i in range(3):
        p = ids.pod("ml-serving", "vllm-llama3-8b", node_a, "vllm", deployment="vllm-llama3-8b",
                    labels=_app("vllm", "llama3-8b"), requests=((GPU, 1.0, "integer"),), phase=0.0)
        t.pods.append(p)
        t.gpus.append(gpu(ids, node_a, i, A100, A100_FB, 400.0, exp_a, lay_a, p))
        t.servers.append(ModelServer("vllm", p, ("llama-3.1-8b-instruct",), "vllm-llama3-8b", 4.0 + i))
    p = ids.pod("ml-serving", "vllm-llama3-70b", node_a, "vllm", deployment="vllm-llama3-70b",
                labels=_app("vllm", "llama3-70b"), requests=((GPU, 4.0, "integer"),), phase=0.25)
    t.pods.append(p)
    t.gpus.extend(gpu(ids, node_a, i, A100, A100_FB, 400.0, exp_a, lay_a, p) for i in range(3, 7))
    t.servers.append(ModelServer("vllm", p, ("llama-3.1-70b-instruct",), "vllm-llama3-70b", 2.0))
    t.gpus.append(gpu(ids, node_a, 7, A100, A100_FB, 400.0, exp_a, lay_a, None))

    # gpu-b: MIG on GPU 0, Triton (2 x 1 GPU), TGI (2 x 1 GPU), a 2-GPU trainer, GPU 7 idle
    node_b = ids.node(2, "p5.48xlarge")
    exp_b = add_gpu_node(t, ids, node_b, H100, H100_FB, 700.0, lay_b)
    mig = (("3g.40gb", 1, "alice"), ("2g.20gb", 5, None), ("1g.10gb", 13, "bob"))
    for profile, gi, user in mig:
        owner = None
        if user is not None:
            owner = ids.pod("research", f"notebook-{user}", node_b, "notebook", kind="StatefulSet",
                            name=f"notebook-{user}-0", owner=f"notebook-{user}", labels=_app("jupyter", user),
                            requests=((f"nvidia.com/mig-{profile}", 1.0, "integer"),), phase=0.5)
            t.pods.append(owner)
        fb = {"3g.40gb": 40192, "2g.20gb": 19968, "1g.10gb": 9728}[profile]
        t.gpus.append(gpu(ids, node_b, 0, H100, fb, 700.0, exp_b, lay_b, owner, mig_profile=profile,
                          mig_instance=gi))
    for i in range(2):
        p = ids.pod("ml-serving", "triton-vision", node_b, "triton", deployment="triton-vision",
                    labels=_app("triton", "vision"), requests=((GPU, 1.0, "integer"),), phase=0.1)
        t.pods.append(p)
        t.gpus.append(gpu(ids, node_b, 1 + i, H100, H100_FB, 700.0, exp_b, lay_b, p))
        t.servers.append(ModelServer("triton", p, ("resnet50", "densenet_onnx"), "triton-vision", 30.0 + 10 * i))
    for i in range(2):
        p = ids.pod("chat", "tgi-mistral-7b", node_b, "tgi", deployment="tgi-mistral-7b",
                    labels=_app("tgi", "mistral-7b"), requests=((GPU, 1.0, "integer"),), phase=0.6)
        t.pods.append(p)
        t.gpus.append(gpu(ids, node_b, 3 + i, H100, H100_FB, 700.0, exp_b, lay_b, p))
        t.servers.append(ModelServer("tgi", p, ("mistralai/Mistral-7B-Instruct-v0.3",), "tgi-mistral-7b", 3.0))
    p = ids.pod("training", "bert-finetune", node_b, "trainer", kind="StatefulSet", name="bert-finetune-0",
                owner="bert-finetune", labels=_app("trainer", "bert-finetune"), requests=((GPU, 2.0, "integer"),),
                phase=0.8)
    t.pods.append(p)
    t.gpus.extend(gpu(ids, node_b, i, H100, H100_FB, 700.0, exp_b, lay_b, p) for i in (5, 6))
    t.gpus.append(gpu(ids, node_b, 7, H100, H100_FB, 700.0, exp_b, lay_b, None))

    # Neuron: trn1 with two trainers + a CPU-only pod; inf2 with a vLLM server + a gateway
    for subnet, itype, devices in ((3, "trn1.32xlarge", 16), (4, "inf2.24xlarge", 6)):
        node = ids.node(subnet, itype)
        t.nodes.append(node)
        mon = ids.pod("kube-system", "neuron-monitor", node, "neuron-monitor", kind="DaemonSet",
                      owner="neuron-monitor", labels={"app": "neuron-monitor"})
        t.pods.append(mon)
        host = NeuronNode(node, mon, devices)
        t.neuron_nodes.append(host)
        if itype.startswith("trn1"):
            specs = [("aws.amazon.com/neuron", 8.0, tuple(range(16)), "llama-pretrain-0"),
                     ("aws.amazon.com/neuroncore", 8.0, tuple(range(16, 24)), "llama-pretrain-1")]
            for k, (res, amount, cores, name) in enumerate(specs):
                p = ids.pod("neuron-training", "llama-pretrain", node, "trainer", kind="StatefulSet", name=name,
                            owner="llama-pretrain", labels=_app("neuronx-trainer", "llama-pretrain"),
                            requests=((res, amount, "integer"),), phase=0.3)
                t.pods.append(p)
                t.runtimes.append(NeuronRuntime(host, p, str(4100 + k), cores, 0.2 + 0.1 * k, 0.85, 0.05, 0.4,
                                                12e9 + 2e9 * k))
            t.pods.append(ids.pod("neuron-training", "data-prep", node, "prep", deployment="data-prep",
                                  labels=_app("data-prep", "data-prep")))
        else:
            p = ids.pod("ml-serving", "vllm-neuron-llama32-3b", node, "vllm", deployment="vllm-neuron-llama32-3b",
                        labels=_app("vllm", "neuron-llama32-3b"),
                        requests=(("aws.amazon.com/neurondevice", 6.0, "integer"),), phase=0.45)
            t.pods.append(p)
            t.runtimes.append(NeuronRuntime(host, p, "2871", tuple(range(12)), 0.15, 0.75, 0.012, 0.2, 6e9))
            # an older vLLM build on Neuron: the pre-0.9 KV-cache name
            t.servers.append(ModelServer("vllm", p, ("llama-3.2-3b-instruct",),
                                         "vllm-neuron-llama32-3b", 6.0, legacy_names=True))
            t.pods.append(ids.pod("ml-serving", "api-gateway", node, "gateway", deployment="api-gateway",
                                  labels=_app("api-gateway", "api-gateway")))
    _llm_d(t, ids, cpu, lay_a)
    t.hpas.extend(demo_hpas())
    return t


L40S, L40S_FB = "NVIDIA L40S", 46068


def _llm_d(t: Topology, ids: _Ids, cpu: Node, layout: str) -> None:
    """gpu-c (g6e, 4x L40S): SGLang (1 GPU) and NIM (2 GPUs) servers and an idle GPU; the llm-d gateway
    (EPP) and WVA on the CPU node, with demand for a model whose Deployment has zero pods (scale from zero)."""
    node_c = ids.node(6, "g6e.12xlarge")
    exp_c = add_gpu_node(t, ids, node_c, L40S, L40S_FB, 350.0, layout)
    specs = (("sglang", "sglang-qwen2-7b", "qwen2.5-7b-instruct", 0.35, (0,)),
             ("nim", "nim-llama3-8b", "meta/llama-3.1-8b-instruct", 0.7, (1, 2)))  # NIM: tensor parallel 2
    for kind, dep, model, phase, gpus in specs:
        p = ids.pod("ml-serving", dep, node_c, kind, deployment=dep, labels=_app(kind, dep),
                    requests=((GPU, float(len(gpus)), "integer"),), phase=phase)
        t.pods.append(p)
        t.gpus.extend(gpu(ids, node_c, i, L40S, L40S_FB, 350.0, exp_c, layout, p) for i in gpus)
        t.servers.append(ModelServer(kind, p, (model,), dep, 5.0))
    t.gpus.append(gpu(ids, node_c, 3, L40S, L40S_FB, 350.0, exp_c, layout, None))
    t.gateway = ids.pod("ml-serving", "llm-d-epp", cpu, "epp", deployment="llm-d-epp",
                        labels=_app("llm-d-epp", "llm-d-epp"))
    t.wva = ids.pod("workload-variant-autoscaler-system", "workload-variant-autoscaler-controller-manager", cpu,
                    "manager", deployment="workload-variant-autoscaler-controller-manager",
                    labels={"control-plane": "controller-manager"})
    t.pods += [t.gateway, t.wva]
    t.demand += [PoolDemand("ml-serving", "llama3-8b-pool", "llama-3.1-8b-instruct", "vllm-llama3-8b", 0.0, 24.0),
                 # no pods: the HPA has scaled it to zero; demand waits at the gateway
                 PoolDemand("ml-serving", "granite-pool", "granite-3.3-8b-instruct", "vllm-granite-8b", 0.2, 6.0)]


def demo_hpas() -> list[Hpa]:
    """The demo's HPAs (``adapter.demo`` drives the same targets): Pods and External, one with two metrics."""
    return [
        Hpa("ml-serving", "vllm-llama3-8b", "vllm-llama3-8b",
            (HpaMetric("vllm_requests_waiting", "Pods", 5.0),
             HpaMetric("nvidia_gpu_utilization_percent", "Pods", 60.0)), 1, 10),
        Hpa("ml-serving", "triton-vision", "triton-vision", (HpaMetric("triton_pending_requests", "Pods", 4.0),),
            1, 8),
        Hpa("ml-serving", "vllm-neuron-llama32-3b", "vllm-neuron-llama32-3b",
            (HpaMetric("neuron_core_utilization_ratio", "Pods", 0.7),), 1, 6),
        Hpa("chat", "tgi-mistral-7b", "tgi-mistral-7b",
            (HpaMetric("tgi_requests_waiting", "External", 8.0, "average", "tgi-mistral-7b"),), 1, 8),
    ]
