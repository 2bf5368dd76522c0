"""The issue's use case: Neuron metrics in Amazon Managed Prometheus next to vLLM metrics in the
in-cluster Prometheus. The ``amp`` backend of the rules file (``auth.sigv4``) is a proxy that verifies
every SigV4 signature independently (tests/support/sigv4verify.py); the ``default`` backend (the
flags) is the plain Prometheus behind it, unsigned (gpu_util stands in for the Neuron metrics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.backends.prometheus import PrometheusConfig
from adapter.backends.router import Backends, spec_config
from adapter.errors import ConfigError
from adapter.model import DEFAULT_BACKEND
from adapter.rules import parse_rules_text
from tests.integration.test_amp_sigv4 import REGION, STATIC, _static, _static_env, no_ambient_aws, prom
from tests.support.adapter import adapter
from tests.support.prometheus import Prometheus
from tests.support.proxy import counting_proxy
from tests.support.sigv4verify import sigv4_proxy
from tests.support.stack import get_ok

__all__ = ["no_ambient_aws", "prom"]  # the AMP tests' fixtures, used here too (no ambient AWS set-up: autouse)

CM2 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/p1"


def test_one_rule_on_amp_signed_next_to_one_on_the_unsigned_default_backend(tmp_path: Path, prom: Prometheus) -> None:
    with sigv4_proxy(prom.url, _static, region=REGION) as amp, counting_proxy(prom.url) as in_cluster:
        cfg = tmp_path / "rules.yaml"
        cfg.write_text(f"""backends:
- name: amp
  url: {amp.url}
  auth: {{sigv4: {{region: {REGION}}}}}
rules:
- seriesQuery: 'gpu_util{{namespace!="",pod!=""}}'
  resources: {{template: <<.Resource>>}}
  name: {{as: neuron_util}}
  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
  backend: amp
- seriesQuery: 'nan_metric{{namespace!="",pod!=""}}'
  resources: {{template: <<.Resource>>}}
  name: {{as: vllm_metric}}
  metricsQuery: 'max(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
""")
        with adapter(tmp_path, in_cluster.url, "--config", str(cfg), "--cache-ttl", "0", env=_static_env()) as ad:
            assert get_ok(ad, f"{CM2}/neuron_util")["items"][0]["value"] == "85"  # type: ignore[index]
            status, doc, _ = ad.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/p2/vllm_metric")
            assert status == 200 and doc["items"][0]["value"] == "4", doc  # type: ignore[index]
            ws = "/workspaces/ws-test/api/v1"
            assert {f"GET {ws}/series", f"GET {ws}/query"} <= amp.paths()
            assert amp.refused == [] and amp.key_ids() == [STATIC[0]]
            # the default backend's requests are not signed, and only its rule's queries go there
            assert all("AWS4-HMAC-SHA256" not in a for a in in_cluster.auth)
            assert in_cluster.queries and all("gpu_util" not in q for q in in_cluster.queries)


def test_a_sigv4_entry_without_aws_credentials_fails_at_start_naming_the_entry() -> None:
    rf = parse_rules_text("backends: [{name: amp, url: 'https://aps.example/ws', auth: {sigv4: {region: us-east-1}}}]",
                          "rules.yaml")
    with pytest.raises(ConfigError, match=r"^backends: 'amp': --prometheus-auth sigv4: no AWS credentials found"):
        Backends({DEFAULT_BACKEND: PrometheusConfig(url="http://127.0.0.1:9"), "amp": spec_config(rf.backends[0], 10)})
