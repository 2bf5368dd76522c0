"""QueryCache / LastKnownStore: injected clock, no sleeps (``asyncio.sleep(0)`` only yields)."""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from adapter.cache import LastKnownStore, QueryCache, key_bytes

T = TypeVar("T")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingLoader:
    """``loader()`` returns ``value`` (or raises ``error``), optionally after ``gate`` is set."""

    def __init__(self, value: object = "v", gate: asyncio.Event | None = None,
                 error: BaseException | None = None) -> None:
        self.calls = 0
        self.value = value
        self.gate = gate
        self.error = error

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def yield_to_loop(times: int = 3) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


def make(clock: FakeClock | None = None, **kw: Any) -> tuple[QueryCache[Any, Any], Counter[str]]:
    events: Counter[str] = Counter()
    kw.setdefault("ttl", 15.0)
    kw.setdefault("max_entries", 100)
    cache: QueryCache[Any, Any] = QueryCache(
        clock=clock or FakeClock(), on_event=lambda e: events.update([e]), **kw)
    return cache, events


def test_hit_miss_and_expiry() -> None:
    async def main() -> None:
        clock = FakeClock()
        cache, events = make(clock, ttl=15.0)
        loader = CountingLoader("a")
        assert await cache.get_or_load("k", loader) == "a"
        assert await cache.get_or_load("k", loader) == "a"
        assert loader.calls == 1
        assert events == {"miss": 1, "hit": 1}
        clock.advance(14.9)
        assert await cache.get_or_load("k", loader) == "a"
        assert loader.calls == 1
        clock.advance(0.1)  # exactly ttl: expired
        assert cache.peek("k") is None
        assert await cache.get_or_load("k", loader) == "a"
        assert loader.calls == 2
        assert events == {"miss": 2, "hit": 2}

    run(main())


def test_per_call_ttl_overrides_default() -> None:
    async def main() -> None:
        clock = FakeClock()
        cache, _ = make(clock, ttl=15.0)
        short, long_ = CountingLoader(1), CountingLoader(2)
        await cache.get_or_load("short", short, ttl=1.0)
        await cache.get_or_load("long", long_, ttl=60.0)
        clock.advance(2.0)
        assert cache.peek("short") is None
        assert cache.peek("long") == 2
        clock.advance(57.0)
        assert cache.peek("long") == 2
        clock.advance(1.0)
        assert cache.peek("long") is None
        with pytest.raises(ValueError):
            await cache.get_or_load("bad", short, ttl=-1.0)

    run(main())


def test_ttl_counts_from_load_start() -> None:
    async def main() -> None:
        clock = FakeClock()
        cache, _ = make(clock, ttl=10.0)
        gate = asyncio.Event()
        loader = CountingLoader("slow", gate=gate)
        task = asyncio.create_task(cache.get_or_load("k", loader))
        await yield_to_loop()
        clock.advance(4.0)  # the query took 4 s
        gate.set()
        assert await task == "slow"
        clock.advance(5.9)
        assert cache.peek("k") == "slow"
        clock.advance(0.1)
        assert cache.peek("k") is None
        # A load slower than its TTL answers its waiters but is not stored.
        gate2 = asyncio.Event()
        task = asyncio.create_task(cache.get_or_load("k2", CountingLoader("x", gate=gate2)))
        await yield_to_loop()
        clock.advance(11.0)
        gate2.set()
        assert await task == "x"
        assert cache.peek("k2") is None
        assert "k2" not in cache._entries

    run(main())


def test_single_flight_100_concurrent_gets_one_loader_call() -> None:
    async def main() -> None:
        cache, events = make()
        gate = asyncio.Event()
        loader = CountingLoader("shared", gate=gate)
        tasks = [asyncio.create_task(cache.get_or_load("k", loader)) for _ in range(100)]
        await yield_to_loop()
        assert cache.inflight == 1
        gate.set()
        results = await asyncio.gather(*tasks)
        assert results == ["shared"] * 100
        assert loader.calls == 1
        assert events == {"miss": 1, "coalesced": 99}
        assert cache.inflight == 0
        assert await cache.get_or_load("k", loader) == "shared"
        assert loader.calls == 1

    run(main())


def test_different_keys_load_independently() -> None:
    async def main() -> None:
        cache, events = make()
        gate = asyncio.Event()
        loaders = {k: CountingLoader(k, gate=gate) for k in "abc"}
        tasks = [asyncio.create_task(cache.get_or_load(k, loaders[k])) for k in "abcabc"]
        await yield_to_loop()
        gate.set()
        assert await asyncio.gather(*tasks) == list("abcabc")
        assert all(ld.calls == 1 for ld in loaders.values())
        assert events == {"miss": 3, "coalesced": 3}

    run(main())


