"""The chart carries ``rules.backends`` into the rules file, and mounts the backends' credential files
from Secrets through ``extraVolumes``/``extraVolumeMounts`` (the values docs/install.md shows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapter.errors import ConfigError
from adapter.rules import parse_rules_text

from .tools import one, render, run, template_cmd

RULE = {"seriesQuery": 'neuroncore_utilization_ratio{namespace!="",pod!=""}',
        "resources": {"template": "<<.Resource>>"}, "backend": "amp",
        "metricsQuery": "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"}
VALUES = {
    "rules": {
        "rules": [RULE],
        "backends": [
            {"name": "amp", "url": "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1",
             "auth": {"sigv4": {"region": "us-east-1"}}},
            {"name": "thanos-eu", "url": "https://thanos-eu.example:10902",
             "auth": {"bearerTokenFile": "/etc/accel-adapter/backends/thanos-eu/token"}},
        ],
    },
    "presets": ["vllm", {"name": "aws-neuron", "backend": "amp"}],
    "extraVolumes": [{"name": "thanos-eu-token", "secret": {"secretName": "thanos-eu-reader", "defaultMode": 288}}],
    "extraVolumeMounts": [{"name": "thanos-eu-token", "mountPath": "/etc/accel-adapter/backends/thanos-eu",
                           "readOnly": True}],
}


@pytest.fixture
def values(tmp_path: Path) -> Path:
    path = tmp_path / "backends.yaml"
    path.write_text(yaml.safe_dump(VALUES))
    return path


def test_backends_reach_the_rules_file_and_their_secrets_are_mounted(values: Path, tmp_path: Path) -> None:
    objs = render((values,))
    text = one(objs, "ConfigMap")["data"]["config.yaml"]
    cfg = yaml.safe_load(text)
    assert cfg["backends"] == VALUES["rules"]["backends"]  # type: ignore[index]
    assert cfg["presets"] == VALUES["presets"] and cfg["rules"] == [RULE]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["thanos-eu-token"]["secret"]["secretName"] == "thanos-eu-reader"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["thanos-eu-token"] == {"name": "thanos-eu-token", "readOnly": True,
                                         "mountPath": "/etc/accel-adapter/backends/thanos-eu"}
    # the adapter reads the file the chart wrote: here the token is not mounted, so the load error names it
    with pytest.raises(ConfigError, match=r"backends\[1\]\.auth\.bearerTokenFile: .*cannot read"):
        parse_rules_text(text, "config.yaml")
    token = tmp_path / "token"
    token.write_text("t")
    rf = parse_rules_text(text.replace("/etc/accel-adapter/backends/thanos-eu/token", str(token)), "config.yaml")
    assert [b.name for b in rf.backends] == ["amp", "thanos-eu"] and rf.rules[0].backend == "amp"


def test_no_backends_value_leaves_the_rules_file_as_before() -> None:
    cfg = yaml.safe_load(one(render(), "ConfigMap")["data"]["config.yaml"])
    assert "backends" not in cfg


@pytest.mark.parametrize("backend", [{"name": "default", "url": "http://x"}, {"name": "a", "url": "prometheus:9090"},
                                     {"url": "http://x"}])
def test_values_schema_rejects_a_bad_backend(tmp_path: Path, backend: dict[str, str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"rules": {"backends": [backend]}}))
    r = run(template_cmd((path,)))
    assert r.returncode != 0 and "backends" in r.stderr, r.stderr
