"""What starts a rules reload: the polled ``--config`` file (a ConfigMap's ``..data`` symlink swap, an
in-place write, a file that disappears and comes back), SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from adapter.rulewatch import ConfigWatcher, observe, reload_on_sighup


class Calls:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self, reason: str) -> bool:
        self.reasons.append(reason)
        return True


def configmap(root: Path, text: str) -> Path:
    """``root/rules.yaml`` -> ``..data/rules.yaml``, ``..data`` -> ``..v0`` (as the kubelet writes it)."""
    root.mkdir()
    (root / "..v0").mkdir()
    (root / "..v0" / "rules.yaml").write_text(text)
    (root / "..data").symlink_to("..v0")
    (root / "rules.yaml").symlink_to("..data/rules.yaml")
    return root / "rules.yaml"


def swap(root: Path, version: str, text: str) -> None:
    (root / version).mkdir()
    (root / version / "rules.yaml").write_text(text)
    (root / "..tmp").symlink_to(version)
    os.replace(root / "..tmp", root / "..data")


def test_a_configmap_swap_asks_for_one_reload(tmp_path: Path) -> None:
    cfg = configmap(tmp_path / "cm", "rules: [a]")
    calls = Calls()
    watcher = ConfigWatcher(cfg, calls, 5.0)

    async def go() -> None:
        assert not await watcher.check_now()
        swap(tmp_path / "cm", "..v1", "rules: [b]")
        assert await watcher.check_now()
        assert not await watcher.check_now()  # once per change, not at every poll
        swap(tmp_path / "cm", "..v2", "rules: [b]")  # same bytes, new target: the reloader decides
        assert await watcher.check_now()
    asyncio.run(go())
    assert calls.reasons == ["file changed", "file changed"]


def test_in_place_writes_and_a_file_that_comes_back(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("rules: [a]")
    calls = Calls()
    watcher = ConfigWatcher(cfg, calls, 5.0)

    async def go() -> None:
        cfg.write_text("rules: [b]")
        assert await watcher.check_now()
        cfg.unlink()
        assert await watcher.check_now()  # gone: the reload fails and the current rules stay
        cfg.write_text("rules: [b]")
        assert await watcher.check_now()
    asyncio.run(go())
    assert len(calls.reasons) == 3


def test_a_change_before_the_watcher_started_is_not_lost(tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("rules: [a]")
    seen = observe(cfg)  # taken before the initial load read the file
    cfg.write_text("rules: [b]")
    calls = Calls()
    assert asyncio.run(ConfigWatcher(cfg, calls, 5.0, seen).check_now())


def test_sighup_asks_for_a_reload() -> None:
    calls = Calls()

    async def go() -> None:
        remove = reload_on_sighup(calls)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(1000):
                if calls.reasons:
                    break
                await asyncio.sleep(0.01)
        finally:
            remove()
    asyncio.run(go())
    assert calls.reasons == ["SIGHUP"]


def test_sighup_off_the_main_thread_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    """An embedded server (an event loop on another thread) cannot take signals; it still serves."""
    done: list[bool] = []

    def in_thread() -> None:
        async def go() -> None:
            reload_on_sighup(Calls())()
            done.append(True)
        asyncio.run(go())
    t = threading.Thread(target=in_thread)
    t.start()
    t.join(timeout=30)
    assert done == [True]
    assert any("SIGHUP cannot be handled here" in r.getMessage() for r in caplog.records)
