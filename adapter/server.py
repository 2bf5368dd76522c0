"""Building and running the server from Settings: rules -> backends -> providers -> app -> uvicorn.

``build_core`` builds everything that depends on the rules (a ``Core``); ``build`` adds the long-lived
pieces (``Shared``) and the ``Reloader`` that replaces the core on a rules change (``adapter.reload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from adapter import certs
from adapter.api import discovery
from adapter.api.explain import explain_routes
from adapter.api.routes import Handlers
from adapter.api.security import SecurityMiddleware, build_security
from adapter.api.tlsproto import build_server_ssl_context, tls_protocol_class
from adapter.app import create_app
from adapter.backends.cluster import cluster_configured
from adapter.backends.prometheus import PrometheusConfig
from adapter.backends.router import Backends, OnCall, OnReachable, spec_config
from adapter.cache import LastKnownStore
from adapter.errors import ConfigError
from adapter.memory import TRACEMALLOC_ENV, snapshots_on_signal, tls_read_buffer, trim, tune_malloc
from adapter.model import DEFAULT_BACKEND, DEFAULT_TARGET, Target
from adapter.naming.query import MetricNamer, RuleError
from adapter.naming.resources import StaticResourceMapper
from adapter.naming.validate import validate
from adapter.observability import Metrics
from adapter.ports import Namespaces, ObjectResolver, ResourceMapper
from adapter.provider import delegation
from adapter.provider.custom import CustomMetricsProvider, policies
from adapter.provider.discovery import Relister, RuleStatus, SeriesFn
from adapter.provider.explainer import Explainer
from adapter.provider.explanation import GROUP as EXPLAIN_GROUP
from adapter.provider.explanation import VERSION as EXPLAIN_VERSION
from adapter.provider.external import ExternalMetricsProvider
from adapter.provider.objects import KsmObjectResolver
from adapter.provider.registry import SeriesIndex
from adapter.provider.runner import QueryRunner
from adapter.provider.teamrules import TeamRules
from adapter.provider.tenancy import Tenancy, tenant_series
from adapter.provider.values import Freshness, Policy
from adapter.reload import ExtraRules, Reloader, RuleSource, no_extra_rules
from adapter.rules import LoadedRules
from adapter.rulewatch import ConfigWatcher, observe, reload_on_sighup
from adapter.settings import Settings
from adapter.swap import Swappable
from adapter.tlsreload import CertReloader

if TYPE_CHECKING:
    from adapter.backends.kubernetes import KubeClients
    from adapter.backends.sigv4 import SigV4

log = logging.getLogger(__name__)


@dataclass
class Core:
    """Everything built from the rules: what a rules reload replaces as a whole (``adapter.reload``)."""

    app: ASGIApp
    relister: Relister
    backend: Backends
    runner: QueryRunner
    rules: LoadedRules
    custom: CustomMetricsProvider
    external: ExternalMetricsProvider | None
    explainer: Explainer

    def rule_ids(self) -> list[tuple[str, str]]:
        return [rule_id(n) for n in (*self.relister.custom, *self.relister.external)]

    def close(self) -> None:
        self.backend.close()


@dataclass
class Shared:
    """What outlives a rules reload: the settings, the adapter's metrics, Kubernetes, the security wrap,
    the delegates (their clients and discovery caches; ``adapter.provider.delegation``)."""

    st: Settings
    metrics: Metrics
    mapper: ResourceMapper
    resolver: ObjectResolver | None
    wrap: Callable[[ASGIApp], ASGIApp] | None
    last_known: LastKnownStore[tuple[str, ...]]
    namespaces: Namespaces | None = None  # tenancy's namespace labels/annotations (cluster mode)
    delegates: dict[str, delegation.Delegate] = field(default_factory=dict)


@dataclass
class Built:
    app: Swappable[Core]  # serves every request with the current core
    reloader: Reloader[Core]
    shared: Shared

    @property
    def core(self) -> Core:
        return self.app.core

    @property
    def metrics(self) -> Metrics:
        return self.shared.metrics

    @property
    def relister(self) -> Relister:
        return self.core.relister

    @property
    def backend(self) -> Backends:
        return self.core.backend

    @property
    def explainer(self) -> Explainer:
        return self.core.explainer


def rule_id(namer: MetricNamer) -> tuple[str, str]:
    return namer.sourced.source, f"{namer.sourced.list_name}[{namer.sourced.index}]"


def compile_rules(rules: LoadedRules, mapper: ResourceMapper) -> tuple[list[MetricNamer], list[MetricNamer]]:
    try:
        custom = [validate(MetricNamer.compile(r, mapper)) for r in rules.rules]
        external = [validate(MetricNamer.compile(r, mapper)) for r in rules.external_rules]
    except RuleError as e:
        raise ConfigError(str(e)) from e
    return custom, external


def sigv4_config(st: Settings) -> SigV4 | None:
    if st.prometheus_auth != "sigv4":
        return None
    from adapter.backends.sigv4 import SigV4  # noqa: PLC0415 - botocore (~18 MB) only when signing
    return SigV4(st.prometheus_sigv4_region, st.prometheus_sigv4_role_arn, st.prometheus_sigv4_external_id)


def default_config(st: Settings) -> PrometheusConfig:
    """The ``default`` backend: the command-line ``--prometheus-*`` flags."""
    return PrometheusConfig(
        url=st.prometheus_url, verb=st.prometheus_verb, headers=st.prometheus_headers,
        token_file=st.prometheus_token_file, ca_file=st.prometheus_ca_file,
        client_cert=st.prometheus_client_tls_cert_file, client_key=st.prometheus_client_tls_key_file,
        timeout=min(st.prometheus_timeout, st.request_timeout), max_concurrency=st.prometheus_max_concurrency,
        sigv4=sigv4_config(st))


def backends(st: Settings, rules: LoadedRules, on_call: OnCall | None = None,
             on_reachable: OnReachable | None = None) -> Backends:
    """The flags' backend (``default``) and every entry of the rules file's ``backends:``."""
    configs = {DEFAULT_BACKEND: default_config(st)}
    configs.update((spec.name, spec_config(spec, st.request_timeout)) for spec in rules.backends)
    return Backends(configs, on_call=on_call, on_reachable=on_reachable)


def build(st: Settings, *, registry: CollectorRegistry | None = None,
          mapper: ResourceMapper | None = None, resolver: ObjectResolver | None = None,
          wrap: Callable[[ASGIApp], ASGIApp] | None = None, extra_rules: ExtraRules = no_extra_rules,
          namespaces: Namespaces | None = None) -> Built:
    """The long-lived pieces, and the first core built from the rules (``build_core``, as every reload)."""
    source = RuleSource(st.config, st.presets, extra_rules)
    fingerprint, rules = source.read()
    metrics = Metrics(registry or CollectorRegistry())
    delegates = delegation.from_settings(
        st, [(discovery.CUSTOM, discovery.CUSTOM_VERSIONS, st.delegate_custom_metrics),
             (discovery.EXTERNAL, discovery.EXTERNAL_VERSIONS, st.delegate_external_metrics)],
        on_request=metrics.observe_delegated, on_up=metrics.set_delegate_discovery_up)
    metrics.delegates_known(delegates)
    shared = Shared(st, metrics, mapper or StaticResourceMapper(), resolver, wrap,
                    LastKnownStore(max_entries=st.cache_max_entries), namespaces, delegates)
    serving = Swappable(build_core(shared, rules))
    shared.metrics.config_loaded(True, initial=True)
    # a request still in flight on replaced rules has answered within the request timeout
    reloader = Reloader(source, lambda r: build_core(shared, r), serving, shared.metrics, fingerprint,
                        drain_timeout=st.request_timeout + 5.0)
    return Built(serving, reloader, shared)


def tenanted_series(backend: Backends, tenancy: Tenancy) -> SeriesFn:
    """Series discovery under tenancy: on each backend tenancy applies to, as every discovery tenant
    (``tenant_series``); on the others, as the backend itself."""
    per = {name: tenant_series(b.series, tenancy, name) for name, b in backend.by_name.items()}

    def series(match: str, max_age: float, target: Target = DEFAULT_TARGET) -> Awaitable[list[dict[str, str]]]:
        return per[target.backend](match, max_age)
    return series


def build_core(shared: Shared, rules: LoadedRules) -> Core:
    """Namers, backend, runner, discovery, providers and the app, from ``rules``; ConfigError if a rule
    does not compile."""
    st, metrics, mapper = shared.st, shared.metrics, shared.mapper
    custom_namers, external_namers = compile_rules(rules, mapper)

    backend = backends(st, rules, on_call=metrics.backend_call, on_reachable=metrics.set_backend_up)
    metrics.backends_known(backend.names())
    tenancy = None if rules.tenancy is None else Tenancy(rules.tenancy, shared.namespaces, str(st.config),
                                                         on_denied=metrics.tenancy_denied)
    series = backend.series if tenancy is None else tenanted_series(backend, tenancy)
    runner = QueryRunner(backend.query, ttl=st.cache_ttl, max_entries=st.cache_max_entries,
                         on_event=metrics.cache_observer("query"), on_rule_query=metrics.observe_rule_query)

    metrics.rules_known(rule_id(n) for n in (*custom_namers, *external_namers))

    def on_relist(seconds: float, index: SeriesIndex, statuses: RuleStatus) -> None:
        metrics.observe_relist(seconds, series=index.series_count,
                               metrics={"custom": len(index.custom), "external": len(index.external)},
                               complete=not any(err for _, err in statuses))
        for namer, err in statuses:
            metrics.observe_rule_discovery(*rule_id(namer), ok=not err)
        trim()  # the relist's transient allocations (and any burst's) go back to the system

    relister = Relister(custom_namers, external_namers, series, st.metrics_relist_interval,
                        st.series_max_age, on_relist=on_relist)
    freshness = Freshness(shared.last_known, st.max_value_age, time.time, metrics.observe_value_age,
                          metrics.withheld)
    policy_for = policies(Policy(missing=st.missing_data, max_age=st.max_value_age))
    resolver = shared.resolver or KsmObjectResolver(runner, tenancy)
    custom = CustomMetricsProvider(relister, mapper, resolver, runner, freshness, policy_for, tenancy)
    external = ExternalMetricsProvider(relister, runner, freshness, policy_for, tenancy) if external_namers else None
    handlers = Handlers(custom, external, st.request_timeout, shared.delegates)

    def readiness() -> tuple[bool, str]:
        # "can serve the API", as k8s.io/apiserver means it: never Prometheus or discovery, which an
        # unready aggregated server would turn into a 503 for its whole API group; their state goes to
        # /metrics, the log, and the answers (a metric whose discovery never succeeded answers 503)
        return True, ""

    explainer = Explainer(custom, external, runner, relister, series)
    explain = explain_routes(explainer, st.request_timeout, custom.list_metrics,
                             external.list_metrics if external is not None else list)
    external_enabled = external is not None or discovery.EXTERNAL in shared.delegates
    app = create_app(handlers, readiness, metrics, external_enabled=external_enabled, wrap=shared.wrap,
                     extra_routes=explain, extra_groups=[(EXPLAIN_GROUP, (EXPLAIN_VERSION,))])
    return Core(app, relister, backend, runner, rules, custom, external, explainer)


def serving_cert(st: Settings) -> tuple[Path, Path]:
    if st.tls_cert_file and st.tls_private_key_file:
        return st.tls_cert_file, st.tls_private_key_file
    hosts = ("localhost", st.bind_address) if st.bind_address not in ("0.0.0.0", "::", "") else ("localhost",)  # noqa: S104
    cert, key = certs.ensure_self_signed(st.cert_dir, hosts)
    log.warning("no --tls-cert-file given: serving a self-signed certificate", extra={"cert": str(cert)})
    return cert, key


async def load_team_rules(st: Settings, kube: KubeClients | None) -> TeamRules | None:
    """With ``--metric-rules``: the cluster's MetricRules, watched, judged once before serving (their
    accepted rules are the reloader's extra rules; ``TeamRules.run`` reloads when they change)."""
    if not st.metric_rules:
        return None
    if kube is None or kube.metric_rules is None:
        raise ConfigError("--metric-rules: MetricRules are read from a cluster: give --lister-kubeconfig "
                          "or run in a pod")
    team = TeamRules(kube.metric_rules, kube.mapper, republish=st.metrics_relist_interval)
    await team.load(timeout=min(30.0, st.request_timeout))
    return team


