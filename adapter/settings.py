"""Process settings: command-line flags, each also readable from an ``ADAPTER_`` variable.

Flag names follow prometheus-adapter / k8s.io/apiserver so a migrating Deployment keeps its
args. ``--foo-bar`` reads ``ADAPTER_FOO_BAR`` when not given on the command line; a flag given
on the command line wins. Values are validated once, here, into a frozen ``Settings``.
"""

from __future__ import annotations

import argparse
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapter.errors import ConfigError

ENV_PREFIX = "ADAPTER_"
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
AUTH_MODES = ("none", "sigv4")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+-\d+$")
DELEGATE_FILES = ("delegate_ca_file", "delegate_token_file", "delegate_client_cert_file",
                  "delegate_client_key_file")


def parse_duration(text: str, flag: str) -> float:
    """Go-style duration (``30s``, ``1m``, ``1h30m``, ``500ms``) -> seconds. A bare number is seconds."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    if not _DURATION.match(t):
        raise ConfigError(f"{flag}: invalid duration {text!r} (use e.g. 30s, 1m, 1h30m)")
    return sum(float(n) * _UNIT[u] for n, u in _DURATION_PART.findall(t))


@dataclass(frozen=True)
class Settings:
    # rules and presets
    config: Path | None = None
    presets: tuple[str, ...] = ()
    config_reload_interval: float = 5.0  # poll the --config file this often; 0 = only on SIGHUP
    # Prometheus
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_verb: str = "GET"
    prometheus_headers: Mapping[str, str] = field(default_factory=dict)
    prometheus_token_file: Path | None = None
    prometheus_ca_file: Path | None = None
    prometheus_client_tls_cert_file: Path | None = None
    prometheus_client_tls_key_file: Path | None = None
    prometheus_timeout: float = 10.0
    prometheus_max_concurrency: int = 8
    prometheus_auth: str = "none"  # none | sigv4 (the bearer token file works with none)
    prometheus_sigv4_region: str = ""
    prometheus_sigv4_role_arn: str = ""
    prometheus_sigv4_external_id: str = ""
    metrics_relist_interval: float = 60.0
    metrics_max_age: float = 0.0  # 0 = same as relist interval
    # serving
    secure_port: int = 6443
    bind_address: str = "0.0.0.0"  # noqa: S104 - an API server listens on all interfaces by default
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = Path("apiserver.local.config/certificates")
    request_timeout: float = 30.0
    read_header_timeout: float = 32.0  # k8s.io/apiserver secure_serving.go ReadHeaderTimeout
    idle_timeout: float = 90.0  # IdleTimeout
    max_header_bytes: int = 1 << 20  # MaxHeaderBytes
    # caching and freshness
    cache_ttl: float = 15.0
    cache_max_entries: int = 10000
    max_value_age: float = 300.0
    missing_data: str = "error"
    # authn / authz
    authorization_mode: str = "Delegated"
    lister_kubeconfig: Path | None = None
    authentication_kubeconfig: Path | None = None
    authorization_kubeconfig: Path | None = None
    metric_rules: bool = False  # load namespaced MetricRule objects (accel-metrics.io), cluster mode only
    client_ca_file: Path | None = None
    requestheader_client_ca_file: Path | None = None
    requestheader_allowed_names: tuple[str, ...] = ()
    requestheader_username_headers: tuple[str, ...] = ()
    requestheader_group_headers: tuple[str, ...] = ()
    requestheader_extra_headers_prefix: tuple[str, ...] = ()
    authentication_skip_lookup: bool = False
    authentication_token_webhook_cache_ttl: float = 10.0
    authorization_always_allow_paths: tuple[str, ...] = ("/healthz", "/livez", "/readyz")
    authorization_webhook_cache_authorized_ttl: float = 10.0
    authorization_webhook_cache_unauthorized_ttl: float = 10.0
    # delegation: the metrics we do not serve go to another server (adapter.provider.delegation)
    delegate_external_metrics: str = ""
    delegate_custom_metrics: str = ""
    delegate_ca_file: Path | None = None
    delegate_token_file: Path | None = None
    delegate_client_cert_file: Path | None = None
    delegate_client_key_file: Path | None = None
    delegate_timeout: float = 10.0
    delegate_max_concurrency: int = 8
    delegate_discovery_interval: float = 30.0
    delegate_discovery_max_age: float = 300.0
    # logging
    log_level: str = "info"
    log_format: str = "text"

    @property
    def series_max_age(self) -> float:
        return self.metrics_max_age or self.metrics_relist_interval


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    a = parser.add_argument
    a("--config", help="rules file in prometheus-adapter's format (may also select presets)")
    a("--preset", action="append", dest="presets", help="built-in rules preset to load (repeatable)")
    a("--config-reload-interval", help="check the --config file for changes this often and reload it "
      "(default 5s; 0 disables, SIGHUP still reloads)")
    a("--prometheus-url", help="Prometheus base URL (default http://127.0.0.1:9090)")
    a("--prometheus-verb", choices=["GET", "POST"], help="HTTP verb for queries (default GET)")
    a("--prometheus-header", action="append", dest="prometheus_header",
      help="extra header key=value sent to Prometheus (repeatable)")
    a("--prometheus-token-file", help="bearer token file for Prometheus; re-read when it changes")
    a("--prometheus-ca-file", help="CA bundle to verify Prometheus")
    a("--prometheus-client-tls-cert-file", help="client certificate for Prometheus mTLS")
    a("--prometheus-client-tls-key-file", help="client key for Prometheus mTLS")
    a("--prometheus-timeout", help="timeout of one Prometheus call (default 10s)")
    a("--prometheus-max-concurrency", type=int, help="parallel Prometheus calls at most (default 8)")
    a("--prometheus-auth", choices=list(AUTH_MODES),
      help="none (default; a bearer token file may still be given) or sigv4 (Amazon Managed Prometheus)")
    a("--prometheus-sigv4-region", help="AWS region of the AMP workspace (required with --prometheus-auth sigv4)")
    a("--prometheus-sigv4-role-arn", help="IAM role to assume (STS AssumeRole) with the pod's AWS credentials")
    a("--prometheus-sigv4-external-id", help="external ID for --prometheus-sigv4-role-arn")
    a("--metrics-relist-interval", help="series discovery interval (default 1m)")
    a("--metrics-max-age", help="series discovery look-back (default: the relist interval)")
    a("--secure-port", type=int, help="HTTPS port (default 6443)")
    a("--bind-address", help="address to listen on (default 0.0.0.0)")
    a("--tls-cert-file", help="serving certificate (PEM); reloaded when it changes")
    a("--tls-private-key-file", help="serving key (PEM)")
    a("--cert-dir", help="where a self-signed serving certificate is kept when none is given")
    a("--request-timeout", help="answer 503 when a request cannot be answered by then (default 30s)")
    a("--read-header-timeout", help="close a connection whose request line and headers have not arrived by then "
      "(default 32s, as kube-apiserver)")
    a("--idle-timeout", help="close a keep-alive connection idle this long (default 90s; whole seconds)")
    a("--max-header-bytes", type=int, help="answer 431 to a request header block larger than this (default 1048576)")
    a("--cache-ttl", help="query result cache TTL (default 15s; 0 disables caching)")
    a("--cache-max-entries", type=int, help="query cache size bound (default 10000)")
    a("--max-value-age", help="never serve a value older than this (default 5m)")
    a("--missing-data", choices=["error", "zero", "lastKnown"], help="default missing-data policy")
    a("--authorization-mode", choices=["Delegated", "AlwaysAllow"],
      help="Delegated (SubjectAccessReview, default) or AlwaysAllow (local use only)")
    a("--lister-kubeconfig", "--kubeconfig", dest="lister_kubeconfig",
      help="kubeconfig of the cluster whose objects are resolved")
    a("--metric-rules", choices=["true", "false"],
      help="also serve the namespaced MetricRule objects (accel-metrics.io/v1alpha1) of the cluster, each "
           "confined to its namespace (needs a cluster; default false)")
    a("--authentication-kubeconfig", help="kubeconfig for TokenReview")
    a("--authorization-kubeconfig", help="kubeconfig for SubjectAccessReview")
    a("--client-ca-file", help="CA for client-certificate authentication")
    a("--requestheader-client-ca-file", help="CA that signs the front-proxy client certificate")
    a("--requestheader-allowed-names", help="comma-separated CNs allowed to send X-Remote-* headers")
    a("--requestheader-username-headers", help="comma-separated (default X-Remote-User)")
    a("--requestheader-group-headers", help="comma-separated (default X-Remote-Group)")
    a("--requestheader-extra-headers-prefix", help="comma-separated (default X-Remote-Extra-)")
    a("--authentication-skip-lookup", action="store_const", const="true",
      help="do not read kube-system/extension-apiserver-authentication")
    a("--authentication-token-webhook-cache-ttl", help="TokenReview cache TTL (default 10s)")
    a("--authorization-always-allow-paths", help="comma-separated (default /healthz,/livez,/readyz)")
    a("--authorization-webhook-cache-authorized-ttl", help="SAR allow cache TTL (default 10s)")
    a("--authorization-webhook-cache-unauthorized-ttl", help="SAR deny cache TTL (default 10s)")
    a("--delegate-external-metrics", metavar="URL",
      help="https URL of a server (e.g. KEDA's metrics apiserver) that answers the external metrics we do not serve")
    a("--delegate-custom-metrics", metavar="URL",
      help="https URL of a server (e.g. prometheus-adapter) that answers the custom metrics we do not serve")
    a("--delegate-ca-file", help="CA bundle that verifies the delegates' serving certificates (default: system roots)")
    a("--delegate-token-file", help="bearer token sent to the delegates (default in a pod: our service account "
      "token, re-read when it rotates)")
    a("--delegate-client-cert-file", help="client certificate sent to the delegates (instead of a token)")
    a("--delegate-client-key-file", help="its private key")
    a("--delegate-timeout", help="a delegate that has not answered by then is unavailable: 503 (default 10s)")
    a("--delegate-max-concurrency", type=int, help="requests in flight to each delegate (default 8)")
    a("--delegate-discovery-interval", help="how often the delegates' resource lists are refreshed (default 30s)")
    a("--delegate-discovery-max-age", help="how long a down delegate's last resource list is still listed "
      "(default 5m)")
    a("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    a("--log-format", choices=["text", "json"], help="default text")
    return parser


def _raw(ns: argparse.Namespace, env: Mapping[str, str], name: str) -> object:
    """Flag value if given, else ``ADAPTER_<NAME>`` from the environment, else None."""
    val = getattr(ns, name, None)
    if val is not None:
        return val
    return env.get(ENV_PREFIX + name.upper())


def from_args(ns: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    kw: dict[str, Any] = {}  # validated field by field below

    def s(name: str) -> str | None:
        v = _raw(ns, env, name)
        return None if v is None else str(v)

    def path(name: str) -> None:
        v = s(name)
        if v:
            kw[name] = Path(v)

    def dur(name: str, flag: str) -> None:
        v = s(name)
        if v is not None:
            kw[name] = parse_duration(v, flag)

    def integer(name: str, flag: str, minimum: int) -> None:
        v = s(name)
        if v is None:
            return
        try:
            n = int(v)
        except ValueError as e:
            raise ConfigError(f"{flag}: {v!r} is not an integer") from e
        if n < minimum:
            raise ConfigError(f"{flag}: must be at least {minimum}, got {n}")
        kw[name] = n

    def csv(name: str) -> None:
        v = s(name)
        if v is not None:
            kw[name] = _csv(v)

    for name in ("config", "prometheus_token_file", "prometheus_ca_file", "prometheus_client_tls_cert_file",
                 "prometheus_client_tls_key_file", "tls_cert_file", "tls_private_key_file", "cert_dir",
                 "lister_kubeconfig", "authentication_kubeconfig", "authorization_kubeconfig",
                 "client_ca_file", "requestheader_client_ca_file", *DELEGATE_FILES):
        path(name)
    presets = getattr(ns, "presets", None) or []
    if not presets and env.get(ENV_PREFIX + "PRESET"):
        presets = _csv(env[ENV_PREFIX + "PRESET"])
    kw["presets"] = tuple(presets)
    for name in ("prometheus_auth", "prometheus_sigv4_region", "prometheus_sigv4_role_arn",
                 "prometheus_sigv4_external_id"):
        v = s(name)
        if v is not None:
            kw[name] = v.strip()
    for name in ("delegate_external_metrics", "delegate_custom_metrics"):
        v = s(name)
        if v is not None:
            kw[name] = v.strip()
    for name in ("prometheus_url", "log_level", "log_format", "authorization_mode", "missing_data", "bind_address"):
        v = s(name)
        if v is not None:
            kw[name] = v
    verb = s("prometheus_verb")
    if verb is not None:
        if verb.upper() not in ("GET", "POST"):
            raise ConfigError(f"--prometheus-verb: must be GET or POST, got {verb!r}")
        kw["prometheus_verb"] = verb.upper()
    headers: dict[str, str] = {}
    raw_headers = getattr(ns, "prometheus_header", None) or (
        [h for h in env.get(ENV_PREFIX + "PROMETHEUS_HEADER", "").split(",") if h])
    for h in raw_headers:
        key, sep, value = h.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--prometheus-header: expected key=value, got {h.split('=')[0]!r}=...")
        headers[key.strip()] = value
    kw["prometheus_headers"] = headers
    for name, flag in (("prometheus_timeout", "--prometheus-timeout"),
                       ("config_reload_interval", "--config-reload-interval"),
                       ("metrics_relist_interval", "--metrics-relist-interval"),
                       ("metrics_max_age", "--metrics-max-age"),
                       ("request_timeout", "--request-timeout"),
                       ("read_header_timeout", "--read-header-timeout"),
                       ("idle_timeout", "--idle-timeout"),
                       ("cache_ttl", "--cache-ttl"),
                       ("delegate_timeout", "--delegate-timeout"),
                       ("delegate_discovery_interval", "--delegate-discovery-interval"),
                       ("delegate_discovery_max_age", "--delegate-discovery-max-age"),
                       ("max_value_age", "--max-value-age"),
                       ("authentication_token_webhook_cache_ttl", "--authentication-token-webhook-cache-ttl"),
                       ("authorization_webhook_cache_authorized_ttl", "--authorization-webhook-cache-authorized-ttl"),
                       ("authorization_webhook_cache_unauthorized_ttl",
                        "--authorization-webhook-cache-unauthorized-ttl")):
        dur(name, flag)
    integer("secure_port", "--secure-port", 1)
    integer("prometheus_max_concurrency", "--prometheus-max-concurrency", 1)
    integer("cache_max_entries", "--cache-max-entries", 1)
    integer("delegate_max_concurrency", "--delegate-max-concurrency", 1)
    integer("max_header_bytes", "--max-header-bytes", 4096)
    for name in ("requestheader_allowed_names", "requestheader_username_headers", "requestheader_group_headers",
                 "requestheader_extra_headers_prefix", "authorization_always_allow_paths"):
        csv(name)
    skip = s("authentication_skip_lookup")
    if skip is not None:
        kw["authentication_skip_lookup"] = skip.lower() in ("1", "true", "yes")

    metric_rules = s("metric_rules")
    if metric_rules is not None:
        if metric_rules.lower() not in ("true", "false"):
            raise ConfigError(f"--metric-rules: must be true or false, got {metric_rules!r}")
        kw["metric_rules"] = metric_rules.lower() == "true"

    settings = replace(Settings(), **kw)
    _validate(settings)
    return settings


def _validate(st: Settings) -> None:
    if not st.prometheus_url.startswith(("http://", "https://")):
        raise ConfigError(f"--prometheus-url: must start with http:// or https://, got {st.prometheus_url!r}")
    if st.metrics_relist_interval <= 0:
        raise ConfigError("--metrics-relist-interval: must be positive")
    if st.metrics_max_age and st.metrics_max_age < st.metrics_relist_interval:
        raise ConfigError("--metrics-max-age: must be at least --metrics-relist-interval "
                          f"({st.metrics_max_age:g}s < {st.metrics_relist_interval:g}s)")
    if st.request_timeout <= 0:
        raise ConfigError("--request-timeout: must be positive")
    if st.config_reload_interval < 0:
        raise ConfigError("--config-reload-interval: must not be negative (0 disables)")
    for value, flag in ((st.read_header_timeout, "--read-header-timeout"), (st.idle_timeout, "--idle-timeout")):
        if value <= 0:
            raise ConfigError(f"{flag}: must be positive")
    if bool(st.tls_cert_file) != bool(st.tls_private_key_file):
        raise ConfigError("--tls-cert-file and --tls-private-key-file must be given together")
    if bool(st.prometheus_client_tls_cert_file) != bool(st.prometheus_client_tls_key_file):
        raise ConfigError("--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file "
                          "must be given together")
    _validate_auth(st)
    _validate_delegation(st)
    if st.config is None and not st.presets:
        raise ConfigError("--config: a rules file (or at least one --preset) is required")
    for name in ("config", "prometheus_token_file", "prometheus_ca_file", "prometheus_client_tls_cert_file",
                 "prometheus_client_tls_key_file", "tls_cert_file", "tls_private_key_file",
                 "lister_kubeconfig", "authentication_kubeconfig", "authorization_kubeconfig",
                 "client_ca_file", "requestheader_client_ca_file", *DELEGATE_FILES):
        p = getattr(st, name)
        if p is not None and not Path(p).is_file():
            raise ConfigError(f"--{name.replace('_', '-')}: file {str(p)!r} does not exist")


def _validate_delegate_url(url: str, flag: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"{flag}: must be an absolute https:// URL (the delegate is called with our "
                          f"credentials), got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{flag}: no query, fragment or user info, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise ConfigError(f"{flag}: {e}, got {url!r}") from e


def _validate_delegation(st: Settings) -> None:
    for url, flag in ((st.delegate_external_metrics, "--delegate-external-metrics"),
                      (st.delegate_custom_metrics, "--delegate-custom-metrics")):
        if url:
            _validate_delegate_url(url, flag)
    if not (st.delegate_external_metrics or st.delegate_custom_metrics):
        for name in DELEGATE_FILES:
            if getattr(st, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')}: only with --delegate-external-metrics or "
                                  "--delegate-custom-metrics")
        return
    if bool(st.delegate_client_cert_file) != bool(st.delegate_client_key_file):
        raise ConfigError("--delegate-client-cert-file and --delegate-client-key-file must be given together")
    if st.delegate_token_file and st.delegate_client_cert_file:
        raise ConfigError("--delegate-token-file: cannot be combined with --delegate-client-cert-file "
                          "(choose one credential for the delegates)")
    if st.delegate_timeout <= 0 or st.delegate_discovery_interval <= 0:
        raise ConfigError("--delegate-timeout and --delegate-discovery-interval: must be positive")
    if st.delegate_discovery_max_age < st.delegate_discovery_interval:
        raise ConfigError("--delegate-discovery-max-age: must be at least --delegate-discovery-interval "
                          f"({st.delegate_discovery_max_age:g}s < {st.delegate_discovery_interval:g}s)")
    for name in DELEGATE_FILES:
        p = getattr(st, name)
        if p is not None and not os.access(p, os.R_OK):
            raise ConfigError(f"--{name.replace('_', '-')}: file {str(p)!r} does not exist or is not readable")


def _validate_auth(st: Settings) -> None:
    if st.prometheus_auth not in AUTH_MODES:
        raise ConfigError(f"--prometheus-auth: must be one of {', '.join(AUTH_MODES)}, got {st.prometheus_auth!r}")
    sigv4_flags = [f for f, v in (("--prometheus-sigv4-region", st.prometheus_sigv4_region),
                                  ("--prometheus-sigv4-role-arn", st.prometheus_sigv4_role_arn),
                                  ("--prometheus-sigv4-external-id", st.prometheus_sigv4_external_id)) if v]
    if st.prometheus_auth != "sigv4":
        if sigv4_flags:
            raise ConfigError(f"{sigv4_flags[0]}: only with --prometheus-auth sigv4")
        return
    if not st.prometheus_sigv4_region:
        raise ConfigError("--prometheus-sigv4-region: required with --prometheus-auth sigv4 "
                          "(the AMP workspace's region, e.g. us-east-1)")
    if not _REGION.match(st.prometheus_sigv4_region):
        raise ConfigError(f"--prometheus-sigv4-region: {st.prometheus_sigv4_region!r} is not an AWS region name")
    if st.prometheus_sigv4_role_arn and not st.prometheus_sigv4_role_arn.startswith("arn:"):
        raise ConfigError(f"--prometheus-sigv4-role-arn: {st.prometheus_sigv4_role_arn!r} is not an ARN "
                          "(arn:aws:iam::ACCOUNT:role/NAME)")
    if st.prometheus_sigv4_external_id and not st.prometheus_sigv4_role_arn:
        raise ConfigError("--prometheus-sigv4-external-id: only with --prometheus-sigv4-role-arn")
    if st.prometheus_token_file is not None:
        raise ConfigError("--prometheus-token-file: cannot be combined with --prometheus-auth sigv4 "
                          "(both set the Authorization header)")
    if any(k.lower() == "authorization" for k in st.prometheus_headers):
        raise ConfigError("--prometheus-header: Authorization cannot be combined with --prometheus-auth sigv4")


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Parse ``serve`` flags (without the subcommand) into Settings."""
    parser = build_parser(argparse.ArgumentParser(prog="accel-adapter serve"))
    return from_args(parser.parse_args(list(argv)), env)
