"""AWS SigV4 signing of Prometheus requests (Amazon Managed Service for Prometheus), through botocore.

* ``SigV4Auth`` is a ``requests`` auth object: every request the Prometheus session sends (GET and
  POST, query and series) is signed for service ``aps`` in the configured region, the body's SHA-256
  included. botocore signs; nothing here computes a signature or loads a credential by hand.
* Credentials come from botocore's standard chain: environment, shared config/profile, IRSA web
  identity token file, EKS Pod Identity / container credentials, instance metadata. With a role
  ARN they are the source for STS AssumeRole (botocore's AssumeRoleCredentialFetcher, optional
  external ID). Temporary credentials are ``RefreshableCredentials``: ``get_frozen_credentials()``
  per request refreshes them before they expire (advisory 15 min, mandatory 10 min before), so a
  rotation needs no restart and fails no request.
* A GET's query string is re-encoded in SigV4's canonical form (``%20``, not ``+``) before signing,
  so the URL sent is the one signed, whatever encoding the server re-derives.
* Credentials are never logged: botocore's loggers are held at WARNING (their DEBUG output carries
  STS response bodies) and our messages name only the key's source, never the key.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth as _BotoSigV4
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError
from requests import PreparedRequest, Response
from requests.auth import AuthBase

from adapter.errors import ConfigError, Unavailable

log = logging.getLogger(__name__)
SERVICE = "aps"
SESSION_NAME = "accel-metrics-adapter"
_COPIED = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
# AWS's signature errors echo the canonical request, session token included: never let it reach a log
_TOKEN_LINE = re.compile(rb"(x-amz-security-token:)(?:(?!\\n|\n|['\"]).)+", re.IGNORECASE)
# STS calls of the chain and of AssumeRole: bounded, so a hung STS holds a Prometheus thread for seconds, not
# botocore's default minutes (refreshes start 15 min before expiry; only a long outage reaches a request)
STS_CLIENT = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})


@dataclass(frozen=True)
class SigV4:
    region: str
    role_arn: str = ""
    external_id: str = ""
    service: str = SERVICE


def canonical_query_url(url: str) -> str:
    """``url`` with its query re-encoded as SigV4 canonicalises it (``%20`` for space, ``~`` kept)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe="-_.~")
    return urllib.parse.urlunsplit(parts._replace(query=query))


class SigV4Auth(AuthBase):
    """Signs each prepared request with fresh (refreshed when due) credentials."""

    def __init__(self, credentials: Any, region: str, service: str = SERVICE) -> None:
        self._credentials = credentials  # botocore Credentials or RefreshableCredentials
        self.region = region
        self.service = service
        self._lock = threading.Lock()
        self._refused = False
        self._cred_failing = False

    def _frozen(self) -> Any:
        try:
            frozen = self._credentials.get_frozen_credentials()
        except (BotoCoreError, ClientError) as e:
            with self._lock:
                first, self._cred_failing = not self._cred_failing, True
            if first:
                log.error("AWS credentials could not be obtained or refreshed: Prometheus requests are not "
                          "sent until they are", extra={"error": type(e).__name__})
            raise Unavailable("AWS credentials for Prometheus are unavailable") from e
        with self._lock:
            recovered, self._cred_failing = self._cred_failing, False
        if recovered:
            log.info("AWS credentials for Prometheus available again")
        return frozen

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        frozen = self._frozen()
        body = r.body.encode() if isinstance(r.body, str) else r.body
        if body is not None and not isinstance(body, bytes):
            raise TypeError("SigV4 signing needs the whole body: streamed bodies are not supported")
        url = canonical_query_url(r.url or "")
        headers = {"Content-Type": r.headers["Content-Type"]} if "Content-Type" in r.headers else {}
        aws = AWSRequest(method=r.method, url=url, data=body or b"", headers=headers)
        _BotoSigV4(frozen, self.service, self.region).add_auth(aws)
        r.url = url
        if body is not None:
            r.body = body
            r.headers["Content-Length"] = str(len(body))
        for name in _COPIED:
            if name in aws.headers:
                r.headers[name] = aws.headers[name]
        r.hooks.setdefault("response", []).append(self._on_response)
        return r

    def _on_response(self, resp: Response, *_args: Any, **_kwargs: Any) -> Response:
        """Redact the session token from an error body; log a refusal (401/403) once per run of refusals,
        with AWS's error type, never the body."""
        if resp.status_code >= 400 and resp.content:
            token = resp.request.headers.get("X-Amz-Security-Token") if resp.request is not None else None
            resp._content = redact(resp.content, token)
        refused = resp.status_code in (401, 403)
        with self._lock:
            changed, self._refused = refused != self._refused, refused
        if changed and refused:
            log.warning("Prometheus refused the signed request: check --prometheus-sigv4-region, the workspace "
                        "URL and the role's aps:* permissions", extra={
                            "status": resp.status_code,
                            "aws_error": resp.headers.get("x-amzn-ErrorType", "").split(":")[0] or "unknown",
                            "region": self.region, "service": self.service})
        elif changed:
            log.info("Prometheus accepts the signed requests again")
        return resp


def redact(body: bytes, token: str | None) -> bytes:
    """``body`` without the session token (also JSON-escaped) and without any x-amz-security-token value."""
    if token:
        for form in {token, token.replace("/", "\\/")}:
            body = body.replace(form.encode(), b"<redacted>")
    return _TOKEN_LINE.sub(rb"\1<redacted>", body)


def _sts_client_creator(session: Any, region: str) -> Any:
    def create(service: str, **kwargs: Any) -> Any:
        return session.create_client(service, region_name=region, **kwargs)
    return create


def credentials(cfg: SigV4) -> Any:
    """The process's AWS credentials (standard chain), wrapped in AssumeRole when a role ARN is given."""
    quiet = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    for name in ("botocore", "boto3"):
        logging.getLogger(name).setLevel(quiet)  # botocore's DEBUG prints STS responses (secrets)
    session = botocore.session.Session()
    session.set_default_client_config(STS_CLIENT)
    if session.get_config_variable("region") is None:
        session.set_config_variable("region", cfg.region)  # STS calls of the chain go to the regional endpoint
    try:
        base = session.get_credentials()
    except (BotoCoreError, ClientError) as e:
        raise ConfigError(f"--prometheus-auth sigv4: cannot load AWS credentials ({type(e).__name__}: {e})") from e
    if base is None:
        raise ConfigError("--prometheus-auth sigv4: no AWS credentials found (looked in the environment, the shared "
                          "config and credentials files, the IRSA web identity token, container credentials "
                          "(EKS Pod Identity) and instance metadata)")
    log.info("AWS credentials for Prometheus", extra={"source": base.method, "role_arn": cfg.role_arn or "-"})
    if not cfg.role_arn:
        return base
    extra = {"RoleSessionName": SESSION_NAME}
    if cfg.external_id:
        extra["ExternalId"] = cfg.external_id
    fetcher = AssumeRoleCredentialFetcher(_sts_client_creator(session, cfg.region), base, cfg.role_arn,
                                          extra_args=extra)
    return DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")


def sigv4_auth(cfg: SigV4) -> SigV4Auth:
    return SigV4Auth(credentials(cfg), cfg.region, cfg.service)
