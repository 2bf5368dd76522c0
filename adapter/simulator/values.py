"""Values of every simulated series as pure functions of the load (and of time, for counters).

Both the exposition and ``Fleet.truth`` call these, so the ground truth is exactly what was served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapter.simulator.histograms import (
    TGI_DURATION_BUCKETS,
    TGI_TOKENS_BUCKETS,
    VLLM_E2E_BUCKETS,
    VLLM_TTFT_BUCKETS,
    LogNormal,
    MixtureHistogram,
)
from adapter.simulator.topology import Gpu, NeuronRuntime

IDLE_GPU_WATTS = 0.15  # fraction of TDP drawn by an idle GPU


@dataclass(frozen=True, slots=True)
class GpuSample:
    util: int | None  # DCGM_FI_DEV_GPU_UTIL, percent (not reported for MIG instances)
    mem_copy: int | None  # DCGM_FI_DEV_MEM_COPY_UTIL, percent (not for MIG)
    fb_used: int  # MiB
    fb_free: int  # MiB
    power: float | None  # W (device level; not for MIG instances)
    temp: int | None  # °C
    engine: float  # DCGM_FI_PROF_GR_ENGINE_ACTIVE, ratio
    tensor: float  # DCGM_FI_PROF_PIPE_TENSOR_ACTIVE, ratio

    @property
    def fb_ratio(self) -> float:
        return self.fb_used / (self.fb_used + self.fb_free)


def gpu_sample(g: Gpu, load: float) -> GpuSample:
    """``load`` is the owner's load; an unallocated GPU is idle whatever the curve says."""
    busy = g.lo + (g.hi - g.lo) * load if g.owner is not None else 0.0
    engine = round(busy * 0.97, 6)
    fb_used = round(g.fb_total_mib * (0.2 + 0.7 * load)) if g.owner is not None else 1
    reserved = 0 if g.mig_profile else round(g.fb_total_mib * 0.012)
    fb_free = g.fb_total_mib - fb_used - reserved
    if g.mig_profile:
        return GpuSample(None, None, fb_used, fb_free, None, None, engine, round(engine * 0.55, 6))
    power = round(g.tdp_watts * (IDLE_GPU_WATTS + (1 - IDLE_GPU_WATTS) * busy), 3)
    return GpuSample(util=round(busy * 100), mem_copy=round(busy * 60), fb_used=fb_used, fb_free=fb_free,
                     power=power, temp=round(32 + 45 * busy), engine=engine, tensor=round(engine * 0.55, 6))


# --- AWS Neuron ---------------------------------------------------------------------------------

LATENCY_PERCENTILES = {"p0": 0.5, "p1": 0.6, "p25": 0.85, "p50": 1.0, "p75": 1.2, "p99": 2.0, "p100": 3.0}
ERROR_SHARES = {"generic": 0.75, "numerical": 0.25, "transient": 0.0, "model": 0.0, "runtime": 0.0, "hardware": 0.0}
STATUS_TYPES = ("completed", "completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input",
                "failed_to_queue")
EXECUTIONS_PER_SECOND = 50.0  # at load 0.5; completed executions grow with the load
HOST_MEMORY_BYTES = 2_147_483_648


def core_utilization(r: NeuronRuntime, core: int, load: float) -> float:
    return round(min(1.0, r.lo + (r.hi - r.lo) * load + 0.01 * (core % 4)), 6)


def device_memory(r: NeuronRuntime, load: float) -> int:
    return round(r.device_memory_bytes * (0.8 + 0.2 * load))


def latency(r: NeuronRuntime, percentile: str, load: float) -> float:
    return round(r.latency_p50 * (1 + load) * LATENCY_PERCENTILES[percentile], 9)


def errors_total(r: NeuronRuntime, error_type: str, load_integral: float) -> float:
    """Errors occur at ``error_rate * load`` per second."""
    return r.error_rate * ERROR_SHARES[error_type] * load_integral


def executions_total(status: str, elapsed: float, load_integral: float, r: NeuronRuntime) -> float:
    if status == "completed":
        return EXECUTIONS_PER_SECOND * (elapsed + load_integral)
    if status == "completed_with_err":
        return errors_total(r, "generic", load_integral) + errors_total(r, "numerical", load_integral)
    return 0.0


# --- model servers ------------------------------------------------------------------------------

VLLM_TTFT = MixtureHistogram(VLLM_TTFT_BUCKETS, LogNormal(0.08, 0.5), LogNormal(1.2, 0.6))
VLLM_E2E = MixtureHistogram(VLLM_E2E_BUCKETS, LogNormal(2.0, 0.4), LogNormal(12.0, 0.5))
TGI_DURATION = MixtureHistogram(TGI_DURATION_BUCKETS, LogNormal(1.5, 0.4), LogNormal(8.0, 0.5))
TGI_QUEUE = MixtureHistogram(TGI_DURATION_BUCKETS, LogNormal(0.01, 0.5), LogNormal(1.5, 0.7))
TGI_TOKENS = MixtureHistogram(TGI_TOKENS_BUCKETS, LogNormal(150.0, 0.8), LogNormal(150.0, 0.8))

VLLM_GEN_TOKENS_BASE, VLLM_GEN_TOKENS_LOAD = 80.0, 400.0  # tokens per request-second


def requests_running(load: float) -> int:
    return int(2 + 14 * load + 0.5)


def requests_waiting(load: float) -> int:
    return int(30 * load * load + 0.5)


def kv_cache_usage(load: float) -> float:
    return round(0.05 + 0.9 * load, 6)


def vllm_generation_tokens(rate: float, elapsed: float, load_integral: float) -> float:
    return rate * (VLLM_GEN_TOKENS_BASE * elapsed + VLLM_GEN_TOKENS_LOAD * load_integral)


TRITON_QUEUE_US = (200.0, 20_000.0)  # per request: base + per unit of load
TRITON_REQUEST_US = (5_000.0, 40_000.0)
TRITON_COMPUTE_US = (4_000.0, 15_000.0)
TRITON_BATCH = 4.0  # inferences per request


def triton_duration_us(params: tuple[float, float], rate: float, elapsed: float, load_integral: float) -> float:
    return rate * (params[0] * elapsed + params[1] * load_integral)


def triton_pending(load: float) -> int:
    return int(20 * load * load + 0.5)


def tgi_queue_size(load: float) -> int:
    return int(12 * load * load + 0.5)


def tgi_batch_size(load: float) -> int:
    return int(1 + 15 * load + 0.5)


# --- llm-d: the gateway's flow-control queue and WVA's desired replicas ---------------------------

GATEWAY_BANDS = (("0", "interactive", 0.7), ("-10", "batch", 0.3))  # (priority, fairness_id, share)


def gateway_queue(queue_at_full: float, load: float) -> int:
    """Requests held at the gateway for one model (all priority bands)."""
    return int(queue_at_full * load * load + 0.5)


def gateway_bands(queue: int) -> list[tuple[str, str, int]]:
    first = int(queue * GATEWAY_BANDS[0][2] + 0.5)
    (p0, f0, _), (p1, f1, _) = GATEWAY_BANDS
    return [(p0, f0, first), (p1, f1, queue - first)]


def wva_desired(pods: int, queue: int) -> int:
    """WVA's answer in the simulation: the replicas running plus one per 10 requests queued at the gateway
    (a model at zero pods with demand gets at least one)."""
    return pods + math.ceil(queue / 10)