def test_exception_reaches_every_waiter_and_is_not_cached() -> None:
    async def main() -> None:
        cache, _ = make()
        gate = asyncio.Event()
        loader = CountingLoader(gate=gate, error=RuntimeError("prometheus down"))
        tasks = [asyncio.create_task(cache.get_or_load("k", loader)) for _ in range(10)]
        await yield_to_loop()
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and str(r) == "prometheus down" for r in results)
        assert loader.calls == 1
        assert len(cache) == 0
        assert cache.inflight == 0
        loader.error = None
        loader.value = "recovered"
        assert await cache.get_or_load("k", loader) == "recovered"
        assert loader.calls == 2

    run(main())


def test_cancelled_waiter_does_not_cancel_the_shared_load() -> None:
    async def main() -> None:
        cache, _ = make()
        gate = asyncio.Event()
        loader = CountingLoader("v", gate=gate)
        first = asyncio.create_task(cache.get_or_load("k", loader))  # starts the load
        others = [asyncio.create_task(cache.get_or_load("k", loader)) for _ in range(3)]
        await yield_to_loop()
        first.cancel()  # e.g. its request timed out
        others[0].cancel()
        await yield_to_loop()
        assert first.cancelled() and others[0].cancelled()
        gate.set()
        assert await asyncio.gather(*others[1:]) == ["v", "v"]
        assert loader.calls == 1
        assert cache.peek("k") == "v"

    run(main())


def test_all_waiters_gone_load_still_populates_cache() -> None:
    async def main() -> None:
        cache, events = make()
        gate = asyncio.Event()
        loader = CountingLoader("late", gate=gate)
        waiters = [asyncio.create_task(cache.get_or_load("k", loader)) for _ in range(5)]
        await yield_to_loop()
        for w in waiters:
            w.cancel()
        await yield_to_loop()
        assert cache.inflight == 1
        gate.set()
        await yield_to_loop()
        assert cache.inflight == 0
        assert cache.peek("k") == "late"
        assert await cache.get_or_load("k", loader) == "late"
        assert loader.calls == 1
        assert events["hit"] == 1

    run(main())


def test_failed_load_nobody_awaits_is_retrieved_quietly() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _l, ctx: reported.append(ctx))
        cache, _ = make()
        gate = asyncio.Event()
        waiter = asyncio.create_task(cache.get_or_load("k", CountingLoader(gate=gate, error=ValueError("x"))))
        await yield_to_loop()
        waiter.cancel()
        await yield_to_loop()
        gate.set()
        await yield_to_loop()
        assert cache.inflight == 0
        assert len(cache) == 0
        assert reported == []

    run(main())


def test_ttl_zero_never_stores_but_still_coalesces() -> None:
    async def main() -> None:
        cache, events = make(ttl=0.0)
        gate = asyncio.Event()
        loader = CountingLoader("v", gate=gate)
        tasks = [asyncio.create_task(cache.get_or_load("k", loader)) for _ in range(20)]
        await yield_to_loop()
        gate.set()
        assert await asyncio.gather(*tasks) == ["v"] * 20
        assert loader.calls == 1
        assert len(cache) == 0
        assert await cache.get_or_load("k", loader) == "v"
        assert loader.calls == 2
        assert events == {"miss": 2, "coalesced": 19}
        # per-call ttl=0 on a caching instance
        cache2, _ = make(ttl=15.0)
        await cache2.get_or_load("k", loader, ttl=0)
        assert len(cache2) == 0

    run(main())


def test_lru_eviction_keeps_recently_used() -> None:
    async def main() -> None:
        cache, events = make(max_entries=3)
        for k in "abc":
            await cache.get_or_load(k, CountingLoader(k))
        await cache.get_or_load("a", CountingLoader("never"))  # hit: a becomes MRU
        await cache.get_or_load("d", CountingLoader("d"))  # evicts b (LRU)
        assert cache.peek("b") is None
        assert [cache.peek(k) for k in "acd"] == ["a", "c", "d"]
        assert events["evict"] == 1

    run(main())


