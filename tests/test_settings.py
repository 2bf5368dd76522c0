from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.settings import parse, parse_duration


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    f = tmp_path / "c.yaml"
    f.write_text("rules: []")
    return str(f)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5), ("15", 15)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--x") == seconds


def test_defaults(cfg: str) -> None:
    st = parse(["--config", cfg], env={})
    assert st.secure_port == 6443 and st.metrics_relist_interval == 60 and st.request_timeout == 30
    assert st.authorization_mode == "Delegated" and st.series_max_age == 60 and st.cache_ttl == 15
    # k8s.io/apiserver secure_serving.go: ReadHeaderTimeout 32 s, IdleTimeout 90 s, MaxHeaderBytes 1 MiB
    assert (st.read_header_timeout, st.idle_timeout, st.max_header_bytes) == (32, 90, 1 << 20)


def test_connection_limit_flags(cfg: str) -> None:
    st = parse(["--config", cfg, "--read-header-timeout", "1s", "--idle-timeout", "2m",
                "--max-header-bytes", "8192"], env={})
    assert (st.read_header_timeout, st.idle_timeout, st.max_header_bytes) == (1, 120, 8192)


def test_env_vars_and_flag_precedence(cfg: str) -> None:
    env = {"ADAPTER_CONFIG": cfg, "ADAPTER_SECURE_PORT": "7443", "ADAPTER_CACHE_TTL": "5s",
           "ADAPTER_PROMETHEUS_HEADER": "X-Scope-OrgID=team-a", "ADAPTER_PRESET": "vllm,tgi"}
    st = parse(["--secure-port", "8443"], env=env)
    assert st.secure_port == 8443 and st.cache_ttl == 5
    assert st.prometheus_headers == {"X-Scope-OrgID": "team-a"} and st.presets == ("vllm", "tgi")


@pytest.mark.parametrize(("args", "msg"), [
    (["--metrics-relist-interval", "1m", "--metrics-max-age", "30s"], "--metrics-max-age: must be at least"),
    (["--metrics-relist-interval", "soon"], "--metrics-relist-interval: invalid duration"),
    (["--prometheus-url", "localhost:9090"], "--prometheus-url: must start with http"),
    (["--tls-cert-file", "/etc/hosts"], "--tls-cert-file and --tls-private-key-file"),
    (["--prometheus-header", "novalue"], "--prometheus-header: expected key=value"),
    (["--prometheus-ca-file", "/nonexistent/ca.pem"], "--prometheus-ca-file: file '/nonexistent/ca.pem' does not"),
    (["--secure-port", "0"], "--secure-port: must be at least 1"),
    (["--read-header-timeout", "0"], "--read-header-timeout: must be positive"),
    (["--max-header-bytes", "100"], "--max-header-bytes: must be at least 4096"),
])
def test_invalid_flags(cfg: str, args: list[str], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(")):
        parse(["--config", cfg, *args], env={})


def test_config_or_preset_required() -> None:
    with pytest.raises(ConfigError, match="--config: a rules file"):
        parse([], env={})


def test_config_reload_interval(cfg: str) -> None:
    assert parse(["--config", cfg], env={}).config_reload_interval == 5
    assert parse(["--config", cfg, "--config-reload-interval", "0"], env={}).config_reload_interval == 0
    assert parse(["--config", cfg], env={"ADAPTER_CONFIG_RELOAD_INTERVAL": "1m"}).config_reload_interval == 60
    with pytest.raises(ConfigError, match="--config-reload-interval: must not be negative"):
        parse(["--config", cfg, "--config-reload-interval", "-1"], env={})
