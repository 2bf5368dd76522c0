"""Per-second rates need a full 1m window of samples in Prometheus: these wait for it (bounded)."""

from __future__ import annotations

import pytest

from tests.simulator.stack import Stack, by_label, custom_by_namespace, find_rule, render

RATES = [("aws-neuron", "neuron_execution_errors_per_second"), ("vllm", "vllm_generation_tokens_per_second"),
         ("triton", "triton_inferences_per_second"), ("triton", "triton_request_success_per_second"),
         ("tgi", "tgi_generation_tokens_per_second")]
EXTERNAL_KEY = {"vllm": "model_name", "triton": "model", "tgi": "service"}
TOLERANCE = 5e-3  # scrape-time jitter against the exporter's own clock


@pytest.mark.parametrize(("preset", "metric"), RATES, ids=[m for _, m in RATES])
def test_rate_per_pod(stack: Stack, preset: str, metric: str) -> None:
    stack.wait_full_window()
    want = stack.fleet.truth().custom[metric]
    got = custom_by_namespace(stack, preset, metric)
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=TOLERANCE), key


@pytest.mark.parametrize(("preset", "metric"), RATES[1:], ids=[m for _, m in RATES[1:]])
def test_rate_per_model(stack: Stack, preset: str, metric: str) -> None:
    stack.wait_full_window()
    rule = find_rule(preset, metric, external=True)
    label = EXTERNAL_KEY[preset]
    for (ns, model), v in stack.fleet.truth().external[metric].items():
        res = stack.prom.query(render(rule, f'namespace="{ns}",{label}="{model}"', group_by=""))
        assert by_label(res, label) == {model: pytest.approx(v, rel=TOLERANCE)}
