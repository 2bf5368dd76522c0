"""--delegate-* flags: validated at load, each error naming its flag."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.settings import parse

URL = "https://keda-operator-metrics-apiserver.keda:443"


@pytest.fixture
def cfg(tmp_path: Path) -> list[str]:
    f = tmp_path / "c.yaml"
    f.write_text("rules: []")
    return ["--config", str(f)]


def file(tmp_path: Path, name: str) -> str:
    p = tmp_path / name
    p.write_text("x")
    return str(p)


def test_defaults_delegate_nothing(cfg: list[str]) -> None:
    st = parse(cfg, env={})
    assert (st.delegate_external_metrics, st.delegate_custom_metrics) == ("", "")
    assert (st.delegate_timeout, st.delegate_discovery_interval, st.delegate_discovery_max_age) == (10, 30, 300)


def test_flags_and_env(cfg: list[str], tmp_path: Path) -> None:
    ca, token = file(tmp_path, "ca.crt"), file(tmp_path, "token")
    st = parse([*cfg, "--delegate-external-metrics", URL, "--delegate-ca-file", ca, "--delegate-timeout", "3s",
                "--delegate-discovery-interval", "10s", "--delegate-discovery-max-age", "1m"],
               env={"ADAPTER_DELEGATE_CUSTOM_METRICS": "https://prometheus-adapter.monitoring/base",
                    "ADAPTER_DELEGATE_TOKEN_FILE": token})
    assert st.delegate_external_metrics == URL
    assert st.delegate_custom_metrics == "https://prometheus-adapter.monitoring/base"
    assert st.delegate_ca_file == Path(ca) and st.delegate_token_file == Path(token)
    assert (st.delegate_timeout, st.delegate_discovery_interval, st.delegate_discovery_max_age) == (3, 10, 60)


@pytest.mark.parametrize(("args", "message"), [
    (["--delegate-external-metrics", "http://keda:443"], "--delegate-external-metrics: must be an absolute https://"),
    (["--delegate-custom-metrics", "keda:443"], "--delegate-custom-metrics: must be an absolute https://"),
    (["--delegate-custom-metrics", "https:///path"], "--delegate-custom-metrics: must be an absolute https://"),
    (["--delegate-custom-metrics", "/apis"], "--delegate-custom-metrics: must be an absolute https://"),
    (["--delegate-external-metrics", "https://keda?x=1"], "--delegate-external-metrics: no query"),
    (["--delegate-external-metrics", "https://u:p@keda"], "--delegate-external-metrics: no query"),
    (["--delegate-external-metrics", "https://keda:99999"], "--delegate-external-metrics: Port out of range"),
    (["--delegate-external-metrics", URL, "--delegate-timeout", "0s"], "must be positive"),
    (["--delegate-external-metrics", URL, "--delegate-discovery-interval", "1m", "--delegate-discovery-max-age",
      "30s"], "--delegate-discovery-max-age: must be at least --delegate-discovery-interval"),
    (["--delegate-external-metrics", URL, "--delegate-max-concurrency", "0"], "--delegate-max-concurrency"),
])
def test_invalid(cfg: list[str], args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        parse([*cfg, *args], env={})


def test_files_must_exist_and_be_readable(cfg: list[str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--delegate-ca-file: file .* does not exist or is not readable"):
        parse([*cfg, "--delegate-external-metrics", URL, "--delegate-ca-file", str(tmp_path / "nope")], env={})
    unreadable = file(tmp_path, "token")
    os.chmod(unreadable, 0)
    if os.access(unreadable, os.R_OK):  # root reads anything: a directory is never a readable file
        unreadable = str(tmp_path)
    with pytest.raises(ConfigError, match="--delegate-token-file"):
        parse([*cfg, "--delegate-external-metrics", URL, "--delegate-token-file", unreadable], env={})


def test_credentials_are_one_choice(cfg: list[str], tmp_path: Path) -> None:
    crt, key, token = file(tmp_path, "c.crt"), file(tmp_path, "c.key"), file(tmp_path, "t")
    with pytest.raises(ConfigError, match="--delegate-client-cert-file and --delegate-client-key-file"):
        parse([*cfg, "--delegate-external-metrics", URL, "--delegate-client-cert-file", crt], env={})
    with pytest.raises(ConfigError, match="--delegate-token-file: cannot be combined"):
        parse([*cfg, "--delegate-external-metrics", URL, "--delegate-client-cert-file", crt,
               "--delegate-client-key-file", key, "--delegate-token-file", token], env={})


def test_credential_flags_need_a_delegate(cfg: list[str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--delegate-token-file: only with --delegate-external-metrics"):
        parse([*cfg, "--delegate-token-file", file(tmp_path, "t")], env={})