async def run(st: Settings) -> None:
    tune_malloc()
    tls_read_buffer()
    snapshots_on_signal(os.environ.get(TRACEMALLOC_ENV))
    kube = None
    if cluster_configured(st.lister_kubeconfig):
        from adapter.backends.kubernetes import connect  # noqa: PLC0415 - the client is ~30 MB: only with a cluster
        kube = connect(st.lister_kubeconfig, st.authentication_kubeconfig, st.authorization_kubeconfig,
                       timeout=min(10.0, st.request_timeout))
    if kube is None:
        log.info("running without a Kubernetes cluster: objects are resolved from Prometheus labels "
                 "(kube-state-metrics kube_pod_labels for pod label selectors); no --lister-kubeconfig given "
                 "and not running in a pod")
    try:
        authn, authz = build_security(st, kube.auth if kube else None)
        if kube is not None:
            await asyncio.get_running_loop().run_in_executor(None, kube.mapper.start)
        seen = observe(st.config) if st.config is not None else None  # before the rules are read
        team = await load_team_rules(st, kube)
        built = build(st, mapper=kube.mapper if kube else None, resolver=kube.objects if kube else None,
                      wrap=lambda app: SecurityMiddleware(app, authn, authz),
                      extra_rules=team.extra_rules if team is not None else no_extra_rules,
                      namespaces=kube.namespaces if kube else None)
        cert, key = serving_cert(st)
        ctx = build_server_ssl_context(str(cert), str(key), list(await authn.trust_bundle()))
        authn.attach_ssl_context(ctx)
        config = uvicorn.Config(built.app, host=st.bind_address, port=st.secure_port, ssl_certfile=str(cert),
                                ssl_keyfile=str(key), ssl_context_factory=lambda _cfg, _default: ctx,
                                http=tls_protocol_class(st.read_header_timeout, st.max_header_bytes),
                                h11_max_incomplete_event_size=st.max_header_bytes,
                                timeout_keep_alive=max(1, math.ceil(st.idle_timeout)),
                                log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, server_header=False,
                                proxy_headers=False)  # X-Forwarded-* from the aggregator must not rewrite the peer
        server = uvicorn.Server(config)
        tasks = [asyncio.create_task(CertReloader(ctx, cert, key).run(), name="cert-reload"),
                 *(asyncio.create_task(d.run(), name=f"delegate-{g}") for g, d in built.shared.delegates.items())]
        if st.config is not None and st.config_reload_interval > 0:
            watcher = ConfigWatcher(st.config, built.reloader.reload, st.config_reload_interval, seen)
            tasks.append(asyncio.create_task(watcher.run(), name="rules-watch"))
        built.reloader.start()
        if team is not None:  # statuses once the current rules' discovery has completed
            tasks.append(asyncio.create_task(team.run(built.reloader.reload, lambda: built.relister.index
                                                      if built.relister.complete else None), name="metricrules"))
        remove_sighup = reload_on_sighup(built.reloader.reload)
        try:
            await server.serve()
        finally:
            remove_sighup()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await built.reloader.stop()
            for d in built.shared.delegates.values():
                d.client.close()
    finally:
        if kube is not None:
            kube.close()
