"""The rules Reloader on the real serving stack (``adapter.server.build``), with no Prometheus listening
(discovery fails per rule, which never fails a reload): unchanged rules are a no-op, reloads are
serialized, an invalid file keeps the current core, extra rule sources take part, and a replaced core is
closed only after its last request in flight has answered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from adapter.errors import Unavailable
from adapter.naming.resources import StaticResourceMapper
from adapter.observability import Metrics
from adapter.provider.discovery import Relister
from adapter.reload import Reloader, RuleSource
from adapter.rules import LoadedRules, SourcedRule, parse_rules_text
from adapter.server import Built, build, compile_rules
from adapter.settings import Settings
from adapter.swap import Swappable
from tests.support.procs import free_port

RULE = """- seriesQuery: 'gpu_util{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^gpu_util$", as: "{name}"}}
  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'
"""


def rules_file(*names: str) -> str:
    return "rules:\n" + "".join(RULE.format(name=n) for n in names)


def stack(tmp_path: Path, text: str, **kw: Any) -> tuple[Path, Built]:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(text)
    st = Settings(config=cfg, prometheus_url=f"http://127.0.0.1:{free_port()}", prometheus_timeout=2.0)
    return cfg, build(st, registry=CollectorRegistry(), **kw)


def value(built: Built, name: str, **labels: str) -> float | None:
    return built.metrics.registry.get_sample_value(name, labels)


def reloads(built: Built, result: str) -> float | None:
    return value(built, "accel_adapter_config_reloads_total", result=result)


def namers(built: Built) -> list[str]:
    return [n.name_as for n in built.relister.custom]


def test_unchanged_rules_are_a_no_op(tmp_path: Path) -> None:
    cfg, built = stack(tmp_path, rules_file("a"))

    async def go() -> None:
        core = built.core
        assert await built.reloader.reload("test")
        cfg.write_text(rules_file("a"))  # rewritten, same bytes
        assert await built.reloader.reload("test")
        assert built.core is core and built.reloader.reloads == 0
        await built.reloader.stop()
    asyncio.run(go())
    assert reloads(built, "success") == 0 and reloads(built, "failure") == 0
    assert value(built, "accel_adapter_config_last_reload_successful") == 1  # the initial load


def test_a_changed_file_is_served_by_a_new_core(tmp_path: Path) -> None:
    cfg, built = stack(tmp_path, rules_file("a"))

    async def go() -> None:
        built.reloader.start()
        old = built.core
        cfg.write_text(rules_file("a", "b"))
        assert await built.reloader.reload("test")
        assert built.core is not old and namers(built) == ["a", "b"]
        assert built.relister.index is not None  # discovered before it served (Prometheus down: no series)
        await built.reloader.stop()
    asyncio.run(go())
    assert reloads(built, "success") == 1
    assert value(built, "accel_adapter_series_discovery_ok", source=str(cfg), rule="rules[1]") == 0


def test_reloads_are_serialized(tmp_path: Path) -> None:
    cfg, built = stack(tmp_path, rules_file("a"))

    async def go() -> list[bool]:
        cfg.write_text(rules_file("a", "b"))
        results = await asyncio.gather(*(built.reloader.reload(f"test {i}") for i in range(3)))
        await built.reloader.stop()
        return results
    assert asyncio.run(go()) == [True, True, True]
    # the first built and swapped; the others waited for it and found the rules unchanged
    assert built.reloader.reloads == 1 and reloads(built, "success") == 1
    assert namers(built) == ["a", "b"]


@pytest.mark.parametrize(("text", "error"), [
    (rules_file("a") + "  nmae: {as: x}\n", "rules[0].nmae: unknown field"),
    (rules_file("a").replace("avg(<<.Series>>", "avg(<<.Seriez>>"), "rules[0].metricsQuery"),
    ("rules: []\n", "no rules and no externalRules"),
])
def test_an_invalid_file_keeps_the_current_core(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 text: str, error: str) -> None:
    cfg, built = stack(tmp_path, rules_file("a"))

    async def go() -> None:
        core = built.core
        cfg.write_text(text)
        assert not await built.reloader.reload("test")
        assert built.core is core and namers(built) == ["a"]
        assert value(built, "accel_adapter_config_last_reload_successful") == 0
        cfg.write_text(rules_file("a", "c"))
        assert await built.reloader.reload("test")
        assert namers(built) == ["a", "c"]
        assert value(built, "accel_adapter_config_last_reload_successful") == 1
        await built.reloader.stop()
    asyncio.run(go())
    assert reloads(built, "failure") == 1 and reloads(built, "success") == 1
    failed = [r for r in caplog.records if r.getMessage().startswith("rules reload failed")]
    assert len(failed) == 1 and error in failed[0].__dict__["error"], [r.__dict__.get("error") for r in failed]
    assert str(cfg) in failed[0].__dict__["error"]


def test_a_missing_file_keeps_the_current_core(tmp_path: Path) -> None:
    cfg, built = stack(tmp_path, rules_file("a"))

    async def go() -> None:
        cfg.unlink()
        assert not await built.reloader.reload("test")
        assert namers(built) == ["a"]
        await built.reloader.stop()
    asyncio.run(go())


def test_extra_rules_come_first_and_their_change_is_a_reload(tmp_path: Path) -> None:
    extra: list[SourcedRule] = []

    def extra_rules() -> tuple[SourcedRule, ...]:
        return tuple(extra)
    _, built = stack(tmp_path, rules_file("a"), extra_rules=extra_rules)

    async def go() -> None:
        assert await built.reloader.reload("test") and built.reloader.reloads == 0
        rule = parse_rules_text(rules_file("team"), "MetricRule ns1/r").rules[0]
        extra.append(SourcedRule(rule, "MetricRule ns1/r", "rules", 0))
        assert await built.reloader.reload("MetricRule changed")
        assert built.reloader.reloads == 1 and namers(built) == ["team", "a"]
        await built.reloader.stop()
    asyncio.run(go())


# -- the old core is closed only after its last request in flight has answered -------------------

@dataclass
class HeldCore:
    """A core whose app answers once ``release`` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    relister: Relister = field(default_factory=lambda: Relister([], [], _no_series, 60.0, 60.0))

    @property
    def app(self) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        return app

    def rule_ids(self) -> Iterable[tuple[str, str]]:
        return ()

    def close(self) -> None:
        self.closed = True


