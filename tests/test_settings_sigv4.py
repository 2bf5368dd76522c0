"""--prometheus-auth sigv4 flags: parsed from flags or ADAPTER_* variables, validated at start-up."""

from pathlib import Path

import pytest

from adapter.backends.sigv4 import SigV4
from adapter.errors import ConfigError
from adapter.server import sigv4_config
from adapter.settings import parse


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    f = tmp_path / "c.yaml"
    f.write_text("rules: []")
    return str(f)


def test_default_is_no_signing(cfg: str) -> None:
    st = parse(["--config", cfg], env={})
    assert st.prometheus_auth == "none" and sigv4_config(st) is None


def test_flags_and_env(cfg: str) -> None:
    st = parse(["--config", cfg, "--prometheus-auth", "sigv4", "--prometheus-sigv4-region", "eu-west-1",
                "--prometheus-sigv4-role-arn", "arn:aws:iam::123456789012:role/amp-query",
                "--prometheus-sigv4-external-id", "ext-1"], env={})
    assert sigv4_config(st) == SigV4("eu-west-1", "arn:aws:iam::123456789012:role/amp-query", "ext-1", "aps")
    env = {"ADAPTER_PROMETHEUS_AUTH": "sigv4", "ADAPTER_PROMETHEUS_SIGV4_REGION": "us-gov-west-1"}
    st = parse(["--config", cfg], env=env)
    assert sigv4_config(st) == SigV4("us-gov-west-1")


@pytest.mark.parametrize(("args", "msg"), [
    (["--prometheus-auth", "sigv4"], "--prometheus-sigv4-region: required with --prometheus-auth sigv4"),
    (["--prometheus-auth", "sigv4", "--prometheus-sigv4-region", "US East"],
     "--prometheus-sigv4-region: 'US East' is not"),
    (["--prometheus-sigv4-region", "us-east-1"], "--prometheus-sigv4-region: only with --prometheus-auth sigv4"),
    (["--prometheus-auth", "sigv4", "--prometheus-sigv4-region", "us-east-1", "--prometheus-sigv4-role-arn", "amp"],
     "--prometheus-sigv4-role-arn: 'amp' is not an ARN"),
    (["--prometheus-auth", "sigv4", "--prometheus-sigv4-region", "us-east-1", "--prometheus-sigv4-external-id", "x"],
     "--prometheus-sigv4-external-id: only with --prometheus-sigv4-role-arn"),
    (["--prometheus-auth", "sigv4", "--prometheus-sigv4-region", "us-east-1", "--prometheus-token-file", "TOKEN"],
     "--prometheus-token-file: cannot be combined with --prometheus-auth sigv4"),
    (["--prometheus-auth", "sigv4", "--prometheus-sigv4-region", "us-east-1", "--prometheus-header", "authorization=x"],
     "--prometheus-header: Authorization cannot be combined"),
], ids=["no-region", "bad-region", "region-without-sigv4", "bad-arn", "external-id-without-role", "bearer-token",
        "authorization-header"])
def test_invalid(cfg: str, tmp_path: Path, args: list[str], msg: str) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    with pytest.raises(ConfigError, match=msg):
        parse(["--config", cfg, *[str(token) if a == "TOKEN" else a for a in args]], env={})


def test_bearer_token_still_works_without_sigv4(cfg: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    st = parse(["--config", cfg, "--prometheus-token-file", str(token)], env={})
    assert st.prometheus_token_file == token and st.prometheus_auth == "none"


def test_unknown_auth_mode_from_env(cfg: str) -> None:
    with pytest.raises(ConfigError, match="--prometheus-auth: must be one of none, sigv4"):
        parse(["--config", cfg], env={"ADAPTER_PROMETHEUS_AUTH": "basic"})
