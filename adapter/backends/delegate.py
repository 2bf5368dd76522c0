"""HTTPS client for a delegate metrics server (KEDA's metrics apiserver, prometheus-adapter, ...).

* Our own credentials only: a client certificate, or a bearer token read from a file and re-read when
  it changes (the service account's projected token rotates). Nothing of the caller's request but its
  path and query string is sent: never its Authorization or X-Remote-* headers.
* TLS verification is always on: the ``--delegate-ca-file`` bundle, else the system roots.
* Blocking ``requests`` calls in a bounded thread pool; an asyncio semaphore released only when the
  thread finishes keeps a hung delegate from piling up threads; every call has a timeout.
* No redirects are followed (a redirect would carry our token elsewhere); no retries.
* A body larger than ``MAX_BODY`` is refused (503), never buffered whole.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from adapter.backends.reachability import short_reason
from adapter.backends.tokenfile import TokenFile
from adapter.errors import Unavailable

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024 * 1024
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True)
class DelegateConfig:
    url: str  # https://host[:port][/base]: request paths are appended
    ca_file: Path | None = None
    token_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout: float = 10.0
    max_concurrency: int = 8


@dataclass(frozen=True)
class Answer:
    """The delegate's answer, as it was sent (content already decoded from any transfer encoding)."""
    status: int
    body: bytes
    content_type: str


class DelegateUnavailable(Unavailable):
    """The delegate could not be reached, did not answer in time, or sent an unusable answer."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome  # unreachable | timeout | too_large


class DelegateClient:
    def __init__(self, cfg: DelegateConfig) -> None:
        self.cfg = cfg
        self.url = cfg.url.rstrip("/")
        self._token = TokenFile(cfg.token_file, "delegate")
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc from the environment: only what the flags say
        session.verify = str(cfg.ca_file) if cfg.ca_file else True
        if cfg.client_cert and cfg.client_key:
            session.cert = (str(cfg.client_cert), str(cfg.client_key))
        session.mount(self.url, HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=cfg.max_concurrency))
        self._session = session
        self._pool = ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="delegate")
        self._sem: asyncio.Semaphore | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def get_sync(self, path_and_query: str) -> Answer:
        """GET ``url + path_and_query`` with our credentials only."""
        headers = {"Accept": "application/json", "User-Agent": "accel-metrics-adapter (delegating)"}
        try:
            token = self._token.get()
        except Unavailable as e:
            raise DelegateUnavailable(f"the delegate {self.url} is unavailable: {e.message}", "unreachable") from e
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._session.get(self.url + path_and_query, headers=headers, timeout=self.cfg.timeout,
                                   allow_redirects=False, stream=True) as resp:
                body = bytearray()
                for chunk in resp.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise DelegateUnavailable(f"the delegate {self.url} answered more than {MAX_BODY} bytes",
                                                  "too_large")
                return Answer(resp.status_code, bytes(body),
                              resp.headers.get("Content-Type") or "application/json")
        except requests.Timeout as e:
            raise DelegateUnavailable(f"the delegate {self.url} did not answer within {self.cfg.timeout:g}s",
                                      "timeout") from e
        except requests.RequestException as e:
            raise DelegateUnavailable(f"the delegate {self.url} is unreachable ({short_reason(e)})",
                                      "unreachable") from e

    async def get(self, path_and_query: str) -> Answer:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.cfg.max_concurrency)
        async with self._sem:
            fut = asyncio.get_running_loop().run_in_executor(self._pool, self.get_sync, path_and_query)
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                # the thread still runs: keep its slot until it ends (at most the timeout)
                await asyncio.wait([fut])
                raise
