"""What each configured backend's requests carry, seen by a proxy in front of a real Prometheus: its
headers and query parameters, its credentials (bearer token file, basic auth file), and a Target's
tenant headers and parameters on top (the tenant wins a clash); the router sends each call to the
Target's backend."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.backends.router import Backends, spec_config
from adapter.model import DEFAULT_TARGET, Target, Tenant
from adapter.rules import parse_rules_text
from tests.integration.conftest import SERIES
from tests.support.prometheus import Prometheus
from tests.support.proxy import Proxy, counting_proxy
from tests.support.stack import exporter_and_prometheus

TENANT = Tenant("team-a", headers=(("X-Scope-OrgID", "team-a"),), params=(("namespace", "ns1"), ("dedup", "0")))


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with exporter_and_prometheus(tmp_path_factory.mktemp("reqs"), SERIES, min_results=5) as (_, p):
        yield p


def router(tmp: Path, proxies: dict[str, Proxy], extra: str = "") -> Backends:
    entries = "".join(f"- name: {name}\n  url: {p.url}\n{extra}" for name, p in proxies.items() if name != "default")
    rf = parse_rules_text(f"backends:\n{entries}", str(tmp / "rules.yaml"))
    configs = {spec.name: spec_config(spec, 10.0) for spec in rf.backends}
    configs["default"] = spec_config(parse_rules_text(
        f"backends: [{{name: x, url: '{proxies['default'].url}'}}]", "flags").backends[0], 10.0)
    return Backends(configs)


def params(proxy: Proxy) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(proxy.queries[-1].split(" ")[0]).query)


def test_each_call_goes_to_its_targets_backend_with_its_headers_params_and_the_tenants(
        tmp_path: Path, prom: Prometheus) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    extra = (f"  headers: {{X-Scope-OrgID: backend-own, X-Extra: 'yes'}}\n  queryParams: {{dedup: '1'}}\n"
             f"  auth: {{bearerTokenFile: {token}}}\n")
    with counting_proxy(prom.url) as default, counting_proxy(prom.url) as other:
        b = router(tmp_path, {"default": default, "thanos": other}, extra)
        try:
            r = asyncio.run(b.query("sum(gpu_util)", Target("thanos")))
            assert r.samples[0].value == 218.3
            assert not default.counts and other.counts["/api/v1/query"] == 1
            h = other.headers[-1]
            assert h["X-Scope-OrgID"] == "backend-own" and h["X-Extra"] == "yes"
            assert h["Authorization"] == "Bearer s3cret"
            assert params(other) == {"query": ["sum(gpu_util)"], "dedup": ["1"]}

            asyncio.run(b.query("sum(gpu_util)", Target("thanos", TENANT)))
            h = other.headers[-1]
            assert h["X-Scope-OrgID"] == "team-a" and h["X-Extra"] == "yes"  # the tenant's on top
            assert params(other) == {"query": ["sum(gpu_util)"], "dedup": ["0"], "namespace": ["ns1"]}

            series = asyncio.run(b.series("gpu_util", 60, Target("thanos", TENANT)))
            assert series and other.headers[-1]["X-Scope-OrgID"] == "team-a"

            asyncio.run(b.query("sum(gpu_util)", DEFAULT_TARGET))
            assert default.counts["/api/v1/query"] == 1
            assert "X-Scope-OrgID" not in default.headers[-1] and "Authorization" not in default.headers[-1]
        finally:
            b.close()


def test_basic_auth_file_is_sent_and_reread_when_it_changes(tmp_path: Path, prom: Prometheus) -> None:
    secret = tmp_path / "basic"
    secret.write_text("alice:pw1\n")
    with counting_proxy(prom.url) as default, counting_proxy(prom.url) as other:
        b = router(tmp_path, {"default": default, "mimir": other}, f"  auth: {{basicAuthFile: {secret}}}\n")
        try:
            asyncio.run(b.query("up", Target("mimir")))
            assert other.auth[-1] == "Basic " + base64.b64encode(b"alice:pw1").decode()
            secret.write_text("alice:password-two\n")
            asyncio.run(b.query("up", Target("mimir")))
            assert other.auth[-1] == "Basic " + base64.b64encode(b"alice:password-two").decode()
        finally:
            b.close()
