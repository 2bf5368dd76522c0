"""The query runner's size estimate against what a decoded Prometheus answer really holds."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest

from adapter.backends.prometheus import parse_result
from adapter.provider.runner import _size_of


def _answer(samples: int, extra_labels: int) -> str:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"namespace": f"bench-{i % 100:03d}", "pod": f"gpu-app-hd2ptgdr4v-{i:05d}",
                    **{f"label_k{j}": f"value-{j}-{i % 7}" for j in range(extra_labels)}},
         "value": [1764655000.123, f"{i * 1.37:.4f}"]} for i in range(samples)]}})


@pytest.mark.parametrize(("samples", "extra_labels"), [(2000, 0), (2000, 8), (100, 0), (1, 0)])
def test_size_estimate_covers_a_decoded_result(samples: int, extra_labels: int) -> None:
    text = _answer(samples, extra_labels)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = parse_result(json.loads(text)["data"]["result"], 0.0)
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert real <= _size_of(result) <= 1.3 * real, (real, _size_of(result))
