"""Rules reload without a restart: load, validate and compile aside, discover, then swap the serving core.

A reload runs the start-up code path on the new rules (``RuleSource.read`` then the ``build`` given,
``adapter.server.build_core``), so whatever start-up builds from the rules is rebuilt; the long-lived
pieces (metrics registry, TLS and authentication, the Kubernetes client, the HTTP server) are not
part of a core and stay. The new core runs one series discovery (starting from the old core's last
good series for the seriesQueries both share) before it serves, then ``Swappable.swap`` makes it
current for new requests; the old core's discovery stops at once and its backends are closed when
its last request in flight has answered.

Reloads are serialized. One whose rules are unchanged (same file bytes, presets and extra rules) does
nothing. One that fails (unreadable or invalid file, a rule that does not compile) keeps the current
core serving, logs the error (file, rule and field) and sets
``accel_adapter_config_last_reload_successful`` to 0 until a reload succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from starlette.types import ASGIApp

from adapter.errors import ConfigError
from adapter.observability import Metrics
from adapter.provider.discovery import Relister
from adapter.rules import LoadedRules, SourcedRule, load_rules
from adapter.swap import Generation, Swappable

log = logging.getLogger(__name__)

# Rules from outside the rules file (e.g. namespaced MetricRule objects), read at every (re)load. They
# come before the presets and the file, so a cluster rule wins a metric name clash (the last rule wins).
ExtraRules = Callable[[], tuple[SourcedRule, ...]]


def no_extra_rules() -> tuple[SourcedRule, ...]:
    return ()


@dataclass(frozen=True)
class RuleSource:
    """Where the rules come from: ``--config``, ``--preset`` flags, and any ``extra`` rule source."""

    config: Path | None
    presets: tuple[str, ...] = ()
    extra: ExtraRules = field(default=no_extra_rules)

    def read(self, extra: tuple[SourcedRule, ...] | None = None) -> tuple[str, LoadedRules]:
        """(fingerprint of the inputs, the rules loaded and validated); ConfigError naming file/rule/field.
        ``extra``: the extra rules, already read (default: read them here).

        The file's bytes are hashed before they are parsed: should the file change in between, the
        fingerprint is the older one and the next check reloads again (never the reverse)."""
        h = hashlib.sha256()
        if self.config is not None:
            try:
                h.update(self.config.read_bytes())
            except OSError as e:
                raise ConfigError(f"{self.config}: cannot read: {e.strerror}") from e
        h.update(repr(self.presets).encode())
        if extra is None:
            extra = self.extra()
        for r in extra:
            h.update(f"\0{r.source}\0{r.list_name}\0{r.index}\0".encode())
            h.update(r.rule.model_dump_json(by_alias=True).encode())
        loaded = load_rules(self.config, self.presets)
        rules = LoadedRules(
            (*(r for r in extra if r.list_name == "rules"), *loaded.rules),
            (*(r for r in extra if r.list_name == "externalRules"), *loaded.external_rules),
            loaded.presets, loaded.tenancy)
        if not rules.rules and not rules.external_rules:
            raise ConfigError(f"{self.config or 'presets'}: no rules and no externalRules: nothing to serve")
        return h.hexdigest(), rules


class Core(Protocol):
    """What a reload needs of a serving core (``adapter.server.Core``)."""

    @property
    def app(self) -> ASGIApp: ...

    @property
    def relister(self) -> Relister: ...

    def rule_ids(self) -> Iterable[tuple[str, str]]: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Core)


class Reloader(Generic[C]):
    """Owns the current core's discovery task and replaces the core on ``reload``."""

    def __init__(self, source: RuleSource, build: Callable[[LoadedRules], C], serving: Swappable[C],
                 metrics: Metrics, fingerprint: str, *, drain_timeout: float) -> None:
        self.source = source
        self._build = build
        self.serving = serving
        self._metrics = metrics
        self.fingerprint = fingerprint  # of the rules the current core was built from
        self._drain_timeout = drain_timeout
        self._lock = asyncio.Lock()
        self._relist: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.reloads = 0  # successful swaps

    def start(self) -> None:
        """Run the current core's discovery (the first one at once)."""
        self._relist = asyncio.create_task(self.serving.core.relister.run(), name="relist")

    async def stop(self) -> None:
        """Stop discovery, and close the current core and any core still draining."""
        await self._stop_relist()
        for task in list(self._retiring):
            task.cancel()
        for task in list(self._retiring):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.serving.core.close()

    async def reload(self, reason: str) -> bool:
        """Load the rules again and serve them if they changed and are valid; False when the current
        rules stay because the new ones are not valid (or the new core could not be built)."""
        async with self._lock:
            try:
                return await self._reload(reason)
            except ConfigError as e:
                return self._failed(reason, str(e))
            except Exception as e:
                log.exception("rules reload: unexpected error")
                return self._failed(reason, f"unexpected {type(e).__name__}: {e}")

    async def _reload(self, reason: str) -> bool:
        # parsing and compiling (~0.1 s with every preset) run on a worker thread, so requests are
        # answered meanwhile; the extra rules are read here, on the event loop that maintains them
        fingerprint, rules = await asyncio.to_thread(self.source.read, self.source.extra())
        if fingerprint == self.fingerprint:
            log.info("rules reload: unchanged, nothing to do", extra={"reason": reason})
            return True
        core = await asyncio.to_thread(self._build, rules)
        try:
            core.relister.adopt(self.serving.core.relister)
            await core.relister.update_now()
        except BaseException:
            core.close()
            raise
        self._swap(core, fingerprint, reason, rules)
        return True

    def _failed(self, reason: str, error: str) -> bool:
        self._metrics.config_loaded(False)
        log.error("rules reload failed; still serving the previous rules", extra={"reason": reason, "error": error})
        return False

    def _swap(self, core: C, fingerprint: str, reason: str, rules: LoadedRules) -> None:
        old = self.serving.swap(core)
        self.fingerprint = fingerprint
        self.reloads += 1
        previous, self._relist = self._relist, asyncio.create_task(core.relister.run(first_now=False),
                                                                   name="relist")
        if previous is not None:
            previous.cancel()  # now: the old discovery must not report its index after the swap
        task = asyncio.create_task(self._retire(old, previous, set(core.rule_ids())), name="retire-rules")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        self._metrics.config_loaded(True)
        index = core.relister.index
        log.info("rules reloaded", extra={
            "reason": reason, "rules": len(rules.rules), "external_rules": len(rules.external_rules),
            "custom_metrics": len(index.custom), "external_metrics": len(index.external)})

    async def _retire(self, old: Generation[C], relist: asyncio.Task[None] | None,
                      kept: set[tuple[str, str]]) -> None:
        """Stop the old core's discovery, then close it once its requests in flight have answered."""
        inflight, start = old.inflight, time.perf_counter()
        await _cancel(relist)
        self._metrics.rules_retired(set(old.core.rule_ids()) - kept)
        try:
            if not await old.drained(self._drain_timeout):
                log.warning("rules reload: requests still in flight on the previous rules after %gs; "
                            "closing its backends anyway", self._drain_timeout, extra={"inflight": old.inflight})
        finally:
            old.core.close()
        log.info("previous rules closed", extra={"requests_in_flight_at_swap": inflight,
                                                 "drain_seconds": round(time.perf_counter() - start, 3)})

    async def _stop_relist(self) -> None:
        task, self._relist = self._relist, None
        await _cancel(task)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
