"""Ground truth: what each preset metric must return for the simulated fleet.

``Truth.custom[metric][(namespace, pod)]`` and ``Truth.external[metric][(namespace, key)]``
(key = vLLM/SGLang/NIM ``model_name``, Triton ``model``, TGI ``service``; llm-d: the gateway queue's
``target_model_name``, WVA's ``variant_name``); saturation metrics use the presets' default params.
A pod or model absent from a metric's dict must be absent from the adapter's answer (never reported as 0).

Gauges are taken at ``now``; rates and histogram quantiles over ``[now - window, now]`` (the
presets use 1m windows). Quantile metrics give what ``histogram_quantile`` returns on the
exact bucket rates; ``Truth.exact`` has the underlying distribution's quantile for them (per pod).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import fmean
from typing import TYPE_CHECKING

from adapter.presets import PARAMS
from adapter.simulator import values as V
from adapter.simulator.histograms import MixtureHistogram
from adapter.simulator.topology import ModelServer

if TYPE_CHECKING:
    from adapter.simulator.fleet import Fleet

Key = tuple[str, str]
Table = dict[str, dict[Key, float]]
NEURON_RESOURCES = ("aws.amazon.com/neuron", "aws.amazon.com/neuroncore", "aws.amazon.com/neurondevice")


@dataclass
class Truth:
    time: float
    window: float
    custom: Table = field(default_factory=lambda: defaultdict(dict))
    external: Table = field(default_factory=lambda: defaultdict(dict))
    exact: Table = field(default_factory=lambda: defaultdict(dict))


def _avg_max(t: Truth, name: str, unit: str, per_pod: dict[Key, list[float]]) -> None:
    for key, vals in per_pod.items():
        if vals:
            t.custom[f"{name}_{unit}"][key] = fmean(vals)
            t.custom[f"{name}_max_{unit}"][key] = max(vals)


def _dcgm(f: Fleet, t: Truth) -> None:
    cols: dict[str, dict[Key, list[float]]] = defaultdict(lambda: defaultdict(list))
    for g in f.topology.gpus:
        if g.owner is None:
            continue
        s = V.gpu_sample(g, f.load(g.owner, t.time))
        k = g.owner.key
        for name, v in (("util", s.util), ("engine", s.engine), ("tensor", s.tensor), ("fb", s.fb_ratio),
                        ("power", s.power)):
            if v is not None:
                cols[name][k].append(float(v))
    _avg_max(t, "nvidia_gpu_utilization", "percent", cols["util"])
    _avg_max(t, "nvidia_gpu_engine_active", "ratio", cols["engine"])
    _avg_max(t, "nvidia_gpu_tensor_active", "ratio", cols["tensor"])
    _avg_max(t, "nvidia_gpu_memory_used", "ratio", cols["fb"])
    _avg_max(t, "nvidia_gpu_power", "watts", cols["power"])


def _neuron(f: Fleet, t: Truth) -> None:
    for host in f.topology.neuron_nodes:
        rts = [r for r in f.topology.runtimes if r.host is host]
        if not rts:
            continue
        loads = {r.runtime_tag: f.load(r.pod, t.time) for r in rts}
        node_values = {
            "neuron_core_utilization_ratio": fmean(V.core_utilization(r, c, loads[r.runtime_tag])
                                                   for r in rts for c in r.cores),
            "neuron_device_memory_used_bytes": float(sum(V.device_memory(r, loads[r.runtime_tag]) for r in rts)),
            "neuron_execution_latency_p50_seconds": max(V.latency(r, "p50", loads[r.runtime_tag]) for r in rts),
            "neuron_execution_latency_p99_seconds": max(V.latency(r, "p99", loads[r.runtime_tag]) for r in rts),
            "neuron_execution_errors_per_second": sum(
                r.error_rate * (V.ERROR_SHARES["generic"] + V.ERROR_SHARES["numerical"])
                * f.mean_load(r.pod, t.time, t.window) for r in rts),
        }
        for p in f.topology.pods:
            if p.node == host.node.name and any(res in NEURON_RESOURCES and n > 0 for res, n, _ in p.requests):
                for name, v in node_values.items():
                    t.custom[name][p.key] = v


def _quantiles(t: Truth, table: Table, key: Key, prefix: str, h: MixtureHistogram,
               parts: list[tuple[float, float]], qs: tuple[float, ...]) -> None:
    """``parts``: (observation rate, slow weight) of each series summed into this key."""
    total = sum(r for r, _ in parts)
    if total <= 0:
        return
    w = sum(r * wt for r, wt in parts) / total
    for q in qs:
        name = f"{prefix}_p{round(q * 100)}_seconds"
        table[name][key] = h.histogram_quantile(q, w)
        if table is t.custom:
            t.exact[name][key] = h.quantile(q, w)


def _servers(f: Fleet, t: Truth) -> None:
    by_pod: dict[tuple[str, Key], list[tuple[ModelServer, str]]] = defaultdict(list)
    by_model: dict[tuple[str, Key], list[tuple[ModelServer, str]]] = defaultdict(list)
    for s in f.topology.servers:
        for m in s.models:
            by_pod[(s.kind, s.pod.key)].append((s, m))
            ext = m if s.kind != "tgi" else s.service
            by_model[(s.kind, (s.pod.namespace, ext))].append((s, m))
    for target, groups in ((t.custom, by_pod), (t.external, by_model)):
        for (kind, key), members in groups.items():
            now = [f.load(s.pod, t.time) for s, _ in members]
            avg = [f.mean_load(s.pod, t.time, t.window) for s, _ in members]
            rates = [s.request_rate for s, _ in members]
            parts = list(zip(rates, avg, strict=True))
            if kind == "vllm":
                _openai(target, key, "vllm", "vllm_kv_cache_usage_ratio", now, parts, ext=target is t.external)
                target["vllm_generation_tokens_per_second"][key] = sum(
                    r * (V.VLLM_GEN_TOKENS_BASE + V.VLLM_GEN_TOKENS_LOAD * a) for r, a in parts)
                _quantiles(t, target, key, "vllm_time_to_first_token", V.VLLM_TTFT, parts, (0.5, 0.95))
                _quantiles(t, target, key, "vllm_e2e_request_latency", V.VLLM_E2E, parts, (0.5, 0.95))
            elif kind in ("sglang", "nim"):
                usage = "sglang_token_usage_ratio" if kind == "sglang" else "nim_kv_cache_usage_ratio"
                _openai(target, key, kind, usage, now, parts, ext=target is t.external)
                _quantiles(t, target, key, f"{kind}_time_to_first_token", V.VLLM_TTFT, parts, (0.95,))
                _quantiles(t, target, key, f"{kind}_e2e_request_latency", V.VLLM_E2E, parts, (0.95,))
            elif kind == "triton":
                total = sum(rates)
                pending = [float(V.triton_pending(x)) for x in now]
                target["triton_pending_requests"][key] = sum(pending)
                for name, (base, per_load) in (("triton_queue_time_per_request_microseconds", V.TRITON_QUEUE_US),
                                               ("triton_request_duration_per_request_microseconds",
                                                V.TRITON_REQUEST_US)):
                    target[name][key] = sum(r * (base + per_load * a) for r, a in parts) / total
                target["triton_inferences_per_second"][key] = total * V.TRITON_BATCH
                target["triton_request_success_per_second"][key] = total
                p = PARAMS["triton"]
                tp = fmean(pending) if target is t.external else sum(pending)
                target["triton_saturation_ratio"][key] = max(
                    tp / p["queuePerReplica"].default,
                    target["triton_queue_time_per_request_microseconds"][key]
                    / p["queueTimeTargetMicroseconds"].default)
            else:
                tq = [float(V.tgi_queue_size(x)) for x in now]
                tb = [float(V.tgi_batch_size(x)) for x in now]
                target["tgi_requests_waiting"][key] = sum(tq)
                target["tgi_requests_running"][key] = sum(tb)
                target["tgi_generation_tokens_per_second"][key] = sum(r * V.TGI_TOKENS.mean(a) for r, a in parts)
                _quantiles(t, target, key, "tgi_request_duration", V.TGI_DURATION, parts, (0.5, 0.95))
                _quantiles(t, target, key, "tgi_request_queue_duration", V.TGI_QUEUE, parts, (0.95,))
                p = PARAMS["tgi"]
                q_, b_ = (fmean(tq), fmean(tb)) if target is t.external else (sum(tq), sum(tb))
                target["tgi_saturation_ratio"][key] = max(q_ / p["queuePerReplica"].default,
                                                          b_ / p["batchPerReplica"].default)


def _openai(target: Table, key: Key, kind: str, usage_metric: str, now: list[float],
            parts: list[tuple[float, float]], ext: bool) -> None:
    """Queue, running, KV-cache usage and saturation of vLLM-like servers (vLLM, SGLang, NIM)."""
    waiting = [float(V.requests_waiting(x)) for x in now]
    usage = [V.kv_cache_usage(x) for x in now]
    target[f"{kind}_requests_waiting"][key] = sum(waiting)
    target[f"{kind}_requests_running"][key] = float(sum(map(V.requests_running, now)))
    target[usage_metric][key] = max(usage)
    p = PARAMS[kind]
    usage_param = p["tokenUsageTarget" if kind == "sglang" else "kvCacheTarget"].default
    # per pod: the pod's queue and its fullest engine; per model (External): the averages per pod
    queue, full = (fmean(waiting), fmean(usage)) if ext else (sum(waiting), max(usage))
    target[f"{kind}_saturation_ratio"][key] = max(queue / p["queuePerReplica"].default, full / usage_param)


def _llm_d(f: Fleet, t: Truth) -> None:
    pods: dict[tuple[str, str], int] = defaultdict(int)
    for p in f.topology.pods:
        pods[(p.namespace, p.deployment)] += 1
    for d in f.topology.demand:
        q = V.gateway_queue(d.queue_at_full, f.curve.load(t.time, d.phase))
        t.external["llmd_gateway_queue_requests"][(d.namespace, d.model)] = float(q)
        if f.topology.wva is not None:
            t.external["wva_desired_replicas"][(d.namespace, d.deployment)] = float(
                V.wva_desired(pods[(d.namespace, d.deployment)], q))


def compute(f: Fleet, now: float, window: float) -> Truth:
    t = Truth(time=now, window=window)
    _dcgm(f, t)
    _neuron(f, t)
    _servers(f, t)
    _llm_d(f, t)
    return t
