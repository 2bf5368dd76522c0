"""Prometheus text exposition (format 0.0.4) of a ``Fleet`` at a given time.

All label strings are formatted once in ``__init__``; a scrape only computes and formats values,
so a 2,000-GPU fleet renders in a few tens of milliseconds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from adapter.simulator import labels as L
from adapter.simulator import values as V
from adapter.simulator.histograms import MixtureHistogram
from adapter.simulator.hpas import render_hpas
from adapter.simulator.ksm import render_ksm
from adapter.simulator.topology import NeuronRuntime

if TYPE_CHECKING:
    from adapter.simulator.fleet import Fleet

DCGM_FIELDS = (
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "util"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "mem_copy"),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "fb_used"),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "fb_free"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "temp"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.", "engine"),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.", "tensor"),
)


# SGLang (docs/references/production_metrics.md) and NVIDIA NIM for LLMs (observability page): the same
# signals as vLLM under their own names; values from the same functions.
OPENAI_SERVERS = {
    "sglang": {"waiting": "sglang:num_queue_reqs", "running": "sglang:num_running_reqs", "usage": "sglang:token_usage",
               "ttft": "sglang:time_to_first_token_seconds", "e2e": "sglang:e2e_request_latency_seconds"},
    "nim": {"waiting": "num_requests_waiting", "running": "num_requests_running", "usage": "gpu_cache_usage_perc",
            "ttft": "time_to_first_token_seconds", "e2e": "e2e_request_latency_seconds"},
}


def num(v: float) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def _head(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


class Exposition:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        topo = fleet.topology
        self.gpus = [(g, L.fmt(L.dcgm(g))) for g in topo.gpus]
        self.gpus_of: dict[tuple[str, str], list[str]] = defaultdict(list)
        for g in topo.gpus:
            if g.owner is not None and not g.mig_profile:
                self.gpus_of[g.owner.key].append(g.uuid)
        self.runtimes: list[tuple[NeuronRuntime, dict[str, list[tuple[str, str]]]]] = []
        for r in topo.runtimes:
            base = L.neuron_instance(r.host) + [("runtime_tag", r.runtime_tag)]
            tgt = L.neuron_target(r.host)
            self.runtimes.append((r, {
                "core": [(str(c), L.fmt([*base, ("neuroncore", str(c)), *tgt])) for c in r.cores],
                "mem": [(loc, L.fmt([*base, ("memory_location", loc), *tgt])) for loc in ("host", "neuron_device")],
                "lat": [(p, L.fmt([*base, ("percentile", p), *tgt])) for p in V.LATENCY_PERCENTILES],
                "err": [(e, L.fmt([*base, ("error_type", e), *tgt])) for e in V.ERROR_SHARES],
                "status": [(s, L.fmt([*base, ("status_type", s), *tgt])) for s in V.STATUS_TYPES],
            }))
        self.static = render_ksm(topo) + self._neuron_static()
        self.servers = [(s, m, L.server(s, m)) for s in topo.servers for m in s.models]
        self.hist_labels: dict[tuple[int, str], tuple[list[str], str]] = {}

    def _neuron_static(self) -> list[str]:
        out: list[str] = []
        hosts = self.fleet.topology.neuron_nodes
        _head(out, "instance_info", "gauge", "EC2 instance information")
        out += [f"instance_info{L.fmt(L.neuron_instance(h) + L.neuron_target(h))} 1" for h in hosts]
        _head(out, "neuron_hardware_info", "gauge", "Neuron Hardware Information")
        for h in hosts:
            hw = [("neuron_device_count", str(h.devices)), ("neuroncore_per_device_count", str(h.cores_per_device))]
            out.append(f"neuron_hardware_info{L.fmt([*L.neuron_instance(h), *hw, *L.neuron_target(h)])} 1")
        return out

    def render(self, t: float) -> str:
        out: list[str] = []
        self._dcgm(out, t)
        self._neuron(out, t)
        self._vllm(out, t)
        self._triton(out, t)
        self._tgi(out, t)
        for kind, names in OPENAI_SERVERS.items():
            self._openai_server(out, t, kind, names)
        self._llm_d(out, t)
        out += self.static
        if self.fleet.topology.hpas:
            out += render_hpas(self.fleet.topology, self.fleet.truth(t))
        out.append("")
        return "\n".join(out)

    def _dcgm(self, out: list[str], t: float) -> None:
        f = self.fleet
        samples = [(V.gpu_sample(g, f.load(g.owner, t)), lbl) for g, lbl in self.gpus]
        for name, kind, help_text, attr in DCGM_FIELDS:
            _head(out, name, kind, help_text)
            for s, lbl in samples:
                v = getattr(s, attr)
                if v is not None:
                    out.append(f"{name}{lbl} {num(v)}")

    def _neuron(self, out: list[str], t: float) -> None:
        f = self.fleet
        rows = [(r, lb, f.load(r.pod, t), f.load_integral(r.pod, t)) for r, lb in self.runtimes]
        elapsed = f.elapsed(t)
        _head(out, "neuroncore_utilization_ratio", "gauge", "NeuronCore utilization ratio")
        out += [f"neuroncore_utilization_ratio{s} {num(V.core_utilization(r, int(c), ld))}"
                for r, lb, ld, _ in rows for c, s in lb["core"]]
        _head(out, "neuron_runtime_memory_used_bytes", "gauge", "Runtime memory used bytes")
        for r, lb, ld, _ in rows:
            for loc, s in lb["mem"]:
                out.append(f"neuron_runtime_memory_used_bytes{s} "
                           f"{num(V.device_memory(r, ld) if loc == 'neuron_device' else V.HOST_MEMORY_BYTES)}")
        _head(out, "execution_latency_seconds", "gauge", "Execution latency in seconds")
        out += [f"execution_latency_seconds{s} {num(V.latency(r, p, ld))}"
                for r, lb, ld, _ in rows for p, s in lb["lat"]]
        _head(out, "execution_errors_total", "counter", "Execution errors total")
        out += [f"execution_errors_total{s} {num(V.errors_total(r, e, li))}"
                for r, lb, _, li in rows for e, s in lb["err"]]
        _head(out, "execution_status_total", "counter", "Execution status total")
        out += [f"execution_status_total{s} {num(V.executions_total(st, elapsed, li, r))}"
                for r, lb, _, li in rows for st, s in lb["status"]]

    def _hist(self, out: list[str], name: str, h: MixtureHistogram, key: int, base: L.Labels,
              rate: float, elapsed: float, integral: float) -> None:
        cached = self.hist_labels.get((key, name))
        if cached is None:
            cached = ([L.fmt([*base, ("le", repr(le))]) for le in h.buckets] + [L.fmt([*base, ("le", "+Inf")])],
                      L.fmt(base))
            self.hist_labels[(key, name)] = cached
        counts, total_sum, count = h.cumulative(rate, elapsed, integral)
        bucket_lbls, plain = cached
        out += [f"{name}_bucket{lb} {num(c)}" for lb, c in zip(bucket_lbls, [*counts, count], strict=True)]
        out.append(f"{name}_sum{plain} {num(total_sum)}")
        out.append(f"{name}_count{plain} {num(count)}")

    def _rows(self, kind: str, t: float) -> list[tuple[int, float, float, float, float, L.Labels, str]]:
        f = self.fleet
        return [(i, s.request_rate, f.load(s.pod, t), f.elapsed(t), f.load_integral(s.pod, t), lbl, L.fmt(lbl))
                for i, (s, _, lbl) in enumerate(self.servers) if s.kind == kind]

    def _vllm(self, out: list[str], t: float) -> None:
        rows = self._rows("vllm", t)
        gauges = (("vllm:num_requests_running", V.requests_running),
                  ("vllm:num_requests_waiting", V.requests_waiting))
        for name, fn in gauges:
            _head(out, name, "gauge", name.split(":")[1].replace("_", " "))
            out += [f"{name}{s} {num(fn(ld))}" for _, _, ld, _, _, _, s in rows]
        for name, legacy in (("vllm:kv_cache_usage_perc", False), ("vllm:gpu_cache_usage_perc", True)):
            mine = [r for r in rows if self.servers[r[0]][0].legacy_names is legacy]
            if mine:  # vLLM >= 0.9 exports kv_cache_usage_perc; older builds the gpu_ name
                _head(out, name, "gauge", "KV-cache usage. 1 means 100 percent usage.")
                out += [f"{name}{s} {num(V.kv_cache_usage(ld))}" for _, _, ld, _, _, _, s in mine]
        _head(out, "vllm:generation_tokens_total", "counter", "Number of generation tokens processed.")
        out += [f"vllm:generation_tokens_total{s} {num(V.vllm_generation_tokens(r, el, li))}"
                for _, r, _, el, li, _, s in rows]
        _head(out, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.")
        out += [f"vllm:prompt_tokens_total{s} {num(r * 300.0 * el)}" for _, r, _, el, _, _, s in rows]
        _head(out, "vllm:request_success_total", "counter", "Count of successfully processed requests.")
        for _, r, _, el, _, lbl, _ in rows:
            out.append(f"vllm:request_success_total{L.fmt([('finished_reason', 'stop'), *lbl])} {num(r * el * 0.9)}")
            out.append(f"vllm:request_success_total{L.fmt([('finished_reason', 'length'), *lbl])} {num(r * el * 0.1)}")
        for name, h in (("vllm:time_to_first_token_seconds", V.VLLM_TTFT),
                        ("vllm:e2e_request_latency_seconds", V.VLLM_E2E)):
            _head(out, name, "histogram", name.split(":")[1].replace("_", " "))
            for i, r, _, el, li, lbl, _ in rows:
                self._hist(out, name, h, i, lbl, r, el, li)

    def _triton(self, out: list[str], t: float) -> None:
        rows = self._rows("triton", t)
        counters = (
            ("nv_inference_request_success", lambda r, el, li: r * el),
            ("nv_inference_request_failure", lambda r, el, li: r * el * 0.001),
            ("nv_inference_count", lambda r, el, li: r * el * V.TRITON_BATCH),
            ("nv_inference_exec_count", lambda r, el, li: r * el),
            ("nv_inference_request_duration_us",
             lambda r, el, li: V.triton_duration_us(V.TRITON_REQUEST_US, r, el, li)),
            ("nv_inference_queue_duration_us",
             lambda r, el, li: V.triton_duration_us(V.TRITON_QUEUE_US, r, el, li)),
            ("nv_inference_compute_infer_duration_us",
             lambda r, el, li: V.triton_duration_us(V.TRITON_COMPUTE_US, r, el, li)),
        )
        for name, fn in counters:
            _head(out, name, "counter", name.replace("_", " "))
            out += [f"{name}{s} {num(fn(r, el, li))}" for _, r, _, el, li, _, s in rows]
        _head(out, "nv_inference_pending_request_count", "gauge", "Instantaneous number of pending requests")
        out += [f"nv_inference_pending_request_count{s} {num(V.triton_pending(ld))}" for _, _, ld, _, _, _, s in rows]
        _head(out, "nv_gpu_utilization", "gauge", "GPU utilization rate [0.0 - 1.0)")
        seen: set[tuple[str, str]] = set()
        for s, _, _ in self.servers:
            if s.kind != "triton" or s.pod.key in seen:
                continue
            seen.add(s.pod.key)
            for g, _ in self.gpus:
                if g.owner is s.pod:
                    util = V.gpu_sample(g, self.fleet.load(s.pod, t)).util or 0
                    tgt = L.server(s, "")[2:]
                    out.append(f"nv_gpu_utilization{L.fmt([('gpu_uuid', g.uuid), *tgt])} {num(util / 100)}")

    def _tgi(self, out: list[str], t: float) -> None:
        rows = self._rows("tgi", t)
        for name, fn in (("tgi_queue_size", V.tgi_queue_size), ("tgi_batch_current_size", V.tgi_batch_size)):
            _head(out, name, "gauge", name.replace("_", " "))
            out += [f"{name}{s} {num(fn(ld))}" for _, _, ld, _, _, _, s in rows]
        _head(out, "tgi_request_count", "counter", "Total number of requests")
        out += [f"tgi_request_count{s} {num(r * el)}" for _, r, _, el, _, _, s in rows]
        _head(out, "tgi_request_success", "counter", "Number of successful requests")
        out += [f"tgi_request_success{s} {num(r * el * 0.99)}" for _, r, _, el, _, _, s in rows]
        for name, h in (("tgi_request_duration", V.TGI_DURATION), ("tgi_request_queue_duration", V.TGI_QUEUE),
                        ("tgi_request_generated_tokens", V.TGI_TOKENS)):
            _head(out, name, "histogram", name.replace("_", " "))
            for i, r, _, el, li, lbl, _ in rows:
                self._hist(out, name, h, i, lbl, r, el, li)

    def _openai_server(self, out: list[str], t: float, kind: str, names: dict[str, str]) -> None:
        rows = self._rows(kind, t)
        if not rows:
            return
        for key, fn in (("waiting", V.requests_waiting), ("running", V.requests_running),
                        ("usage", V.kv_cache_usage)):
            _head(out, names[key], "gauge", key)
            out += [f"{names[key]}{s} {num(fn(ld))}" for _, _, ld, _, _, _, s in rows]
        for key, h in (("ttft", V.VLLM_TTFT), ("e2e", V.VLLM_E2E)):
            _head(out, names[key], "histogram", key)
            for i, r, _, el, li, lbl, _ in rows:
                self._hist(out, names[key], h, i, lbl, r, el, li)

    def _llm_d(self, out: list[str], t: float) -> None:
        topo = self.fleet.topology
        if topo.gateway is None or not topo.demand:
            return
        queues = [(d, V.gateway_queue(d.queue_at_full, self.fleet.curve.load(t, d.phase))) for d in topo.demand]
        # llm-d's EPP exports the flow-control family under its new name and the deprecated one
        for name in ("llm_d_epp_flow_control_queue_size", "inference_extension_flow_control_queue_size"):
            _head(out, name, "gauge", "Current number of requests being actively managed by the EPP flow control.")
            out += [f"{name}{L.fmt(L.epp(topo.gateway, d, prio, fid))} {v}"
                    for d, q in queues for prio, fid, v in V.gateway_bands(q)]
        if topo.wva is not None:
            pods = {(p.namespace, p.deployment) for p in topo.pods}
            count = {k: sum(1 for p in topo.pods if (p.namespace, p.deployment) == k) for k in pods}
            _head(out, "wva_desired_replicas", "gauge", "Desired number of replicas for each variant")
            out += [f"wva_desired_replicas{L.fmt(L.wva(topo.wva, d))} "
                    f"{V.wva_desired(count.get((d.namespace, d.deployment), 0), q)}" for d, q in queues]
