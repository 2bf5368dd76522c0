"""Query-result cache with per-key single-flight, and the last-known-value store. No I/O.

``QueryCache`` is a bounded TTL + LRU map whose ``get_or_load`` guarantees that, for one key,
at most one loader call is in flight at a time: concurrent callers for the same key await the
same load ("coalesced"). The load runs in its own task, so a caller that is cancelled (e.g. its
request timed out) never cancels the shared load for the others; if every caller goes away the
load still finishes and populates the cache.

Loop confinement: both classes are meant to be used from ONE asyncio event loop (the one that
serves requests). They take no lock because nothing here awaits between reading and writing the
maps: every mutation happens in a synchronous stretch of code, so asyncio tasks cannot interleave
inside it. Do not share an instance between threads or event loops (cachetools' caches are not
thread-safe either, which is why this module does not wrap them).

Events reported through ``on_event`` (for ``adapter.observability.Metrics.cache_event``):
``hit`` (fresh entry returned), ``miss`` (this call starts the loader), ``coalesced`` (this call
waits for a load already in flight), ``evict`` (an entry was dropped to respect ``max_entries``
or ``max_bytes``; expiry is not an eviction).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

EVENTS = ("hit", "miss", "coalesced", "evict", "refresh")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float
    size: int
    seq: int
    refresh_at: float
    ttl: float


class QueryCache(Generic[K, V]):
    """Bounded TTL/LRU cache with single-flight loads; see the module docstring.

    ``ttl`` is the default time-to-live in seconds (``0`` = never store, but still coalesce
    concurrent identical loads); ``get_or_load(..., ttl=...)`` overrides it per call. A result
    lives from the moment its load *started* (the data is as old as the query), so a load slower
    than its TTL is delivered to its waiters but not stored. ``size_of``/``max_bytes`` bound the
    total estimated size of stored values; a single value larger than ``max_bytes`` is not stored.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] | None = None,
        size_of: Callable[[V], int] | None = None,
        max_bytes: int | None = None,
        refresh_ahead: float = 0.0,
    ) -> None:
        if not 0.0 <= refresh_ahead < 1.0:
            raise ValueError(f"refresh_ahead must be in [0, 1), got {refresh_ahead}")
        self._refresh_ahead = refresh_ahead
        if ttl < 0:
            raise ValueError(f"ttl must be >= 0, got {ttl}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if max_bytes is not None and size_of is None:
            raise ValueError("max_bytes needs size_of")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._on_event = on_event
        self._size_of = size_of
        self._max_bytes = max_bytes
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()  # LRU first, MRU last
        self._expiry: list[tuple[float, int, K]] = []  # min-heap; stale records skipped by seq
        self._seq = itertools.count()
        self._bytes = 0
        self._inflight: dict[K, asyncio.Task[V]] = {}

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of stored entries (expired ones not yet purged included)."""
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Sum of ``size_of`` over stored entries (0 without ``size_of``)."""
        return self._bytes

    @property
    def inflight(self) -> int:
        """Number of loads currently running."""
        return len(self._inflight)

    def peek(self, key: K) -> V | None:
        """The fresh value for ``key`` or None; does not load, touch LRU order or emit events."""
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self._clock():
            return None
        return entry.value

    def entry_info(self, key: K) -> tuple[float, float] | None:
        """(age in seconds, TTL) of the fresh entry for ``key``, or None; touches nothing."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or entry.expires_at <= now:
            return None
        return entry.ttl - (entry.expires_at - now), entry.ttl

    def loading(self, key: K) -> bool:
        """Whether a load for ``key`` is in flight."""
        return key in self._inflight

    async def get_or_load(self, key: K, loader: Callable[[], Awaitable[V]], ttl: float | None = None) -> V:
        """Fresh cached value, else the result of the one in-flight/new ``loader()`` call for ``key``.

        Exceptions from the loader reach every waiter and are not cached. Cancelling this call
        does not cancel the load.
        """
        entry = self._entries.get(key)
        if entry is not None:
            now = self._clock()
            if entry.expires_at > now:
                self._entries.move_to_end(key)
                self._emit("hit")
                if now >= entry.refresh_at and key not in self._inflight:
                    self._emit("refresh")
                    self._start(key, loader, entry.ttl)
                return entry.value
            self._remove(key)
        task = self._inflight.get(key)
        if task is None:
            eff_ttl = self._ttl if ttl is None else ttl
            if eff_ttl < 0:
                raise ValueError(f"ttl must be >= 0, got {eff_ttl}")
            self._emit("miss")
            task = self._start(key, loader, eff_ttl)
        else:
            self._emit("coalesced")
        # shield: cancelling this waiter must not cancel the shared load.
        return await asyncio.shield(task)

    # -- writing ---------------------------------------------------------------------------

    def invalidate(self, key: K) -> None:
        """Drop ``key``; a load in flight for it still answers its waiters but is not stored."""
        self._remove(key)
        self._inflight.pop(key, None)

    def clear(self) -> None:
        """Drop everything; loads in flight answer their waiters but are not stored."""
        self._entries.clear()
        self._expiry.clear()
        self._bytes = 0
        self._inflight.clear()

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store ``value`` directly (TTL from now)."""
        self._store(key, value, self._clock(), self._ttl if ttl is None else ttl)

    # -- internals -------------------------------------------------------------------------

    def _emit(self, event: str) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _start(self, key: K, loader: Callable[[], Awaitable[V]], ttl: float) -> asyncio.Task[V]:
        task = asyncio.get_running_loop().create_task(self._load(key, loader, ttl))
        self._inflight[key] = task
        task.add_done_callback(functools.partial(self._settled, key))
        return task

    async def _load(self, key: K, loader: Callable[[], Awaitable[V]], ttl: float) -> V:
        started = self._clock()
        value = await loader()
        # Store only if this load is still the registered one (not invalidated/cleared meanwhile).
        if self._inflight.get(key) is asyncio.current_task():
            del self._inflight[key]
            self._store(key, value, started, ttl)
        return value

    def _settled(self, key: K, task: asyncio.Task[V]) -> None:
        # Unregister failed/cancelled loads, and retrieve their exception so that a load nobody
        # awaits any more is not reported as "exception was never retrieved".
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()

    def _store(self, key: K, value: V, started: float, ttl: float) -> None:
        if ttl <= 0:
            return
        now = self._clock()
        expires_at = started + ttl
        if expires_at <= now:
            return
        size = self._size_of(value) if self._size_of is not None else 0
        if self._max_bytes is not None and size > self._max_bytes:
            self._remove(key)
            return
        self._remove(key)
        self._purge_expired(now)
        seq = next(self._seq)
        refresh_at = expires_at - ttl * self._refresh_ahead if self._refresh_ahead else float("inf")
        self._entries[key] = _Entry(value, expires_at, size, seq, refresh_at, ttl)
        self._bytes += size
        heapq.heappush(self._expiry, (expires_at, seq, key))
        while len(self._entries) > self._max_entries or (
            self._max_bytes is not None and self._bytes > self._max_bytes
        ):
            old_key, old = self._entries.popitem(last=False)
            self._bytes -= old.size
            self._emit("evict")
            if old_key == key:  # cannot happen: the new entry is MRU and fits on its own
                break
        if len(self._expiry) > 2 * len(self._entries) + 64:
            self._compact_expiry()

    def _remove(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def _purge_expired(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry.seq == seq:
                self._remove(key)

    def _compact_expiry(self) -> None:
        self._expiry = [(e.expires_at, e.seq, k) for k, e in self._entries.items()]
        heapq.heapify(self._expiry)


class LastKnownStore(Generic[K]):
    """Bounded LRU of ``key -> (value, sample_timestamp)`` for the ``lastKnown`` missing-data policy.

    Timestamps are the samples' own (Unix seconds). ``put`` never replaces a newer sample with
    an older one. Loop-confined like ``QueryCache``.
    """

    def __init__(self, *, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max_entries = max_entries
        self._items: OrderedDict[K, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: K, value: float, ts: float) -> None:
        old = self._items.get(key)
        if old is not None and old[1] > ts:
            self._items.move_to_end(key)
            return
        self._items[key] = (value, ts)
        self._items.move_to_end(key)
        while len(self._items) > self._max_entries:
            self._items.popitem(last=False)

    def get(self, key: K, now: float, max_age: float) -> tuple[float, float] | None:
        """``(value, ts)`` if known and ``now - ts <= max_age``, else None."""
        item = self._items.get(key)
        if item is None or now - item[1] > max_age:
            return None
        self._items.move_to_end(key)
        return item

    def invalidate(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()
