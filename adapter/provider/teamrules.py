"""Team-owned rules: the cluster's ``MetricRule`` objects turned into rules confined to their namespace.

Each MetricRule's ``spec`` (the rules file's ``rules`` and ``externalRules``) is validated exactly as
the rules file is (the typed model, then compiling and ``naming.validate``), with the MetricRule's
namespace as the rules' confinement: its queries carry ``<namespace label>="<namespace>"`` on every
selector (``naming.confine``), its metrics exist for requests in that namespace only, and a rule
mapping a root-scoped resource is refused. A MetricRule that does not validate contributes no rule.

``TeamRules`` keeps the accepted rules (``extra_rules()``: the ``adapter.reload.RuleSource`` extra
rules), calls ``reload(reason)`` (``Reloader.reload``) when they change, and writes each MetricRule's status (condition
``Accepted``, the metrics it serves after discovery, the metrics a cluster rule serves instead) with
a merge patch of the status subresource, only when it differs from what the object shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.errors import AdapterError, ConfigError, NotFound, Unavailable
from adapter.naming.query import MetricNamer, RuleError
from adapter.naming.validate import validate
from adapter.ports import MetricRuleObject, MetricRuleSource, ResourceMapper
from adapter.provider.registry import SeriesIndex
from adapter.rules import SourcedRule, parse_metric_rule_spec

log = logging.getLogger(__name__)

ReloadFn = Callable[[str], Awaitable[bool]]
# rules (custom and external together) one MetricRule may hold: each costs a discovery query per relist
MAX_RULES = 50
Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Verdict:
    """One MetricRule judged: its rules when accepted, else the error (file-style: where, then why)."""

    obj: MetricRuleObject
    rules: tuple[SourcedRule, ...]
    error: str = ""


def judge(obj: MetricRuleObject, mapper: ResourceMapper) -> Verdict:
    source = obj.source
    try:
        spec = parse_metric_rule_spec(dict(obj.spec), source)
    except ConfigError as e:
        return Verdict(obj, (), e.message)
    rules = (*(SourcedRule(r, source, "rules", i, obj.namespace) for i, r in enumerate(spec.rules)),
             *(SourcedRule(r, source, "externalRules", i, obj.namespace) for i, r in enumerate(spec.external_rules)))
    if not rules:
        return Verdict(obj, (), f"{source}: spec: no rules and no externalRules: nothing to serve")
    if len(rules) > MAX_RULES:
        return Verdict(obj, (), f"{source}: spec: {len(rules)} rules; at most {MAX_RULES} per MetricRule")
    try:
        for r in rules:
            validate(MetricNamer.compile(r, mapper))
    except RuleError as e:
        return Verdict(obj, (), str(e))
    return Verdict(obj, rules)


def desired_status(v: Verdict, served: Mapping[str, list[str]], shadowing: Mapping[str, frozenset[str]],
                   now: str) -> dict[str, Any]:
    """The status ``v`` should show, given the metrics each rule source serves and those a cluster rule
    serves instead (``lastTransitionTime`` kept while the condition's status stays)."""
    gen = v.obj.generation
    source = v.obj.source
    metrics = list(served.get(source, [])) if not v.error else []
    shadowed = sorted(shadowing.get(source, ())) if not v.error else []
    if v.error:
        reason, message = "Invalid", v.error
    else:
        reason = "Valid"
        message = f"{len(v.rules)} rules accepted, serving {len(metrics)} metrics in namespace {v.obj.namespace}"
        if shadowed:
            message += f"; a cluster rule serves {', '.join(shadowed)} instead (cluster rules win name clashes)"
    cond: dict[str, Any] = {"type": "Accepted", "status": "False" if v.error else "True", "reason": reason,
                            "message": message, "observedGeneration": gen, "lastTransitionTime": now}
    for old in v.obj.status.get("conditions") or []:  # type: ignore[attr-defined]
        if isinstance(old, dict) and old.get("type") == "Accepted" and old.get("status") == cond["status"] \
                and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
    return {"observedGeneration": gen, "conditions": [cond], "metrics": metrics, "shadowed": shadowed}


def _comparable(status: Mapping[str, Any]) -> Any:
    conds = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
             if isinstance(c, dict)]
    return (status.get("observedGeneration"), conds, list(status.get("metrics") or []),
            list(status.get("shadowed") or []))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class TeamRules:
    def __init__(self, source: MetricRuleSource, mapper: ResourceMapper, *, republish: float = 60.0,
                 clock: Callable[[], str] = _now) -> None:
        self.source = source
        self.mapper = mapper
        self.republish = republish  # statuses are compared with the index at least this often
        self.clock = clock
        self._verdicts: dict[Key, Verdict] = {}
        self._sent: dict[Key, Any] = {}
        self._unapplied = False  # the accepted rules changed but the reload did not succeed
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def load(self, timeout: float) -> None:
        """Start watching and judge the MetricRules of the first list (waited for up to ``timeout``; when
        it fails, none, and they are judged when the watch first succeeds)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.source.start(self._notify)
        try:
            await self.source.wait_synced(timeout)
        except Unavailable as e:  # e.g. the CRD is not installed yet: the cluster's rules serve meanwhile
            log.warning("cannot list MetricRules; serving without them until the watch succeeds",
                        extra={"error": e.message})
        self.judge_now()

    def _notify(self) -> None:  # from the watch thread
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def extra_rules(self) -> tuple[SourcedRule, ...]:
        """Every accepted MetricRule's rules, in (namespace, name) order: the reloader's extra rules."""
        return tuple(r for _, v in sorted(self._verdicts.items()) for r in v.rules)

    def verdicts(self) -> list[Verdict]:
        return [v for _, v in sorted(self._verdicts.items())]

    def judge_now(self) -> bool:
        """Judge the current MetricRules; True when the accepted rules changed."""
        before = self.extra_rules()
        verdicts: dict[Key, Verdict] = {}
        for obj in self.source.snapshot():
            key = (obj.namespace, obj.name)
            old = self._verdicts.get(key)
            if old is not None and old.obj.generation == obj.generation and old.obj.spec == obj.spec:
                verdicts[key] = Verdict(obj, old.rules, old.error)  # same spec: same verdict
                continue
            verdicts[key] = v = judge(obj, self.mapper)
            if v.error:
                log.warning("MetricRule rejected", extra={"metricrule": obj.source, "error": v.error})
            else:
                log.info("MetricRule accepted", extra={"metricrule": obj.source, "rules": len(v.rules)})
        for key in set(self._verdicts) - set(verdicts):
            log.info("MetricRule deleted", extra={"metricrule": f"metricrule:{key[0]}/{key[1]}"})
            self._sent.pop(key, None)
        self._verdicts = verdicts
        return self.extra_rules() != before

    async def publish(self, index: SeriesIndex | None) -> int:
        """Write the statuses that differ from what the objects show; how many were written. Without an
        index (discovery has not completed yet) only those of rejected MetricRules."""
        written = 0
        served = index.metrics_by_source() if index is not None else {}
        for key, v in sorted(self._verdicts.items()):
            if index is None and not v.error:
                continue
            want = desired_status(v, served, index.shadowed if index is not None else {}, self.clock())
            shown = _comparable(want)
            if shown == _comparable(v.obj.status) or shown == self._sent.get(key):
                continue
            try:
                await self.source.patch_status(v.obj.namespace, v.obj.name, want)
            except NotFound:
                continue  # deleted meanwhile
            except AdapterError as e:
                log.warning("cannot write MetricRule status", extra={"metricrule": v.obj.source, "error": e.message})
                continue
            self._sent[key] = shown
            written += 1
        return written

    async def run(self, reload: ReloadFn, index: Callable[[], SeriesIndex | None]) -> None:
        """Until cancelled: on every change judge again, ``reload`` when the accepted rules changed,
        then bring the statuses up to date (also every ``republish`` seconds, as discovery moves)."""
        assert self._wake is not None, "load() first"
        wake = self._wake
        while True:
            try:
                if self.judge_now() or self._unapplied:  # a failed reload (e.g. a bad rules file) is retried
                    self._unapplied = not await reload("MetricRules changed")
                await self.publish(index())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("MetricRule update failed; retrying at the next change")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.republish)
            wake.clear()
