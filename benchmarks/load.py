"""Load generators: closed loop, open loop (fixed rate) and bursts, over HTTP/1.1 keep-alive.

Two clients: ``raw`` (a minimal asyncio HTTP/1.1 client: about 10x less client CPU per request
than httpx, which matters on a 2-core machine where the client competes with the adapter) and
``httpx`` (``httpx.AsyncClient``, HTTP/1.1, ``verify=False`` for the local self-signed cert).
A load can be split over several client processes (``procs``); results are merged.

Everything is bounded: durations, per-request timeouts, in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Kind = Literal["closed", "open", "burst"]


@dataclass(frozen=True)
class Spec:
    """One load run against ``base_url`` (``http://`` or ``https://127.0.0.1:PORT``)."""

    kind: Kind
    base_url: str
    paths: tuple[str, ...]
    duration: float = 10.0  # closed/open: seconds of load; burst: deadline of each round
    clients: int = 16  # closed: concurrent clients; open/burst: connections
    rate: float = 0.0  # open: requests/s
    rounds: int = 1  # burst: how many bursts
    gap: float = 1.0  # burst: seconds between burst starts
    timeout: float = 5.0  # per request
    max_inflight: int = 5000  # open: requests beyond this are counted as "dropped" errors
    client: Literal["raw", "httpx"] = "raw"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0  # seconds the load ran (bursts: sum of makespans)
    client_cpu: float = 0.0  # CPU seconds used by the client process(es)
    bytes: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def merge(self, other: Result) -> None:
        self.latencies.extend(other.latencies)
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.wall = max(self.wall, other.wall)
        self.client_cpu += other.client_cpu
        self.bytes += other.bytes


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[idx]


# -- clients ---------------------------------------------------------------------------------

def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawConnection:
    """One keep-alive HTTP/1.1 connection; reconnects after errors or ``Connection: close``."""

    def __init__(self, base_url: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        u = urllib.parse.urlsplit(base_url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl = _insecure_context() if u.scheme == "https" else None
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        self._head = f"Host: {self.host}:{self.port}\r\nAccept: application/json\r\n{extra}\r\n".encode()
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self._w is None:
            self._r, self._w = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        r, w = self._r, self._w
        assert r is not None
        try:
            w.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self._head)
            head = await r.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, chunked, close = -1, False, False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"transfer-encoding":
                    chunked = b"chunked" in v.lower()
                elif k == b"connection":
                    close = b"close" in v.lower()
            if chunked:
                parts = []
                while True:
                    size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                    data = await r.readexactly(size + 2)
                    if size == 0:
                        break
                    parts.append(data[:-2])
                body = b"".join(parts)
            elif length >= 0:
                body = await r.readexactly(length)
            else:
                body, close = await r.read(), True
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        self._r = self._w = None


class HttpxConnection:
    def __init__(self, client: Any) -> None:
        self._c = client

    async def get(self, path: str) -> tuple[int, bytes]:
        resp = await self._c.get(path)
        return resp.status_code, resp.content

    def close(self) -> None:
        pass


@contextlib.asynccontextmanager
async def connections(spec: Spec, n: int) -> Any:
    if spec.client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=spec.base_url, verify=False, http2=False, limits=limits,
                                     timeout=spec.timeout, headers=dict(spec.headers)) as client:
            yield [HttpxConnection(client) for _ in range(n)]
    else:
        conns = [RawConnection(spec.base_url, spec.headers) for _ in range(n)]
        try:
            yield conns
        finally:
            for c in conns:
                c.close()


Conn = RawConnection | HttpxConnection


async def _one(conn: Conn, path: str, t0: float, res: Result, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            status, body = await conn.get(path)
    except TimeoutError:
        conn.close()
        res.error("timeout")
        return
    except Exception as e:
        res.error(type(e).__name__)
        return
    if status == 200:
        res.latencies.append(time.perf_counter() - t0)
        res.bytes += len(body)
    else:
        res.error(f"http_{status}")


# -- patterns --------------------------------------------------------------------------------

async def _closed(spec: Spec, res: Result) -> None:
    """``clients`` loops, client i cycling over paths[i::clients], each waiting for its answer."""
    async with connections(spec, spec.clients) as conns:
        end = time.perf_counter() + spec.duration

        async def client(i: int) -> None:
            mine = spec.paths[i::spec.clients] or spec.paths
            k = 0
            while time.perf_counter() < end:
                await _one(conns[i], mine[k % len(mine)], time.perf_counter(), res, spec.timeout)
                k += 1

        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(spec.clients)))
        res.wall = time.perf_counter() - start


