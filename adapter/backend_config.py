"""The ``backends:`` list of the rules file: Prometheus-compatible servers besides the flags' one.

Each entry::

    - name: amp                      # [a-z0-9-], unique; "default" is the --prometheus-* flags' backend
      url: https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1
      auth:                          # at most one credential: bearerTokenFile | basicAuthFile | sigv4;
        sigv4: {region: us-east-1, roleArn: "", externalId: ""}   # mTLS may go with any of them
      headers: {X-Scope-OrgID: team-a}
      queryParams: {dedup: "true"}
      timeout: 10s
      maxConcurrency: 8
      verb: GET                      # or POST

``basicAuthFile`` is one file holding ``user:password`` (re-read when it changes, like the bearer
token file). Every file named here must be readable when the rules file is loaded: the error names
the file, the entry and the field (``rules.yaml: backends[1].auth.bearerTokenFile: cannot read ...``).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapter.errors import ConfigError
from adapter.model import DEFAULT_BACKEND

NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d+")
MAX_NAME = 63


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def readable(path: str) -> str:
    """``path`` if it names a readable file, else a ValueError saying why."""
    if not path:
        raise ValueError("must not be empty")
    try:
        with open(path, "rb"):
            pass
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path!r}: {getattr(e, 'strerror', None) or e}") from e
    return path


class MTLS(_Strict):
    """TLS towards the backend: the CA that verifies it, and our client certificate and key."""

    ca_file: str | None = Field(default=None, alias="caFile")
    cert_file: str | None = Field(default=None, alias="certFile")
    key_file: str | None = Field(default=None, alias="keyFile")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        return None if v is None else readable(v)

    @model_validator(mode="after")
    def _pair(self) -> MTLS:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("certFile and keyFile go together")
        return self


class SigV4Spec(_Strict):
    region: str
    role_arn: str = Field(default="", alias="roleArn")
    external_id: str = Field(default="", alias="externalId")

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not REGION.fullmatch(v):
            raise ValueError(f"{v!r} is not an AWS region name (e.g. us-east-1)")
        return v

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if v and not v.startswith("arn:"):
            raise ValueError(f"{v!r} is not an ARN (arn:aws:iam::<account>:role/<name>)")
        return v

    @model_validator(mode="after")
    def _external_id(self) -> SigV4Spec:
        if self.external_id and not self.role_arn:
            raise ValueError("externalId only with roleArn")
        return self


class BackendAuth(_Strict):
    bearer_token_file: str | None = Field(default=None, alias="bearerTokenFile")
    basic_auth_file: str | None = Field(default=None, alias="basicAuthFile")  # one line "user:password"
    mtls: MTLS | None = Field(default=None, alias="mTLS")
    sigv4: SigV4Spec | None = None

    @field_validator("bearer_token_file", "basic_auth_file")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        return None if v is None else readable(v)

    @model_validator(mode="after")
    def _one_credential(self) -> BackendAuth:
        given = [n for n, v in (("bearerTokenFile", self.bearer_token_file), ("basicAuthFile", self.basic_auth_file),
                                ("sigv4", self.sigv4)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)}: at most one of bearerTokenFile, basicAuthFile and sigv4 "
                             "(mTLS may go with any)")
        return self


class BackendSpec(_Strict):
    name: str
    url: str
    auth: BackendAuth = Field(default_factory=BackendAuth)
    headers: dict[str, str] = Field(default_factory=dict)
    query_params: dict[str, str] = Field(default_factory=dict, alias="queryParams")
    timeout: str = "10s"
    max_concurrency: int = Field(default=8, ge=1, le=1024, alias="maxConcurrency")
    verb: Literal["GET", "POST"] = "GET"

    @field_validator("auth", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return {} if v is None or v == "none" else v  # "auth: none" and an empty "auth:" mean none

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v == DEFAULT_BACKEND:
            raise ValueError("'default' is the backend of the --prometheus-* flags; give this one another name")
        if len(v) > MAX_NAME or not NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a backend name (lower-case letters, digits and '-', at most 63)")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parts = urllib.parse.urlsplit(v)
            host = parts.hostname or ""
            _ = parts.port  # a port that is not a number in range raises here
        except ValueError:
            host = ""
        if not v.startswith(("http://", "https://")) or not host or any(c.isspace() or c < " " for c in v):
            raise ValueError(f"must be an http:// or https:// URL, got {v!r}")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", k):
                raise ValueError(f"{k!r} is not an HTTP header name")
            if any(c in val for c in "\r\n\x00"):
                raise ValueError(f"the value of {k} holds a line break or NUL")
            if k.lower() == "authorization" and val:
                raise ValueError("Authorization: use auth.bearerTokenFile or auth.basicAuthFile (a secret file, "
                                 "not the rules ConfigMap)")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        seconds = duration(v)
        if seconds <= 0:
            raise ValueError("must be positive")
        return v

    @property
    def timeout_seconds(self) -> float:
        return duration(self.timeout)


def duration(text: str) -> float:
    from adapter.settings import parse_duration  # noqa: PLC0415 - avoid a cycle at import time

    try:
        return parse_duration(text, "timeout")
    except ConfigError as e:
        raise ValueError(f"invalid duration {text!r} (use e.g. 10s, 1m)") from e


def check_backends(backends: Sequence[BackendSpec]) -> str | None:
    """The first problem across entries (a duplicate name), as ``backends[i].name: ...``."""
    seen: dict[str, int] = {}
    for i, b in enumerate(backends):
        if b.name in seen:
            return f"backends[{i}].name: duplicate backend name {b.name!r} (also backends[{seen[b.name]}])"
        seen[b.name] = i
    return None


def paths(spec: BackendSpec) -> tuple[Path | None, Path | None, Path | None, Path | None, Path | None]:
    """(bearer token, basic auth, CA, client cert, client key) files of ``spec``, as paths."""
    a, m = spec.auth, spec.auth.mtls

    def p(v: str | None) -> Path | None:
        return Path(v) if v else None
    return (p(a.bearer_token_file), p(a.basic_auth_file), p(m.ca_file if m else None),
            p(m.cert_file if m else None), p(m.key_file if m else None))