def test_eviction_bound_under_random_100k_keys() -> None:
    async def main() -> None:
        clock = FakeClock()
        max_entries = 500
        cache, events = make(clock, ttl=3600.0, max_entries=max_entries)
        rng = random.Random(42)
        loader = CountingLoader(0)
        peak = 0
        for i in range(100_000):
            # skewed pattern: hot keys re-requested, a long tail of one-off keys
            key = rng.randrange(200) if rng.random() < 0.5 else rng.randrange(1_000_000)
            ttl = None if i % 3 else rng.choice([0.0, 0.5, 5.0])
            await cache.get_or_load(key, loader, ttl=ttl)
            peak = max(peak, len(cache))
            assert len(cache) <= max_entries
            if i % 1000 == 0:
                clock.advance(1.0)
        assert peak == max_entries
        assert cache.inflight == 0
        assert events["miss"] == loader.calls
        assert events["hit"] + events["miss"] == 100_000
        # The expiry heap is compacted, never unbounded.
        assert len(cache._expiry) <= 2 * max_entries + 64

    run(main())


def test_max_bytes_counts_each_entry_and_its_key() -> None:
    """Tiny values under many keys: the bound holds by what the entries cost, not only the values."""
    cache, _ = make(ttl=60.0, max_entries=100_000, size_of=lambda v: 0, max_bytes=30_000, entry_bytes=300)
    for i in range(1000):
        cache.put(f"query-{i:04d}", None)
    assert len(cache) == 30_000 // (300 + len("query-0000"))
    assert cache.total_bytes == len(cache) * (300 + len("query-0000")) <= 30_000
    with pytest.raises(ValueError):
        QueryCache(ttl=1, max_entries=1, entry_bytes=-1)


def test_max_bytes_bound() -> None:
    async def main() -> None:
        cache, events = make(ttl=60.0, max_entries=1000, size_of=len, max_bytes=100)
        rng = random.Random(7)
        for i in range(2000):
            value = "x" * rng.randrange(1, 40)
            await cache.get_or_load(i, CountingLoader(value))
            assert cache.total_bytes <= 100
            assert cache.total_bytes == sum(len(cache.peek(k) or "") for k in list(cache._entries))
        assert events["evict"] > 0
        # A value larger than the whole budget is returned but not stored.
        assert await cache.get_or_load("huge", CountingLoader("y" * 101)) == "y" * 101
        assert cache.peek("huge") is None
        assert cache.total_bytes <= 100
        with pytest.raises(ValueError):
            QueryCache(ttl=1, max_entries=1, max_bytes=10)

    run(main())


def test_expired_entries_purged_on_insert() -> None:
    async def main() -> None:
        clock = FakeClock()
        cache, events = make(clock, ttl=5.0, max_entries=10)
        for k in range(10):
            await cache.get_or_load(k, CountingLoader(k))
        clock.advance(5.0)
        await cache.get_or_load("new", CountingLoader("new"))
        assert len(cache) == 1
        assert events["evict"] == 0  # expiry is not an eviction

    run(main())


def test_invalidate_and_clear() -> None:
    async def main() -> None:
        cache, _ = make()
        await cache.get_or_load("a", CountingLoader("a"))
        await cache.get_or_load("b", CountingLoader("b"))
        cache.invalidate("a")
        assert cache.peek("a") is None and cache.peek("b") == "b"
        # invalidating during a load: waiters get the value, but it is not stored
        gate = asyncio.Event()
        waiter = asyncio.create_task(cache.get_or_load("c", CountingLoader("old", gate=gate)))
        await yield_to_loop()
        cache.invalidate("c")
        fresh = CountingLoader("new")
        assert await cache.get_or_load("c", fresh) == "new"  # a new load, not the stale one
        gate.set()
        assert await waiter == "old"
        assert cache.peek("c") == "new"
        cache.clear()
        assert len(cache) == 0 and cache.total_bytes == 0

    run(main())


def test_put_and_constructor_validation() -> None:
    clock = FakeClock()
    cache, _ = make(clock, ttl=5.0)
    cache.put("k", 1)
    assert cache.peek("k") == 1
    clock.advance(5.0)
    assert cache.peek("k") is None
    with pytest.raises(ValueError):
        QueryCache(ttl=-1, max_entries=1)
    with pytest.raises(ValueError):
        QueryCache(ttl=1, max_entries=0)


def test_loader_type_is_any_awaitable() -> None:
    async def main() -> None:
        cache: QueryCache[str, int] = QueryCache(ttl=1.0, max_entries=2, clock=FakeClock())

        def loader() -> Awaitable[int]:
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            fut.set_result(7)
            return fut

        f: Callable[[], Awaitable[int]] = loader
        assert await cache.get_or_load("k", f) == 7

    run(main())


