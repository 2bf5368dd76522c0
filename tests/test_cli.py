import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.cli import main
from tests.support.procs import free_port


def test_presets_json_lists_every_metric_with_unit_and_series(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["preset"] for r in rows} == {"nvidia-dcgm", "aws-neuron", "vllm", "triton", "tgi", "sglang", "nim",
                                          "llm-d"}
    for r in rows:
        assert set(r) == {"preset", "metric", "api", "resource", "unit", "series"}
        assert r["api"] in ("custom", "external")
        assert r["series"] and not r["series"].startswith("kube_")
    units = {r["metric"]: r["unit"] for r in rows}
    assert units["nvidia_gpu_utilization_percent"] == "percent"
    assert units["vllm_kv_cache_usage_ratio"] == "ratio"
    assert units["neuron_device_memory_used_bytes"] == "bytes"
    assert units["vllm_time_to_first_token_p95_seconds"] == "seconds"


def test_presets_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["PRESET", "METRIC", "API", "RESOURCE", "UNIT", "SERIES"]
    assert any("nvidia_gpu_utilization_percent" in line and "DCGM_FI_DEV_GPU_UTIL" in line for line in out)


def test_check_config_names_the_culprit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n- seriesQuery: x\n  metricsQuery: 'sum(<<.Series>>{<<.Labels>>})'\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: rules[0].metricsQuery: unknown template field .Labels" in err


def test_serve_refuses_delegated_authorization_without_a_cluster(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("rules:\n- {seriesQuery: x, metricsQuery: y, resources: {overrides: {pod: {resource: pod}}}}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "adapter", "serve", "--config", str(cfg), "--cert-dir",
                           str(tmp_path / "certs")], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 2
    assert "--authorization-mode Delegated needs a Kubernetes API" in proc.stderr
    assert "--authorization-mode AlwaysAllow" in proc.stderr


BAD_SERIES_QUERY = """rules:
- seriesQuery: 'gpu_util{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'DCGM_FI_DEV_GPU_UTIL{pod!=""'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


def test_check_config_rejects_a_series_query_that_does_not_parse(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(BAD_SERIES_QUERY)
    assert main(["check-config", "--config", str(cfg)]) == 2
    assert (f"{cfg}: rules[1].seriesQuery: invalid PromQL: unexpected end of input inside braces"
            in capsys.readouterr().err)


def test_serve_rejects_a_series_query_that_does_not_parse(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(BAD_SERIES_QUERY)
    proc = subprocess.run([sys.executable, "-m", "adapter", "serve", "--config", str(cfg), "--cert-dir",
                           str(tmp_path / "certs"), "--authorization-mode", "AlwaysAllow",
                           "--secure-port", str(free_port())],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{cfg}: rules[1].seriesQuery: invalid PromQL: unexpected end of input inside braces" in proc.stderr
