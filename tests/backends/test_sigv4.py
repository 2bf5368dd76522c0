"""SigV4: the test verifier against AWS's published vectors, then our signer (botocore) against the verifier."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import urllib.parse
from email.message import Message
from pathlib import Path

import pytest
import requests
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import CredentialRetrievalError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.backends.sigv4 import SigV4, SigV4Auth, canonical_query_url, credentials, redact
from adapter.errors import ConfigError, Unavailable
from tests.support.sigv4verify import Verdict, signature, verify

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KEY, SECRET, TOKEN = "AKIDTESTSIGV4", "test-secret-never-logged", "test-session-token"
URL = "http://127.0.0.1:9/workspaces/ws-1"


@pytest.mark.parametrize(("target", "method", "expected"), [
    ("/", "GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("/?Param2=value2&Param1=value1", "GET", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("/", "POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
], ids=["get-vanilla", "get-vanilla-query-order-key-case", "post-vanilla"])
def test_verifier_reproduces_the_published_vectors(target: str, method: str, expected: str) -> None:
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
    assert signature(SUITE_SECRET, method, target, headers, ["host", "x-amz-date"], b"", "20150830T123600Z",
                     "us-east-1", "service") == expected


def _secrets(key: str) -> tuple[str, str | None] | None:
    return (SECRET, TOKEN) if key == KEY else None


def _signed(method: str, url: str, *, data: dict[str, str] | None = None, params: dict[str, str] | None = None,
            region: str = "us-east-1", token: str | None = TOKEN) -> tuple[requests.PreparedRequest, Message]:
    session = requests.Session()
    session.auth = SigV4Auth(Credentials(KEY, SECRET, token), region)
    prepared = session.prepare_request(requests.Request(method, url, data=data, params=params))
    msg = Message()
    msg["Host"] = urllib.parse.urlsplit(prepared.url).netloc  # as http.client adds it
    for k, v in prepared.headers.items():
        msg[k] = v
    return prepared, msg


def _check(prepared: requests.PreparedRequest, msg: Message, body: bytes | None = None, **kw: object) -> Verdict:
    parts = urllib.parse.urlsplit(prepared.url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    raw = body if body is not None else (prepared.body or b"")
    assert isinstance(raw, bytes)
    args: dict[str, object] = {"region": "us-east-1", "service": "aps", "secrets": _secrets, **kw}
    return verify(prepared.method or "", target, msg, raw, **args)  # type: ignore[arg-type]


PROMQL = 'sum(rate(http_requests_total{pod=~"a b|c+d", x="~é/"}[5m])) by (pod)'


def test_get_with_awkward_promql_is_signed_and_sent_in_canonical_form() -> None:
    prepared, msg = _signed("GET", URL + "/api/v1/query", params={"query": PROMQL})
    assert _check(prepared, msg) == Verdict(True, "ok", KEY)
    assert "+" not in (prepared.url or "") and "%20" in (prepared.url or "")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(prepared.url).query)["query"] == [PROMQL]
    assert msg["X-Amz-Security-Token"] == TOKEN


def test_post_form_body_hash_is_signed() -> None:
    prepared, msg = _signed("POST", URL + "/api/v1/series", data={"match[]": PROMQL, "start": "1", "end": "2"})
    assert isinstance(prepared.body, bytes) and prepared.headers["Content-Length"] == str(len(prepared.body))
    assert _check(prepared, msg).ok
    tampered = prepared.body.replace(b"start=1", b"start=0")
    assert _check(prepared, msg, body=tampered) == Verdict(False, "signature mismatch", KEY)


def test_refusals_name_the_cause() -> None:
    prepared, msg = _signed("GET", URL + "/api/v1/query", params={"query": "up"}, region="eu-west-1")
    assert _check(prepared, msg).reason == "wrong region 'eu-west-1'"
    prepared, msg = _signed("GET", URL + "/api/v1/query", params={"query": "up"})
    assert _check(prepared, msg, service="execute-api").reason == "wrong service 'aps'"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    assert _check(prepared, msg, now=later).reason == "request time too skewed (expired)"
    assert _check(prepared, msg, secrets=lambda _k: None).reason == "unknown access key id"
    assert _check(prepared, msg, secrets=lambda _k: (SECRET, "other")).reason.startswith("missing, unsigned")
    assert _check(prepared, msg, secrets=lambda _k: ("wrong", TOKEN)).reason == "signature mismatch"
    prepared.url = (prepared.url or "").replace("query=up", "query=down")
    assert _check(prepared, msg).reason == "signature mismatch"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://h/p", "http://h/p"),
    ("http://h/p?query=a+b&x=%2B~", "http://h/p?query=a%20b&x=%2B~"),
    ("http://h/p?match%5B%5D=up%7Bjob%3D%22a%2Fb%22%7D", "http://h/p?match%5B%5D=up%7Bjob%3D%22a%2Fb%22%7D"),
    ("http://h/p?empty=&k=v", "http://h/p?empty=&k=v"),
], ids=["no-query", "plus-is-space", "already-canonical", "blank-value"])
def test_canonical_query_url(url: str, expected: str) -> None:
    assert canonical_query_url(url) == expected


def test_refreshable_credentials_are_read_per_request() -> None:
    keys = iter(["AKIDFIRST", "AKIDSECOND"])
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)  # inside the mandatory refresh window

    def refresh() -> dict[str, str]:
        return {"access_key": next(keys), "secret_key": SECRET, "token": TOKEN,
                "expiry_time": soon.isoformat()}

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    session = requests.Session()
    session.auth = SigV4Auth(creds, "us-east-1")
    first = session.prepare_request(requests.Request("GET", URL + "/api/v1/query", params={"query": "up"}))
    assert "Credential=AKIDSECOND/" in first.headers["Authorization"]  # refreshed before signing


def test_credential_failure_is_unavailable_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def get_frozen_credentials(self) -> None:
            raise CredentialRetrievalError(provider="container-role", error_msg="connection refused")

    auth = SigV4Auth(Failing(), "us-east-1")
    req = requests.Request("GET", URL + "/api/v1/query").prepare()
    with caplog.at_level(logging.INFO, logger="adapter.backends.sigv4"):
        for _ in range(3):
            with pytest.raises(Unavailable, match="AWS credentials for Prometheus are unavailable"):
                auth(req)
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_refusal_logged_once_per_run(caplog: pytest.LogCaptureFixture) -> None:
    auth = SigV4Auth(Credentials(KEY, SECRET), "us-east-1")

    def response(status: int) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        r.headers["x-amzn-ErrorType"] = "InvalidSignatureException:http://internal.amazon.com/"
        return r

    with caplog.at_level(logging.INFO, logger="adapter.backends.sigv4"):
        for status in (403, 403, 403, 200, 200, 403):
            auth._on_response(response(status))
    assert [(r.levelname, getattr(r, "aws_error", "")) for r in caplog.records] == [
        ("WARNING", "InvalidSignatureException"), ("INFO", ""), ("WARNING", "InvalidSignatureException")]


def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never reach for 169.254.169.254


def test_no_credentials_anywhere_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _isolated_aws_env(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match="no AWS credentials found"):
        credentials(SigV4("us-east-1"))


def test_environment_and_profile_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _isolated_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    creds = credentials(SigV4("us-east-1"))
    assert creds.get_frozen_credentials().access_key == "AKIDENV" and creds.method == "env"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "no-credentials").write_text("[amp]\naws_access_key_id = AKIDPROFILE\n"
                                             "aws_secret_access_key = profile-secret\n")
    monkeypatch.setenv("AWS_PROFILE", "amp")
    creds = credentials(SigV4("us-east-1"))
    assert creds.get_frozen_credentials().access_key == "AKIDPROFILE" and creds.method == "shared-credentials-file"


def test_role_arn_wraps_the_chain_in_assume_role(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _isolated_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    creds = credentials(SigV4("us-east-1", role_arn="arn:aws:iam::123456789012:role/amp", external_id="x"))
    assert creds.method == "assume-role"  # deferred: STS is called on first use (see the moto tests)


def test_botocore_is_loaded_only_when_signing() -> None:
    """botocore costs ~18 MB of RSS: a process that does not sign never imports it."""
    code = ("import sys; from adapter.backends.prometheus import PrometheusBackend, PrometheusConfig; "
            "import adapter.cli, adapter.server; b = PrometheusBackend(PrometheusConfig(url='http://127.0.0.1:9')); "
            "b.close(); print('botocore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.stdout.strip() == "False"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
       extra=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
       post=st.booleans())
def test_any_query_text_is_signed_as_the_independent_verifier_expects(query: str, extra: str, post: bool) -> None:
    """Whatever the PromQL (spaces, '+', '~', '=', '&', '%', unicode, control characters), GET or POST."""
    params = {"query": query, "match[]": extra}
    if post:
        prepared, msg = _signed("POST", URL + "/api/v1/query", data=params)
    else:
        prepared, msg = _signed("GET", URL + "/api/v1/query", params=params)
        sent = urllib.parse.parse_qs(urllib.parse.urlsplit(prepared.url).query, keep_blank_values=True)
        assert sent == {k: [v] for k, v in params.items()}  # re-encoding never changes what Prometheus reads
    assert _check(prepared, msg) == Verdict(True, "ok", KEY)


@pytest.mark.parametrize(("body", "token"), [
    (b"x-amz-security-token:FQoG+ab/cd==\nhost;x-amz-security-token", "FQoG+ab/cd=="),
    (b'{"message":"...x-amz-security-token:FQoG+ab\\/cd==\\nhost"}', "FQoG+ab/cd=="),
    (b'{"message":"...\\nX-Amz-Security-Token:SOMEOTHERTOKEN\\n\\nhost;x-amz-date"}', None),
    (b"token FQoG+ab/cd== echoed elsewhere", "FQoG+ab/cd=="),
], ids=["plain", "json-escaped-slash", "other-token-in-canonical-string", "anywhere"])
def test_error_bodies_lose_the_session_token(body: bytes, token: str | None) -> None:
    out = redact(body, token)
    assert b"FQoG" not in out and b"SOMEOTHERTOKEN" not in out and b"<redacted>" in out


def test_refused_response_body_is_redacted_before_anyone_reads_it() -> None:
    prepared, _ = _signed("GET", URL + "/api/v1/series", params={"match[]": "up"})
    resp = requests.Response()
    resp.status_code = 403
    resp.request = prepared
    resp._content = f"The Canonical String ... x-amz-security-token:{TOKEN}\n...".encode()
    for hook in prepared.hooks["response"]:
        resp = hook(resp)
    assert TOKEN.encode() not in resp.content and b"x-amz-security-token:<redacted>" in resp.content