async def _no_series(_query: str, _max_age: float) -> list[dict[str, str]]:
    return []


def test_the_old_core_closes_after_its_requests_in_flight(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(rules_file("a"))

    async def go() -> None:
        old, new = HeldCore(), HeldCore()
        serving = Swappable(old)
        reloader = Reloader(RuleSource(cfg), lambda _rules: new, serving, Metrics(CollectorRegistry()), "before",
                            drain_timeout=60.0)
        sent: list[dict[str, object]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b""}
        request = asyncio.create_task(serving({"type": "http", "path": "/"}, receive, send))
        await asyncio.sleep(0)  # the request is in the old core now
        assert await reloader.reload("test")
        assert serving.core is new
        for _ in range(5):
            await asyncio.sleep(0)
        assert not old.closed  # its request has not answered
        old.release.set()
        await request
        await asyncio.wait_for(_until(lambda: old.closed), 10)
        assert sent[0]["status"] == 200 and not new.closed
        await reloader.stop()
        assert new.closed
    asyncio.run(go())


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.01)


def test_rule_source_loads_presets_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(rules_file("a"))
    fp, rules = RuleSource(cfg, ("vllm",)).read()
    assert isinstance(rules, LoadedRules) and rules.presets == ("vllm",)
    assert rules.rules[-1].source == str(cfg)
    assert fp != RuleSource(cfg).read()[0]  # the presets are part of the fingerprint


def test_a_failing_extra_rule_source_keeps_the_current_core(tmp_path: Path) -> None:
    broken = [False]

    def extra_rules() -> tuple[SourcedRule, ...]:
        if broken[0]:
            raise RuntimeError("watch cache not synced")
        return ()
    _, built = stack(tmp_path, rules_file("a"), extra_rules=extra_rules)

    async def go() -> None:
        core = built.core
        broken[0] = True
        assert not await built.reloader.reload("MetricRule changed")
        assert built.core is core
        await built.reloader.stop()
    asyncio.run(go())
    assert reloads(built, "failure") == 1
    assert value(built, "accel_adapter_config_last_reload_successful") == 0


def test_a_new_core_starts_from_the_last_good_series_of_shared_series_queries() -> None:
    """Prometheus failing during a reload's discovery: a seriesQuery both rule sets share keeps its series."""
    def namers(text: str) -> list[Any]:
        return compile_rules(load(text), StaticResourceMapper())[0]

    def load(text: str) -> LoadedRules:
        rf = parse_rules_text(text, "rules.yaml")
        return LoadedRules(tuple(SourcedRule(r, "rules.yaml", "rules", i) for i, r in enumerate(rf.rules)), (), ())
    series = [{"__name__": "gpu_util", "namespace": "ns1", "pod": "p1"}]

    async def up(_q: str, _age: float) -> list[dict[str, str]]:
        return series

    async def down(_q: str, _age: float) -> list[dict[str, str]]:
        raise Unavailable("Prometheus is unreachable")

    async def go() -> None:
        old = Relister(namers(rules_file("a")), [], up, 60.0, 60.0)
        await old.update_now()
        new = Relister(namers(rules_file("a", "b")), [], down, 60.0, 60.0)
        new.adopt(old)
        index = await new.update_now()
        assert {m for (_, _, m) in index.custom} >= {"a", "b"}  # the same seriesQuery: both named from it
        fresh = Relister(namers(rules_file("a")), [], down, 60.0, 60.0)
        assert not (await fresh.update_now()).custom  # without adopt: nothing
    asyncio.run(go())
