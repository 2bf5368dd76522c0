"""Built-in presets (``*.yaml`` here) and their parameters.

A preset may use ``${name}`` placeholders for numbers the user can set per preset entry
(``presets: [{name: vllm, params: {queuePerReplica: 5}}]``); ``PARAMS`` holds each one's default
and where the default comes from (docs/presets.md lists them). Substitution happens once, when
the rules are loaded, so every template is compiled and checked with the user's numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


@dataclass(frozen=True)
class Param:
    default: float
    meaning: str
    source: str


_WVA = ("llm-d's defaults: the gateway's saturation detector (gateway-api-inference-extension, queueDepthThreshold 5, "
        "kvCacheUtilThreshold 0.8) and WVA's kvCacheThreshold 0.80 / queueLengthThreshold 5 "
        "(workload-variant-autoscaler docs/saturation-scaling-config.md)")
_QUEUE = ("requests waiting per replica that count as full (1.0 of the saturation ratio)", _WVA)
PARAMS: dict[str, dict[str, Param]] = {
    "vllm": {
        "queuePerReplica": Param(5.0, *_QUEUE),
        "kvCacheTarget": Param(0.8, "KV-cache usage (0-1) that counts as full", _WVA),
    },
    "sglang": {
        "queuePerReplica": Param(5.0, *_QUEUE),
        "tokenUsageTarget": Param(0.8, "KV-cache token usage (sglang:token_usage, 0-1) that counts as full",
                                  "vLLM's kvCacheTarget: " + _WVA),
    },
    "nim": {
        "queuePerReplica": Param(5.0, *_QUEUE),
        "kvCacheTarget": Param(0.8, "KV-cache usage (gpu_cache_usage_perc, 0-1) that counts as full",
                               "vLLM's kvCacheTarget: " + _WVA),
    },
    "tgi": {
        "queuePerReplica": Param(5.0, *_QUEUE),
        "batchPerReplica": Param(16.0, "requests in the running batch that count as full",
                                 "GKE's LLM autoscaling guide names TGI's batch size as the throughput signal; "
                                 "16 is the batch the simulator's TGI reaches at full load, set it to your "
                                 "--max-batch-size"),
    },
    "triton": {
        "queuePerReplica": Param(4.0, "requests pending in the scheduler queue per replica that count as full",
                                 "the demo's Triton target"),
        "queueTimeTargetMicroseconds": Param(50.0, "average queue time per request, microseconds, that counts "
                                             "as full", "NVIDIA's Triton Helm chart (avg_time_queue_us, "
                                             "averageValue 50)"),
    },
}


class PresetParamError(ValueError):
    """A parameter the preset does not have, or a value that is not a positive number."""


def render(name: str, text: str, params: Mapping[str, float]) -> str:
    """The preset's text with every ``${param}`` replaced (the user's value or the default)."""
    known = PARAMS.get(name, {})
    unknown = sorted(set(params) - set(known))
    if unknown:
        have = ", ".join(sorted(known)) or "none"
        raise PresetParamError(f"unknown parameter {unknown[0]!r} (parameters of {name}: {have})")
    values: dict[str, float] = {}
    for key, p in known.items():
        v = params.get(key, p.default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or v == float("inf"):
            raise PresetParamError(f"parameter {key!r} must be a positive number, not {v!r}")
        values[key] = float(v)

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise PresetParamError(f"the preset uses an undeclared parameter {m.group(1)!r}")
        return repr(values[m.group(1)])
    return _PLACEHOLDER.sub(sub, text)
