"""Preset parameters: ``presets: [{name: vllm, params: {...}}]`` fills the preset's ``${param}`` placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.presets import PARAMS
from adapter.rules import available_presets, load_rules, parse_rules_text, preset_text


def _query(loaded: object, metric: str, external: bool = False) -> str:
    rules = loaded.external_rules if external else loaded.rules  # type: ignore[attr-defined]
    [r] = [r for r in rules if r.rule.name.as_ == metric]
    return str(r.rule.metrics_query)


def _load(tmp_path: Path, text: str, *flags: str) -> object:
    f = tmp_path / "rules.yaml"
    f.write_text(text)
    return load_rules(f, flags)


def test_defaults_fill_every_placeholder_of_every_preset() -> None:
    for name in available_presets():
        text = preset_text(name)
        assert "${" not in text, name
        parse_rules_text(text, f"preset:{name}")


def test_every_declared_param_is_used_and_documented() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "presets.md").read_text()
    raw = {n: (Path(__file__).resolve().parents[1] / "adapter" / "presets" / f"{n}.yaml").read_text()
           for n in available_presets()}
    for preset, params in PARAMS.items():
        for key, p in params.items():
            assert "${" + key + "}" in raw[preset], (preset, key)
            assert f"| `{preset}` | `{key}` | {p.default:g} |" in docs, (preset, key)
            assert p.source


def test_params_change_the_query(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "presets:\n- {name: vllm, params: {queuePerReplica: 2, kvCacheTarget: 0.5}}\n")
    q = _query(loaded, "vllm_saturation_ratio")
    assert "/ 2.0," in q and "/ 0.5," in q
    assert "/ 0.5," in _query(loaded, "vllm_saturation_ratio", external=True)
    default = load_rules(None, ("vllm",))
    assert "/ 5.0," in _query(default, "vllm_saturation_ratio") and "/ 0.8," in _query(default, "vllm_saturation_ratio")


def test_one_param_keeps_the_other_default(tmp_path: Path) -> None:
    q = _query(_load(tmp_path, "presets: [{name: vllm, params: {kvCacheTarget: 0.9}}]\n"), "vllm_saturation_ratio")
    assert "/ 5.0," in q and "/ 0.9," in q


def test_plain_name_and_flag_agree_with_the_entry(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "presets: [{name: tgi, params: {batchPerReplica: 8}}]\n", "tgi")
    assert loaded.presets == ("tgi",)  # type: ignore[attr-defined]
    assert "/ 8.0," in _query(loaded, "tgi_saturation_ratio")


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: vllm, params: {queuePerRepilca: 5}}", "preset 'vllm': unknown parameter 'queuePerRepilca' "
                                                   "(parameters of vllm: kvCacheTarget, queuePerReplica)"),
    ("{name: vllm, params: {kvCacheTarget: 0}}", "parameter 'kvCacheTarget' must be a positive number"),
    ("{name: vllm, params: {kvCacheTarget: -1}}", "must be a positive number"),
    ("{name: nvidia-dcgm, params: {x: 1}}", "unknown parameter 'x' (parameters of nvidia-dcgm: none)"),
    ("{name: nope}", "unknown preset 'nope'"),
])
def test_bad_params_fail_naming_file_and_preset(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        _load(tmp_path, f"presets:\n- {entry}\n")
    assert str(e.value).startswith(f"{tmp_path / 'rules.yaml'}: presets: ")


def test_non_numeric_param_and_unknown_key_are_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"presets\[0\]"):
        _load(tmp_path, "presets: [{name: vllm, params: {kvCacheTarget: high}}]\n")
    with pytest.raises(ConfigError, match="unknown field"):
        _load(tmp_path, "presets: [{name: vllm, parms: {kvCacheTarget: 0.5}}]\n")


def test_same_preset_twice_with_different_params_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'vllm' is listed twice with different params"):
        _load(tmp_path, "presets:\n- {name: vllm, params: {queuePerReplica: 2}}\n"
                        "- {name: vllm, params: {queuePerReplica: 3}}\n")
