"""The chart's Amazon Managed Prometheus values: ci/amp-values.yaml renders the sigv4 flags and the IRSA annotation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from adapter.backends.sigv4 import SigV4
from adapter.server import sigv4_config
from adapter.settings import build_parser, from_args

from .tools import CHART, one, render, run, template_cmd

AMP = CHART / "ci" / "amp-values.yaml"


def _args(objs: list[dict[str, object]]) -> list[str]:
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]  # type: ignore[index]
    args: list[str] = pod["containers"][0]["args"]
    return args


def test_amp_values_render_sigv4_flags_and_the_irsa_annotation(tmp_path: Path) -> None:
    objs = render((AMP,))
    sa = one(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/accel-metrics-adapter-amp"}
    dep = one(objs, "Deployment")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    args = _args(objs)
    ns = build_parser(argparse.ArgumentParser(exit_on_error=False)).parse_args(args)
    assert ns.prometheus_url == ("https://aps-workspaces.us-east-1.amazonaws.com/workspaces/"
                                 "ws-12345678-abcd-1234-abcd-123456789012")
    assert ns.prometheus_token_file is None
    # the rendered flags pass the adapter's own start-up validation
    ns.config = str(tmp_path / "config.yaml")
    (tmp_path / "config.yaml").write_text("rules: []\n")
    ns.tls_cert_file = ns.tls_private_key_file = None
    assert sigv4_config(from_args(ns, env={})) == SigV4(
        "us-east-1", "arn:aws:iam::444455556666:role/amp-query-from-eks", "accel-metrics-adapter")


def test_default_values_sign_nothing() -> None:
    args = _args(render())
    assert not [a for a in args if "sigv4" in a or a.startswith("--prometheus-auth")]


def test_pod_identity_needs_no_annotation() -> None:
    objs = render(sets=("prometheus.auth.type=sigv4", "prometheus.auth.sigv4.region=eu-central-1"))
    assert "--prometheus-sigv4-region=eu-central-1" in _args(objs)
    assert not one(objs, "ServiceAccount")["metadata"].get("annotations")


@pytest.mark.parametrize(("sets", "message"), [
    (("prometheus.auth.type=sigv4",), "/prometheus/auth/sigv4/region"),
    (("prometheus.auth.type=oauth",), "/prometheus/auth/type"),
    (("prometheus.auth.type=sigv4", "prometheus.auth.sigv4.region=US-East"), "/prometheus/auth/sigv4/region"),
    (("prometheus.auth.type=sigv4", "prometheus.auth.sigv4.region=us-east-1",
      "prometheus.auth.sigv4.roleArn=amp-role"), "/prometheus/auth/sigv4/roleArn"),
    (("prometheus.auth.sigv4.profile=x",), "profile"),
    (("prometheus.auth.type=sigv4", "prometheus.auth.sigv4.region=us-east-1",
      "prometheus.auth.bearerToken.secretName=token"), "type sigv4 signs every request; unset bearerToken"),
], ids=["no-region", "unknown-type", "bad-region", "bad-role-arn", "unknown-key", "with-bearer-token"])
def test_invalid_amp_values_fail_the_render(sets: tuple[str, ...], message: str) -> None:
    r = run(template_cmd(sets=sets))
    assert r.returncode != 0, f"helm template accepted {sets}"
    assert message in r.stderr, r.stderr
