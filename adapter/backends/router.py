"""Several Prometheus-compatible backends by name: each query and series call goes to its Target's.

``default`` is the backend of the command-line ``--prometheus-*`` flags; the others come from the
rules file's ``backends:`` list (``adapter.backend_config``). Routing is one dict lookup per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapter.backend_config import BackendSpec, paths
from adapter.backends.prometheus import PrometheusBackend, PrometheusConfig
from adapter.errors import ConfigError, InternalError
from adapter.model import DEFAULT_BACKEND, DEFAULT_TARGET, QueryResult, Target

OnCall = Callable[[str, str, str, float], None]  # backend, endpoint, outcome, seconds
OnReachable = Callable[[str, bool], None]  # backend, up


def spec_config(spec: BackendSpec, max_timeout: float) -> PrometheusConfig:
    """The PrometheusConfig of a ``backends:`` entry (its timeout at most ``max_timeout``)."""
    token, basic, ca, cert, key = paths(spec)
    sigv4 = None
    if spec.auth.sigv4 is not None:
        from adapter.backends.sigv4 import SigV4  # noqa: PLC0415 - botocore (~18 MB) only when signing
        s = spec.auth.sigv4
        sigv4 = SigV4(s.region, s.role_arn, s.external_id)
    return PrometheusConfig(url=spec.url, verb=spec.verb, headers=dict(spec.headers), token_file=token,
                            ca_file=ca, client_cert=cert, client_key=key,
                            timeout=min(spec.timeout_seconds, max_timeout), max_concurrency=spec.max_concurrency,
                            sigv4=sigv4, name=spec.name, params=dict(spec.query_params), basic_auth_file=basic)


class Backends:
    """The configured backends by name; ``query``/``series`` take the Target to route by."""

    def __init__(self, configs: Mapping[str, PrometheusConfig], on_call: OnCall | None = None,
                 on_reachable: OnReachable | None = None) -> None:
        def bind(name: str) -> tuple[Callable[[str, str, float], None] | None, Callable[[bool], None] | None]:
            call = (lambda e, o, s: on_call(name, e, o, s)) if on_call is not None else None
            up = (lambda u: on_reachable(name, u)) if on_reachable is not None else None
            return call, up

        self.by_name: dict[str, PrometheusBackend] = {}
        for name, cfg in configs.items():
            call, up = bind(name)
            try:
                self.by_name[name] = PrometheusBackend(cfg, on_call=call, on_reachable=up)
            except ConfigError as e:  # e.g. no AWS credentials for a sigv4 entry: say which entry
                self.close()
                if name == DEFAULT_BACKEND:
                    raise
                raise ConfigError(f"backends: {name!r}: {e.message}") from e

    @property
    def default(self) -> PrometheusBackend:
        return self.by_name[DEFAULT_BACKEND]

    def names(self) -> list[str]:
        return list(self.by_name)

    def _get(self, target: Target) -> PrometheusBackend:
        backend = self.by_name.get(target.backend)
        if backend is None:  # the rules loader refuses unknown names: a bug if reached
            raise InternalError(f"Internal error occurred: no backend named {target.backend!r}")
        return backend

    async def query(self, promql: str, target: Target = DEFAULT_TARGET) -> QueryResult:
        return await self._get(target).query(promql, target.tenant)

    async def series(self, match: str, max_age: float, target: Target = DEFAULT_TARGET) -> list[dict[str, str]]:
        return await self._get(target).series(match, max_age, target.tenant)

    def close(self) -> None:
        for b in self.by_name.values():
            b.close()
