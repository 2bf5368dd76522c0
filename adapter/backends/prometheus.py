"""Prometheus access through prometheus-api-client, off the event loop, bounded and time-limited.

* Blocking calls run in a thread pool of ``max_concurrency`` threads; an asyncio semaphore that is
  released only when the thread finishes keeps a slow Prometheus from piling up threads.
* Series discovery has its own lane (``DISCOVERY_CONCURRENCY`` threads): a relist against a hung
  Prometheus never holds the slots request queries need, so they fail at ``--prometheus-timeout``
  rather than queueing until ``--request-timeout``.
* Reachability is logged once per change (``reachability.py``), never per call or per urllib3 retry.
* Every call has an explicit timeout and at most one retry (connect errors and 502/503/504), so the
  whole budget fits inside ``--request-timeout`` and the aggregator's deadline.
* The bearer token file is re-read when its mtime or size changes; the token is never logged.
* With ``sigv4`` every request is signed (``sigv4.py``: AWS credential chain, refreshed credentials).
* Queries go by POST (form body) when ``--prometheus-verb POST`` or when the GET URL would exceed
  8 KiB; prometheus-api-client's own POST puts the query in the URL, so that path uses its session.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter

from adapter.backends.reachability import QuietRetry, Reachability, install_retry_filter, short_reason
from adapter.backends.tokenfile import TokenFile
from adapter.errors import AdapterError, InternalError, Unavailable
from adapter.model import DEFAULT_BACKEND, QueryResult, Sample, Tenant

if TYPE_CHECKING:
    from adapter.backends.sigv4 import SigV4

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_GET_URL = 8192
DISCOVERY_CONCURRENCY = 2


@dataclass(frozen=True)
class PrometheusConfig:
    url: str
    verb: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    token_file: Path | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout: float = 10.0
    max_concurrency: int = 8
    sigv4: SigV4 | None = None  # sign every request (Amazon Managed Prometheus)
    name: str = DEFAULT_BACKEND  # the backend's name in the rules file's ``backends`` (messages, metrics)
    params: Mapping[str, str] = field(default_factory=dict)  # query parameters added to every request
    basic_auth_file: Path | None = None  # one line "user:password", re-read when it changes


class _Lane:
    """A bounded set of threads for one kind of call; the semaphore is made on the running loop."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.sem: asyncio.Semaphore | None = None


