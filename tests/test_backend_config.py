"""The rules file's ``backends:`` list and ``backend:`` references: what loads, and errors naming the
file, the entry and the field; a property test: any YAML-ish ``backends:`` either loads or is a
ConfigError naming the file, never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.backends.router import Backends, spec_config
from adapter.errors import ConfigError
from adapter.model import DEFAULT_BACKEND, DEFAULT_TARGET, Target
from adapter.naming.query import MetricNamer
from adapter.naming.resources import StaticResourceMapper
from adapter.reload import RuleSource
from adapter.rules import load_rules, parse_metric_rule_spec, parse_rules_text

RULE = """- seriesQuery: 'up{namespace!="",pod!=""}'
  resources: {template: <<.Resource>>}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"""


def error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_rules_text(text, "rules.yaml")
    return e.value.message


def test_every_backend_kind_loads(tmp_path: Path) -> None:
    for name in ("token", "basic", "ca", "crt", "key"):
        (tmp_path / name).write_text("x")
    rf = parse_rules_text(f"""backends:
- name: in-cluster
  url: http://prometheus.monitoring:9090
- name: amp
  url: https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1
  auth: {{sigv4: {{region: us-east-1, roleArn: 'arn:aws:iam::123456789012:role/amp', externalId: x}}}}
- name: thanos-eu
  url: https://thanos-eu.example:10902
  auth: {{bearerTokenFile: {tmp_path}/token}}
  queryParams: {{dedup: 'true'}}
- name: mimir
  url: http://mimir:8080/prometheus
  headers: {{X-Scope-OrgID: team-a}}
  auth: {{basicAuthFile: {tmp_path}/basic}}
  verb: POST
  timeout: 30s
  maxConcurrency: 4
- name: mtls
  url: https://vm.example:8428
  auth: {{mTLS: {{caFile: {tmp_path}/ca, certFile: {tmp_path}/crt, keyFile: {tmp_path}/key}}}}
- name: none
  url: http://vm:8428
  auth: none
