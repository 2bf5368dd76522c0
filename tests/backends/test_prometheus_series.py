"""Series discovery decodes ``/api/v1/series`` into label-name shapes (values dropped, shapes shared)."""

from __future__ import annotations

import json

from adapter.backends.prometheus import _SeriesShapes


def test_series_shapes_share_one_dict_per_name_and_label_names() -> None:
    body = {"status": "success", "data": [
        {"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "a", "pod": "p1", "gpu": "0"},
        {"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "b", "pod": "p2", "gpu": "1"},
        {"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "b", "gpu": "2"},
        {"__name__": "vllm:num_requests_waiting", "namespace": "a", "pod": "p3"},
    ]}
    data = json.loads(json.dumps(body), object_hook=_SeriesShapes().hook)["data"]
    assert len(data) == 4  # one entry per series: the relist's series count stays true
    assert data[0] is data[1] and data[0] is not data[2]
    assert data[0] == {"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "", "pod": "", "gpu": ""}
    assert data[2] == {"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "", "gpu": ""}
    assert data[3] == {"__name__": "vllm:num_requests_waiting", "namespace": "", "pod": ""}