async def _open(spec: Spec, res: Result) -> None:
    """Request k is due at start + k/rate (path k mod len(paths)); latency counts from the due time."""
    async with connections(spec, spec.clients) as conns:
        free: asyncio.Queue[RawConnection | HttpxConnection] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)
        inflight: set[asyncio.Task[None]] = set()

        async def fire(path: str, due: float) -> None:
            conn = await free.get()
            try:
                remaining = spec.timeout - (time.perf_counter() - due)
                if remaining <= 0:
                    res.error("timeout")
                    return
                await _one(conn, path, due, res, remaining)
            finally:
                free.put_nowait(conn)

        start = time.perf_counter()
        total = int(spec.rate * spec.duration)
        for k in range(total):
            due = start + k / spec.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(inflight) >= spec.max_inflight:
                res.error("dropped")
                continue
            t = asyncio.create_task(fire(spec.paths[k % len(spec.paths)], due))
            inflight.add(t)
            t.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight, timeout=spec.timeout + 1)
        for t in inflight:
            t.cancel()
        res.wall = time.perf_counter() - start


async def _burst(spec: Spec, res: Result) -> None:
    """``rounds`` times: every path at once over ``clients`` connections; wall = sum of makespans."""
    async with connections(spec, spec.clients) as conns:
        for rnd in range(spec.rounds):
            round_start = time.perf_counter()
            queue: asyncio.Queue[str] = asyncio.Queue()
            for p in spec.paths:
                queue.put_nowait(p)

            deadline = round_start + spec.duration

            async def worker(conn: Conn, t0: float, q: asyncio.Queue[str], until: float) -> None:
                while not q.empty() and time.perf_counter() < until:
                    await _one(conn, q.get_nowait(), t0, res, spec.timeout)

            await asyncio.gather(*(worker(c, round_start, queue, deadline) for c in conns))
            for _ in range(queue.qsize()):  # not sent before the round's deadline
                res.error("unsent")
            res.wall += time.perf_counter() - round_start
            if rnd + 1 < spec.rounds:
                await asyncio.sleep(max(0.0, spec.gap - (time.perf_counter() - round_start)))


async def run_async(spec: Spec) -> Result:
    res = Result()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await {"closed": _closed, "open": _open, "burst": _burst}[spec.kind](spec, res)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    res.client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return res


def run_one(spec: Spec) -> Result:
    return asyncio.run(run_async(spec))


def split(spec: Spec, procs: int) -> list[Spec]:
    """Divide a load between ``procs`` client processes (same total clients/rate/paths)."""
    if procs <= 1:
        return [spec]
    parts = []
    for i in range(procs):
        paths = spec.paths[i::procs] or spec.paths
        clients = max(1, spec.clients // procs + (1 if i < spec.clients % procs else 0))
        parts.append(replace(spec, paths=paths, clients=clients, rate=spec.rate / procs))
    return parts


def run(spec: Spec, procs: int = 1) -> Result:
    """Run ``spec`` in this process (procs=1) or split over ``procs`` spawned processes."""
    parts = split(spec, procs)
    if len(parts) == 1:
        return run_one(spec)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(parts)) as pool:
        results = pool.map(run_one, parts)
    merged = Result()
    for r in results:
        merged.merge(r)
    return merged