# -- LastKnownStore ------------------------------------------------------------------------

def test_last_known_respects_max_age() -> None:
    store: LastKnownStore[str] = LastKnownStore(max_entries=10)
    store.put("pod-a", 42.0, ts=1000.0)
    assert store.get("pod-a", now=1100.0, max_age=100.0) == (42.0, 1000.0)
    assert store.get("pod-a", now=1100.1, max_age=100.0) is None
    assert store.get("missing", now=1000.0, max_age=100.0) is None


def test_last_known_never_goes_back_in_time() -> None:
    store: LastKnownStore[str] = LastKnownStore(max_entries=10)
    store.put("k", 2.0, ts=200.0)
    store.put("k", 1.0, ts=100.0)
    assert store.get("k", now=200.0, max_age=10.0) == (2.0, 200.0)
    store.put("k", 3.0, ts=300.0)
    assert store.get("k", now=300.0, max_age=10.0) == (3.0, 300.0)


def test_last_known_is_bounded_lru() -> None:
    store: LastKnownStore[int] = LastKnownStore(max_entries=100)
    rng = random.Random(1)
    store.put(-1, 1.0, ts=0.0)
    for i in range(10_000):
        store.put(rng.randrange(100_000), float(i), ts=float(i))
        assert store.get(-1, now=float(i), max_age=1e9) is not None  # kept alive by use
        assert len(store) <= 100
    store.invalidate(-1)
    assert store.get(-1, now=0.0, max_age=1e9) is None
    store.clear()
    assert len(store) == 0
    with pytest.raises(ValueError):
        LastKnownStore(max_entries=0)


def test_refresh_ahead_renews_a_hot_entry_without_making_anyone_wait() -> None:
    clock = FakeClock()
    cache, events = make(clock, ttl=10.0, refresh_ahead=0.2)
    loader = CountingLoader("v1")

    async def scenario() -> None:
        assert await cache.get_or_load("k", loader) == "v1"
        clock.advance(7.0)  # 3 s left: outside the last 20% (2 s) of the TTL
        assert await cache.get_or_load("k", loader) == "v1"
        assert loader.calls == 1
        clock.advance(1.5)  # 1.5 s left: a hit that starts one background reload
        loader.value = "v2"
        assert await cache.get_or_load("k", loader) == "v1"  # answered at once from the entry
        assert await cache.get_or_load("k", loader) == "v1"  # the reload is in flight: no second one
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert loader.calls == 2
        clock.advance(5.0)  # past the first entry's expiry: the reloaded value is there
        assert await cache.get_or_load("k", loader) == "v2"
        assert loader.calls == 2

    run(scenario())
    assert events["refresh"] == 1 and events["miss"] == 1


def test_refresh_ahead_bounds() -> None:
    with pytest.raises(ValueError, match="refresh_ahead"):
        QueryCache(ttl=1, max_entries=1, refresh_ahead=1.0)


def _lk_key(i: int) -> tuple[str, ...]:
    return ("nvidia_gpu_utilization_percent", "pods", f"bench-{i % 100:03d}", f"gpu-app-hd2ptgdr4v-{i:05d}", "")


def test_last_known_is_bounded_by_bytes() -> None:
    store: LastKnownStore[tuple[str, ...]] = LastKnownStore(max_entries=100_000, max_bytes=50_000)
    for i in range(5000):
        store.put(_lk_key(i), 1.0, ts=float(i))
        assert store.total_bytes <= 50_000
    assert 0 < len(store) < 5000
    assert store.get(_lk_key(4999), now=5000.0, max_age=1e9) == (1.0, 4999.0)  # the newest stay
    with pytest.raises(ValueError):
        LastKnownStore(max_entries=1, max_bytes=0)


def test_last_known_byte_estimate_covers_what_entries_hold() -> None:
    store: LastKnownStore[tuple[str, ...]] = LastKnownStore(max_entries=100_000, max_bytes=1 << 40)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5000):
            store.put(_lk_key(i), i * 1.5, ts=1.7e9 + i)
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert real <= store.total_bytes <= 1.5 * real, (real, store.total_bytes)
    for i in range(0, 5000, 2):
        store.invalidate(_lk_key(i))
    store.put(_lk_key(1), 0.0, ts=1.0)  # older: ignored, nothing counted twice
    assert store.total_bytes == sum(LastKnownStore.ENTRY_BYTES + key_bytes(k) for k in store._items)