rules:
{RULE}  backend: mimir
""", "rules.yaml")
    assert [b.name for b in rf.backends] == ["in-cluster", "amp", "thanos-eu", "mimir", "mtls", "none"]
    assert rf.backends[3].timeout_seconds == 30 and rf.backends[3].verb == "POST"
    assert rf.rules[0].backend == "mimir"


@pytest.mark.parametrize(("text", "msg"), [
    ("backends: [{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]",
     "rules.yaml: backends[1].name: duplicate backend name 'a' (also backends[0])"),
    ("backends: [{name: default, url: 'http://x'}]",
     "rules.yaml: backends[0].name: Value error, 'default' is the backend of the --prometheus-* flags; "
     "give this one another name"),
    ("backends: [{name: a, url: 'http://prometheus:90x0'}]",
     "rules.yaml: backends[0].url: Value error, must be an http:// or https:// URL, got 'http://prometheus:90x0'"),
    ("backends: [{name: a, url: 'prometheus:9090'}]",
     "rules.yaml: backends[0].url: Value error, must be an http:// or https:// URL, got 'prometheus:9090'"),
    ("backends: [{name: a, url: 'http://x', auth: {bearerTokenFile: /nonexistent/token}}]",
     "rules.yaml: backends[0].auth.bearerTokenFile: Value error, cannot read '/nonexistent/token': "
     "No such file or directory"),
    ("backends: [{name: a, url: 'http://x', auth: {token: /t}}]",
     "rules.yaml: backends[0].auth.token: unknown field (known fields: basicAuthFile, bearerTokenFile, mTLS, sigv4)"),
    ("backends: [{name: a, url: 'http://x', auth: {sigv4: {region: moon}}}]",
     "rules.yaml: backends[0].auth.sigv4.region: Value error, 'moon' is not an AWS region name (e.g. us-east-1)"),
    ("backends: [{name: a, url: 'http://x', auth: {mTLS: {certFile: /etc/hostname}}}]",
     "rules.yaml: backends[0].auth.mTLS: Value error, certFile and keyFile go together"),
    ("backends: [{name: a, url: 'http://x', headers: {Authorization: Bearer abc}}]",
     "rules.yaml: backends[0].headers: Value error, Authorization: use auth.bearerTokenFile or auth.basicAuthFile "
     "(a secret file, not the rules ConfigMap)"),
    ("backends: [{name: a, url: 'http://x', timeout: soon}]",
     "rules.yaml: backends[0].timeout: Value error, invalid duration 'soon' (use e.g. 10s, 1m)"),
    (f"backends: [{{name: a, url: 'http://x'}}]\nrules:\n{RULE}  backend: b\n",
     "rules.yaml: rules[0].backend: unknown backend 'b' (configured: default, a)"),
    (f"externalRules:\n{RULE}  backend: amp\n",
     "rules.yaml: externalRules[0].backend: unknown backend 'amp' (configured: default)"),
    ("presets: [vllm, {name: aws-neuron, backend: amp}]",
     "rules.yaml: presets[1].backend: unknown backend 'amp' (configured: default)"),
    ("tenancy: {tenants: {a: {}}, unmapped: a, backends: [default, mimir]}",
     "rules.yaml: tenancy.backends[1]: unknown backend 'mimir' (configured: default)"),
])
def test_config_errors_name_the_file_entry_and_field(text: str, msg: str) -> None:
    assert error(text) == msg


def test_both_credentials_in_one_auth_block_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("x")
    assert error(f"backends: [{{name: a, url: 'http://x', auth: {{bearerTokenFile: {tmp_path}/t, "
                 "sigv4: {region: us-east-1}}}]") == (
        "rules.yaml: backends[0].auth: Value error, bearerTokenFile and sigv4: at most one of bearerTokenFile, "
        "basicAuthFile and sigv4 (mTLS may go with any)")


def test_rules_and_preset_entries_take_their_backend_into_their_target(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(f"""backends: [{{name: amp, url: 'https://aps.example/ws'}}]
presets: [vllm, {{name: aws-neuron, backend: amp}}]
rules:
{RULE}  backend: amp
{RULE}""")
    loaded = load_rules(cfg)
    assert [b.name for b in loaded.backends] == ["amp"]
    by_source: dict[str, set[str]] = {}
    for r in (*loaded.rules, *loaded.external_rules):
        by_source.setdefault(r.source, set()).add(r.backend)
    assert by_source["preset:vllm"] == {DEFAULT_BACKEND}
    assert by_source["preset:aws-neuron"] == {"amp"}
    user = [r for r in loaded.rules if r.source == str(cfg)]
    assert [r.backend for r in user] == ["amp", DEFAULT_BACKEND]
    namers = [MetricNamer.compile(r, StaticResourceMapper()) for r in user]
    assert namers[0].target == Target("amp") and namers[1].target is DEFAULT_TARGET


def test_a_preset_listed_twice_with_different_backends_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("backends: [{name: amp, url: 'https://aps.example/ws'}]\n"
                   "presets: [aws-neuron, {name: aws-neuron, backend: amp}]\n")
    with pytest.raises(ConfigError, match="'aws-neuron' is listed twice with different backends"):
        load_rules(cfg)


# -- property: anything under backends: loads or is a ConfigError naming the file -----------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 2000), st.floats(allow_nan=True),
                    st.text(max_size=12),
                    st.sampled_from(["default", "a", "amp", "http://x", "https://h:1/p", "GET", "POST", "none",
                                     "10s", "0s", "-1s", "us-east-1", "arn:aws:iam::1:role/r", "/etc/hostname",
                                     "/nonexistent", "\x00", "a\nb"]))
KEYS = st.sampled_from(["name", "url", "auth", "headers", "queryParams", "timeout", "maxConcurrency", "verb",
                        "bearerTokenFile", "basicAuthFile", "mTLS", "sigv4", "caFile", "certFile", "keyFile",
                        "region", "roleArn", "externalId", "X-Scope-OrgID", "bogus"])
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS, inner, max_size=5)), max_leaves=12)
FILES = st.sampled_from(["/etc/hostname"] * 6 + ["/nonexistent", ""])  # readable mostly
PLAUSIBLE = {  # values a user would write, some of them wrong
    "name": st.sampled_from(["a", "amp", "vm", "thanos-eu", "b-2", "c", "d", "e", "default", "Bad"]),
    "url": st.sampled_from(["http://x", "https://h:1/p", "http://127.0.0.1:9090"] * 3 + ["http://h:0x", "h:9090"]),
    "auth": st.one_of(st.sampled_from(["none", None]), st.fixed_dictionaries({}, optional={
        "bearerTokenFile": FILES, "basicAuthFile": FILES,
        "sigv4": st.fixed_dictionaries({"region": st.sampled_from(["us-east-1", "eu-west-1", "moon"])},
                                       optional={"roleArn": st.sampled_from(["arn:aws:iam::1:role/r", "r"]),
                                                 "externalId": st.text(max_size=3)}),
        "mTLS": st.fixed_dictionaries({}, optional={"caFile": FILES, "certFile": FILES, "keyFile": FILES})})),
    "headers": st.dictionaries(st.sampled_from(["X-Scope-OrgID"] * 4 + ["Bad Header", "authorization"]),
                               st.text(max_size=5), max_size=2),
    "queryParams": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    "timeout": st.sampled_from(["10s", "1m", "500ms"] * 2 + ["0s", "soon"]),
    "maxConcurrency": st.one_of(st.integers(1, 64), st.sampled_from([0, 2000])),
    "verb": st.sampled_from(["GET", "POST"] * 3 + ["PUT"]),
}
OPTIONAL = ("auth", "headers", "queryParams", "timeout", "maxConcurrency", "verb")
GOOD_ENTRY = st.fixed_dictionaries({k: PLAUSIBLE[k] for k in ("name", "url")},
                                   optional={k: PLAUSIBLE[k] for k in OPTIONAL})
ENTRY = st.fixed_dictionaries({k: st.one_of(PLAUSIBLE[k], SCALARS) for k in ("name", "url")},
                              optional={k: st.one_of(PLAUSIBLE[k], VALUES) for k in OPTIONAL})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backends=st.one_of(st.lists(GOOD_ENTRY, max_size=3), st.lists(st.one_of(GOOD_ENTRY, ENTRY, VALUES), max_size=4),
                          VALUES),
       refs=st.lists(st.one_of(st.none(), SCALARS), max_size=2))
def test_any_backends_block_loads_or_names_the_file(backends: Any, refs: list[Any]) -> None:
    doc: dict[str, Any] = {"backends": backends}
    rules = []
    for ref in refs:
        rule = yaml.safe_load(RULE)[0]
        if ref is not None:
            rule["backend"] = ref
        rules.append(rule)
    if rules:
        doc["rules"] = rules
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    try:
        rf = parse_rules_text(text, "bk.yaml")
    except ConfigError as e:
        assert e.message.startswith("bk.yaml: "), e.message
        return
    names = [b.name for b in rf.backends]
    assert len(set(names)) == len(names) and DEFAULT_BACKEND not in names
    assert all(r.backend in (None, DEFAULT_BACKEND, *names) for r in rf.rules)
    # what loads also builds (sigv4 entries left out: they would look for AWS credentials)
    configs = {b.name: spec_config(b, 30.0) for b in rf.backends if b.auth.sigv4 is None}
    Backends(configs).close()


def test_a_reload_reads_the_backends_with_the_rules(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(f"backends: [{{name: vm, url: 'http://vm:8428'}}]\nrules:\n{RULE}  backend: vm\n")
    _, loaded = RuleSource(cfg).read()
    assert [b.name for b in loaded.backends] == ["vm"] and loaded.rules[0].backend == "vm"


def test_a_metric_rules_rules_use_the_default_backend() -> None:
    spec = {"rules": [yaml.safe_load(RULE)[0] | {"backend": "amp"}]}
    with pytest.raises(ConfigError) as e:
        parse_metric_rule_spec(spec, "metricrule:ns1/r")
    assert e.value.message == "metricrule:ns1/r: rules[0].backend: a MetricRule's rules use the default backend"