class PrometheusBackend:
    def __init__(self, cfg: PrometheusConfig, on_call: Callable[[str, str, float], None] | None = None,
                 on_reachable: Callable[[bool], None] | None = None) -> None:
        self.cfg = cfg
        self._on_call = on_call
        self.reachability = Reachability(cfg.url, on_reachable, backend=cfg.name)
        install_retry_filter()
        # what messages call it: the flags' backend stays "Prometheus", as before there were several
        self.what = "Prometheus" if cfg.name == DEFAULT_BACKEND else f"Prometheus backend {cfg.name!r}"
        self._token = TokenFile(cfg.token_file, self.what)
        self._basic = TokenFile(cfg.basic_auth_file, f"{self.what} basic auth")  # "user:password"
        session = requests.Session()
        session.verify = str(cfg.ca_file) if cfg.ca_file else True
        if cfg.client_cert and cfg.client_key:
            session.cert = (str(cfg.client_cert), str(cfg.client_key))
        if cfg.sigv4:
            from adapter.backends.sigv4 import sigv4_auth  # noqa: PLC0415 - botocore (~18 MB) only when signing
            session.auth = sigv4_auth(cfg.sigv4)
        self._url = cfg.url.rstrip("/")
        self._pc = PrometheusConnect(url=self._url, headers=dict(cfg.headers), session=session,
                                     timeout=cfg.timeout, method="GET")
        # read=False: a read timeout is raised as itself (requests.ReadTimeout: "did not answer in time"),
        # not wrapped as a retry-exhausted ConnectionError ("unreachable")
        retry = QuietRetry(total=1, connect=1, read=False, status=1, backoff_factor=0.05,
                           status_forcelist=(502, 503, 504), allowed_methods=None, raise_on_status=False)
        self._queries = _Lane(cfg.max_concurrency, "prometheus")
        self._discovery = _Lane(DISCOVERY_CONCURRENCY, "prometheus-series")
        # one pooled connection per thread of both lanes: never "connection pool is full, discarding"
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1,
                              pool_maxsize=cfg.max_concurrency + DISCOVERY_CONCURRENCY)
        session.mount(self._url, adapter)
        self._session = session

    def close(self) -> None:
        for lane in (self._queries, self._discovery):
            lane.pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # -- blocking calls -------------------------------------------------------------------------
    def _headers(self, tenant: Tenant | None = None) -> dict[str, str]:
        headers = dict(self.cfg.headers)
        token = self._token.get()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        basic = self._basic.get()
        if basic:
            headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode("ascii")
        if tenant is not None:
            headers.update(tenant.headers)  # the tenant's on top of the backend's own
        return headers

    def _params(self, params: dict[str, str], tenant: Tenant | None) -> dict[str, str]:
        """The call's parameters with the backend's ``queryParams``, less those the tenant sets (its own go
        in the URL, ``_raw``: the tenant wins)."""
        if self.cfg.params:
            params = {**self.cfg.params, **params}
            if tenant is not None and tenant.params:
                for key, _ in tenant.params:
                    params.pop(key, None)
        return params

    def _timed(self, endpoint: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        started = self.reachability.started()
        outcome = "success"
        try:
            result = fn()
            self.reachability.success()
            return result
        except requests.ConnectTimeout as e:
            outcome = "unreachable"
            self.reachability.failure(f"no connection within {self.cfg.timeout:g}s", started)
            raise Unavailable(f"{self.what} is unreachable") from e
        except requests.Timeout as e:
            outcome = "timeout"
            self.reachability.failure(f"no answer within {self.cfg.timeout:g}s", started, timeout=True)
            raise Unavailable(f"{self.what} did not answer in time") from e
        except requests.ConnectionError as e:
            outcome = "unreachable"
            self.reachability.failure(short_reason(e), started)
            raise Unavailable(f"{self.what} is unreachable") from e
        except PrometheusApiClientException as e:
            outcome = "error"
            text = str(e)
            status = next((c for c in ("502", "503", "504") if f"HTTP Status Code {c}" in text), None)
            if status is not None:
                outcome = "unavailable"
                self.reachability.failure(f"HTTP {status}", started)
                raise Unavailable(f"{self.what} is unavailable") from e
            self.reachability.success()  # it answered: reachable, the call itself failed
            raise InternalError("Internal error occurred: unable to fetch metrics",
                                details={"causes": [{"message": "unable to fetch metrics"}]}) from e
        except AdapterError:
            outcome = "error"
            raise
        except (requests.RequestException, ValueError, KeyError) as e:
            outcome = "error"
            raise InternalError("Internal error occurred: unable to fetch metrics",
                                details={"causes": [{"message": "unable to fetch metrics"}]}) from e
        finally:
            if self._on_call:
                self._on_call(endpoint, outcome, time.perf_counter() - start)

    def _raw(self, path: str, params: Mapping[str, str], *, post: bool, tenant: Tenant | None = None) -> bytes:
        """One API call on our session (form body for POST), raising like prometheus-api-client does.
        A tenant's parameters go in the URL (prom-label-proxy reads them there), its headers on top."""
        url = f"{self._url}{path}"
        params = self._params(dict(params), tenant)
        if tenant is not None and tenant.params:
            url += "?" + urllib.parse.urlencode(tenant.params)
        headers = self._headers(tenant)
        if post:
            resp = self._session.post(url, data=params, headers=headers, timeout=self.cfg.timeout)
        else:
            resp = self._session.get(url, params=params, headers=headers, timeout=self.cfg.timeout)
        if resp.status_code != 200:
            raise PrometheusApiClientException(f"HTTP Status Code {resp.status_code} ({resp.content[:500]!r})")
        content: bytes = resp.content
        return content

    def series_sync(self, match: str, max_age: float, tenant: Tenant | None = None) -> list[dict[str, str]]:
        """``/api/v1/series`` for ``match`` over the last ``max_age`` seconds, one entry per series.

        Series discovery needs each series' name and label *names* only, so label values are blanked
        while the JSON is decoded and equal shapes share one dict: 32,000 DCGM series with a dozen
        labels each decode to a few dozen small dicts instead of ~400,000 strings (tens of MB at
        every relist).
        """
        def call() -> list[dict[str, str]]:
            now = time.time()
            params = {"match[]": match, "start": f"{now - max_age:.3f}", "end": f"{now:.3f}"}
            body = self._raw("/api/v1/series", params, post=self.cfg.verb == "POST", tenant=tenant)
            data = json.loads(body, object_hook=_SeriesShapes().hook)["data"]
            if not isinstance(data, list):
                raise ValueError("unexpected /api/v1/series data")
            return data
        return self._timed("series", call)

    def query_sync(self, promql: str, tenant: Tenant | None = None) -> QueryResult:
        def call() -> QueryResult:
            requested = time.time()
            url_len = len(self._url) + 15 + len(urllib.parse.quote(promql, safe=""))
            if tenant is not None or self.cfg.params:  # never through the shared PrometheusConnect's headers
                post = self.cfg.verb == "POST" or url_len > MAX_GET_URL
                result: Any = json.loads(self._raw("/api/v1/query", {"query": promql}, post=post,
                                                   tenant=tenant))["data"]["result"]
            elif self.cfg.verb == "POST" or url_len > MAX_GET_URL:
                result = json.loads(self._raw("/api/v1/query", {"query": promql}, post=True))["data"]["result"]
            else:
                self._pc.headers = self._headers()
                result = self._pc.custom_query(promql)
            return parse_result(result, requested)
        return self._timed("query", call)

    # -- async wrappers ---------------------------------------------------------------------------
    async def _run(self, fn: Callable[[], T], lane: _Lane) -> T:
        if lane.sem is None:
            lane.sem = asyncio.Semaphore(lane.threads)
        sem = lane.sem
        await sem.acquire()
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(lane.pool, fn)
        except BaseException:
            sem.release()
            raise
        fut.add_done_callback(lambda _f: sem.release())
        # shield: a caller that times out leaves; the thread finishes and only then frees its slot
        return await asyncio.shield(fut)

    async def query(self, promql: str, tenant: Tenant | None = None) -> QueryResult:
        return await self._run(lambda: self.query_sync(promql, tenant), self._queries)

    async def series(self, match: str, max_age: float, tenant: Tenant | None = None) -> list[dict[str, str]]:
        return await self._run(lambda: self.series_sync(match, max_age, tenant), self._discovery)


class _SeriesShapes:
    """``json.loads`` object hook: a series' labels -> a shared dict of its label names (values "")."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], dict[str, str]] = {}

    def hook(self, obj: dict[str, Any]) -> Any:
        name = obj.get("__name__")
        if not isinstance(name, str):
            return obj  # the envelope ({"status", "data"}), not a series
        key = (name, *obj)
        shape = self._seen.get(key)
        if shape is None:
            shape = self._seen[key] = {k: (name if k == "__name__" else "") for k in obj}
        return shape


def parse_result(result: Any, requested: float) -> QueryResult:
    """Vector (list of {metric, value}) or scalar ([ts, "v"]) -> samples with their own timestamps."""
    samples: list[Sample] = []
    evaluated = requested
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        ts, value = float(result[0]), _float(result[1])
        return QueryResult((Sample({}, value, ts),), ts)
    if not isinstance(result, list):
        raise ValueError("unexpected result type")
    for item in result:
        labels = item.get("metric", {})
        ts, value = item["value"]
        evaluated = float(ts)
        samples.append(Sample(labels, _float(value), float(ts)))
    return QueryResult(tuple(samples), evaluated)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
