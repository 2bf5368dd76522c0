"""vllm, triton and tgi presets: per pod (custom) and per model (external) against the ground truth."""

from __future__ import annotations

import pytest

from tests.simulator.stack import Stack, by_label, custom_by_namespace, find_rule, render

INSTANT = [  # (preset, metric): gauges and ratios of rates, exact as soon as there are 2 samples
    ("vllm", "vllm_requests_waiting"), ("vllm", "vllm_requests_running"), ("vllm", "vllm_kv_cache_usage_ratio"),
    ("vllm", "vllm_time_to_first_token_p50_seconds"), ("vllm", "vllm_time_to_first_token_p95_seconds"),
    ("vllm", "vllm_e2e_request_latency_p50_seconds"), ("vllm", "vllm_e2e_request_latency_p95_seconds"),
    ("triton", "triton_pending_requests"), ("triton", "triton_queue_time_per_request_microseconds"),
    ("triton", "triton_request_duration_per_request_microseconds"),
    ("tgi", "tgi_requests_waiting"), ("tgi", "tgi_requests_running"),
    ("tgi", "tgi_request_duration_p50_seconds"), ("tgi", "tgi_request_duration_p95_seconds"),
    ("tgi", "tgi_request_queue_duration_p95_seconds"),
]
EXTERNAL_KEY = {"vllm": "model_name", "triton": "model", "tgi": "service"}


def _ids(params: list[tuple[str, str]]) -> list[str]:
    return [m for _, m in params]


@pytest.mark.parametrize(("preset", "metric"), INSTANT, ids=_ids(INSTANT))
def test_per_pod(stack: Stack, preset: str, metric: str) -> None:
    want = stack.fleet.truth().custom[metric]
    assert want, f"no ground truth for {metric}"
    got = custom_by_namespace(stack, preset, metric)
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-6), key


@pytest.mark.parametrize(("preset", "metric"), INSTANT, ids=_ids(INSTANT))
def test_per_model_external(stack: Stack, preset: str, metric: str) -> None:
    want = stack.fleet.truth().external[metric]
    rule = find_rule(preset, metric, external=True)
    label = EXTERNAL_KEY[preset]
    for (ns, model), v in want.items():
        res = stack.prom.query(render(rule, f'namespace="{ns}",{label}="{model}"', group_by=""))
        assert by_label(res, label) == {model: pytest.approx(v, rel=1e-6)}
    # the namespace matcher is honoured
    (ns, model) = next(iter(want))
    assert stack.prom.query(render(rule, f'namespace="elsewhere",{label}="{model}"', group_by="")) == []


def test_quantiles_within_bucket_of_the_true_quantile(stack: Stack) -> None:
    """histogram_quantile interpolates inside a bucket: the distribution's real quantile is in it."""
    from adapter.simulator import values as V

    truth = stack.fleet.truth()
    hists = {"vllm_time_to_first_token": V.VLLM_TTFT, "vllm_e2e_request_latency": V.VLLM_E2E,
             "tgi_request_duration": V.TGI_DURATION}
    checked = 0
    for prefix, h in hists.items():
        for q in ("p50", "p95"):
            name = f"{prefix}_{q}_seconds"
            preset = prefix.split("_")[0]
            got = custom_by_namespace(stack, preset, name)
            for key, exact in truth.exact[name].items():
                lo, hi = h.bucket_bounds(exact)
                assert lo <= got[key] <= hi, (name, key, got[key], exact)
                checked += 1
    assert checked >= 10


def test_idle_pods_without_server_metrics_are_absent(stack: Stack) -> None:
    got = custom_by_namespace(stack, "vllm", "vllm_requests_waiting")
    assert all(pod.startswith("vllm-") for _, pod in got)
