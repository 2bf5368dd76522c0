"""Delegation: the metrics we do not serve go to another metrics server sharing our APIService slot.

``Delegate`` is one delegate for one API group (custom.metrics.k8s.io or external.metrics.k8s.io):

* ``forward(path_and_query)``: the delegate's answer, unchanged (status, body, content type); a
  delegate that cannot be reached, does not answer in time or answers too much raises
  ``Unavailable`` (503 Status naming the delegate). Each outcome is counted through ``on_request``.
* ``resources(version)``: the delegate's discovery resource list for one version, fetched in the
  background every ``interval`` (``run()``) and never on a request. The last good list is kept while
  the delegate is down, for at most ``max_age`` after it was fetched; then the delegate's resources
  are dropped from our discovery documents until it answers again. A 404 for a version means the
  delegate serves nothing there (it is up). ``on_up(version, up)`` drives the discovery gauge; each
  change of state is logged once.

Which metrics are "not ours" is the providers' ``serves()``: a metric one of our rules might produce
once its series discovery succeeds is never forwarded (it answers our 503 while discovery is pending).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adapter.backends.delegate import SERVICE_ACCOUNT_TOKEN, Answer, DelegateClient, DelegateConfig, DelegateUnavailable
from adapter.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listed:
    """The resources of one group version as the delegate listed them (name, namespaced), and when."""
    resources: tuple[tuple[str, bool], ...]
    fetched: float


def parse_resource_list(body: bytes) -> tuple[tuple[str, bool], ...]:
    """(name, namespaced) of each well-formed entry of an APIResourceList; ValueError when it is none."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        raise ValueError("not an APIResourceList")
    out = []
    for r in doc["resources"]:
        if isinstance(r, dict) and isinstance(r.get("name"), str) and r["name"] \
                and isinstance(r.get("namespaced"), bool):
            out.append((r["name"], r["namespaced"]))
    return tuple(out)


def code_class(status: int) -> str:
    return f"{status // 100}xx"


class Delegate:
    def __init__(self, group: str, versions: Sequence[str], client: DelegateClient, interval: float,
                 max_age: float, *, on_request: Callable[[str, str], None] | None = None,
                 on_up: Callable[[str, str, bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group
        self.versions = tuple(versions)
        self.client = client
        self.url = client.url
        self.interval = interval
        self.max_age = max_age
        self._on_request = on_request
        self._on_up = on_up
        self._clock = clock
        self._listed: dict[str, Listed] = {}
        self._up: dict[str, bool] = {}
        self._refused: set[int] = set()

    # -- requests ------------------------------------------------------------------------------
    async def forward(self, path_and_query: str) -> Answer:
        try:
            answer = await self.client.get(path_and_query)
        except DelegateUnavailable as e:
            self._count(e.outcome)
            raise
        self._count(code_class(answer.status))
        if answer.status in (401, 403) and answer.status not in self._refused:
            self._refused.add(answer.status)  # passed through unchanged; said once, as it is about us
            log.warning("the delegate refused our credentials (%d): it authenticates and authorizes this adapter, "
                        "not the caller; check the credentials and the RBAC of our service account",
                        answer.status, extra={"delegate": self.url, "group": self.group})
        return answer

    def _count(self, outcome: str) -> None:
        if self._on_request:
            self._on_request(self.group, outcome)

    # -- discovery -----------------------------------------------------------------------------
    def resources(self, version: str) -> tuple[tuple[str, bool], ...]:
        listed = self._listed.get(version)
        if listed is None or self._clock() - listed.fetched > self.max_age:
            return ()
        return listed.resources

    async def refresh_now(self) -> None:
        for version in self.versions:
            try:
                answer = await self.client.get(f"/apis/{self.group}/{version}")
                if answer.status == 404:
                    resources: tuple[tuple[str, bool], ...] = ()
                elif answer.status != 200:
                    raise ValueError(f"HTTP {answer.status}")
                else:
                    resources = parse_resource_list(answer.body)
            except (DelegateUnavailable, ValueError) as e:
                reason = e.message if isinstance(e, DelegateUnavailable) else str(e)
                self._set_up(version, False, reason)
                continue
            self._listed[version] = Listed(resources, self._clock())
            self._set_up(version, True, "")

    def _set_up(self, version: str, up: bool, reason: str) -> None:
        before = self._up.get(version)
        self._up[version] = up
        if self._on_up:
            self._on_up(self.group, version, up)
        if before == up:
            return
        gv = f"{self.group}/{version}"
        if up:
            log.info("delegate discovery %s", "recovered" if before is False else "loaded",
                     extra={"delegate": self.url, "group_version": gv})
        else:
            log.warning("delegate discovery failed: its resources are listed from the last good answer for "
                        "at most %gs, then left out", self.max_age,
                        extra={"delegate": self.url, "group_version": gv, "error": reason})

    async def run(self) -> None:
        while True:
            try:
                await self.refresh_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delegate discovery failed unexpectedly", extra={"delegate": self.url})
            await asyncio.sleep(self.interval)


def credentials(token_file: Path | None, client_cert: Path | None) -> Path | None:
    """The token file to send: the flag's, else (no client certificate, in a pod) our service account's."""
    if token_file is not None or client_cert is not None:
        return token_file
    if SERVICE_ACCOUNT_TOKEN.is_file():
        return SERVICE_ACCOUNT_TOKEN
    log.warning("delegating without credentials: no --delegate-token-file or --delegate-client-cert-file given "
                "and no service account token at %s", SERVICE_ACCOUNT_TOKEN)
    return None


def from_settings(st: Settings, groups: Sequence[tuple[str, tuple[str, ...], str]],
                  on_request: Callable[[str, str], None] | None = None,
                  on_up: Callable[[str, str, bool], None] | None = None) -> dict[str, Delegate]:
    """API group -> Delegate for each (group, versions, delegate URL) whose URL is set (none: empty)."""
    wanted = [(g, v, u) for g, v, u in groups if u]
    if not wanted:
        return {}
    token = credentials(st.delegate_token_file, st.delegate_client_cert_file)
    out = {}
    for group, versions, url in wanted:
        client = DelegateClient(DelegateConfig(
            url=url, ca_file=st.delegate_ca_file, token_file=token, client_cert=st.delegate_client_cert_file,
            client_key=st.delegate_client_key_file, timeout=min(st.delegate_timeout, st.request_timeout),
            max_concurrency=st.delegate_max_concurrency))
        out[group] = Delegate(group, versions, client, st.delegate_discovery_interval,
                              st.delegate_discovery_max_age, on_request=on_request, on_up=on_up)
        log.info("delegating the %s metrics we do not serve", group, extra={"delegate": client.url})
    return out
