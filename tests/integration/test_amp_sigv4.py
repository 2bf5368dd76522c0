"""Amazon Managed Prometheus: the real adapter signs every request (SigV4, botocore) to a proxy that verifies
each signature independently (tests/support/sigv4verify.py) in front of a real Prometheus.

Credentials come the ways they do on EKS: environment keys, IRSA (AssumeRoleWithWebIdentity from a token
file, moto as the local STS), EKS Pod Identity (container credentials from a local endpoint), and a role
assumed on top (AssumeRole with an external ID). Rotation is shown by what the proxy accepted (access key
ids), never by timing. All traffic stays on 127.0.0.1; instance metadata is disabled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.conftest import RULES, SERIES
from tests.support.adapter import Adapter, adapter
from tests.support.moto_sts import MotoSts, start_moto_sts
from tests.support.procs import python_module, running
from tests.support.prometheus import Prometheus
from tests.support.sigv4verify import SigV4Proxy, sigv4_proxy
from tests.support.stack import exporter_and_prometheus, get_ok

REGION = "us-east-1"
P1 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns1/pods/p1/gpu_utilization"
EXT = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns1/queue_depth?labelSelector=model%3Dllama"
STATIC = ("AKIDSTATICTEST", "static-secret-never-logged", "static-session-token-never-logged")
ROLE = "arn:aws:iam::123456789012:role/amp-query"
SIGV4 = ("--config", str(RULES), "--cache-ttl", "0", "--prometheus-auth", "sigv4",
         "--log-level", "debug")


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with exporter_and_prometheus(tmp_path_factory.mktemp("amp"), SERIES, min_results=5) as (_, p):
        p.wait_for("queue_depth")
        yield p


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The adapter process inherits os.environ: nothing of the developer's AWS set-up may leak in."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _static(key: str) -> tuple[str, str | None] | None:
    return (STATIC[1], STATIC[2]) if key == STATIC[0] else None


def _static_env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": STATIC[0], "AWS_SECRET_ACCESS_KEY": STATIC[1], "AWS_SESSION_TOKEN": STATIC[2]}


def _no_secret_in_log(ad: Adapter, *secrets: str) -> None:
    text = ad.log_text()
    for s in secrets:
        assert s and s[:12] not in text  # not even a truncated prefix


def _serve_until_new_key(ad: Adapter, proxy: SigV4Proxy, before: set[str], limit: float = 90) -> list[str]:
    """Keep the adapter serving (every answer must be 200) until the proxy accepted a key not in ``before``."""
    deadline = time.monotonic() + limit
    answers = 0
    while time.monotonic() < deadline:
        status, doc, _ = ad.get(P1)
        assert status == 200, doc  # no failed request while credentials rotate
        answers += 1
        new = [k for k in proxy.key_ids() if k not in before]
        if new:
            return new
        time.sleep(0.5)
    raise AssertionError(f"no new access key after {answers} answers; proxy saw {proxy.key_ids()}")


@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_every_request_is_signed_get_and_post(tmp_path: Path, prom: Prometheus, verb: str) -> None:
    with sigv4_proxy(prom.url, _static, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", REGION, "--prometheus-verb", verb,
                    env=_static_env()) as ad:
        doc = get_ok(ad, P1)
        assert doc["items"][0]["value"] == "85"  # type: ignore[index]  # avg of gpu 0 and 1
        doc = get_ok(ad, EXT)
        assert [i["value"] for i in doc["items"]] == ["12"]  # type: ignore[index,union-attr]
        ws = "/workspaces/ws-test/api/v1"
        assert {f"{verb} {ws}/series", f"{verb} {ws}/query"} <= proxy.paths()
        assert proxy.refused == [] and proxy.key_ids() == [STATIC[0]]
        assert len(proxy.accepted) >= 3
        _no_secret_in_log(ad, STATIC[1], STATIC[2])


def _refusal_logs(ad: Adapter) -> list[dict[str, object]]:
    return [json.loads(line) for line in ad.log_text().splitlines() if "refused the signed request" in line]


def test_wrong_region_is_refused_and_reported_not_unreachable(tmp_path: Path, prom: Prometheus) -> None:
    # at start-up: discovery is refused; the metrics answer 503 (never discovered) and the log says why, once.
    # POST: the refusal echoes a canonical request with no query string, so the token comes early in the body
    with sigv4_proxy(prom.url, _static, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", "eu-west-1", "--log-format", "json",
                    "--prometheus-verb", "POST", env=_static_env(), ready=False) as ad:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (  # three refused relists, and their failure logged
                len(proxy.refused) < 3 or "series discovery failed" not in ad.log_text()):
            time.sleep(0.2)
        status, doc, _ = ad.get(P1)
        assert status == 503 and doc["reason"] == "ServiceUnavailable", doc
        assert "unreachable" not in str(doc["message"])
        assert proxy.accepted == [] and len(proxy.refused) >= 3
        assert {reason for reason, _ in proxy.refused} == {"wrong region 'eu-west-1'"}
        assert "x-amz-security-token:<redact" in ad.log_text()  # the cause is logged (cut at 300), the token not
        refusals = _refusal_logs(ad)
        assert len(refusals) == 1, refusals  # logged once, not per relist
        assert refusals[0]["status"] == 403 and refusals[0]["aws_error"] == "InvalidSignatureException"
        assert refusals[0]["region"] == "eu-west-1"
        assert "unreachable" not in ad.log_text()
        _no_secret_in_log(ad, STATIC[1], STATIC[2])
    # while serving: the workspace now expects another region; queries answer a Status, not "unreachable"
    with sigv4_proxy(prom.url, _static, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", REGION, "--log-format", "json",
                    env=_static_env()) as ad:
        get_ok(ad, P1)
        proxy.region = "ap-south-1"
        for _ in range(3):
            status, doc, _ = ad.get(P1)
            assert status == 500 and doc["kind"] == "Status" and doc["reason"] == "InternalError", doc
            assert "unreachable" not in str(doc["message"]) and "403" not in str(doc["message"])
        assert {reason for reason, _ in proxy.refused} == {f"wrong region {REGION!r}"}
        assert len(_refusal_logs(ad)) == 1
        assert "unreachable" not in ad.log_text()


def _irsa_env(sts: MotoSts, token: Path) -> dict[str, str]:
    return {"AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": ROLE,
            "AWS_ROLE_SESSION_NAME": "amp-adapter-test", "AWS_ENDPOINT_URL_STS": sts.url, "AWS_REGION": REGION}


def test_irsa_web_identity_rotates_without_restart(tmp_path: Path, prom: Prometheus) -> None:
    token = tmp_path / "eks.amazonaws.com" / "token"
    token.parent.mkdir()
    token.write_text("projected-sa-token-1")
    with start_moto_sts(tmp_path) as sts, sigv4_proxy(prom.url, sts.secrets, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", REGION,
                    env=_irsa_env(sts, token)) as ad:
        get_ok(ad, P1)
        first = set(proxy.key_ids())
        token.write_text("projected-sa-token-2")  # the kubelet rotates the projected token
        new = _serve_until_new_key(ad, proxy, first)
        calls = sts.calls()
        assert {c["action"] for c in calls} == {"assume_role_with_web_identity"}
        assert {c["role_arn"] for c in calls} == {ROLE}
        issued_for_2 = {c["access_key_id"] for c in calls if c["token"] == "projected-sa-token-2"}
        assert set(new) & issued_for_2, (new, calls)
        assert proxy.refused == []
        _no_secret_in_log(ad, *(c["secret_access_key"] for c in calls), *(c["session_token"] for c in calls),
                          "projected-sa-token-2")


def test_role_arn_is_assumed_with_external_id_and_refreshed(tmp_path: Path, prom: Prometheus) -> None:
    target = "arn:aws:iam::210987654321:role/amp-cross-account"
    with start_moto_sts(tmp_path) as sts, sigv4_proxy(prom.url, sts.secrets, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", REGION,
                    "--prometheus-sigv4-role-arn", target, "--prometheus-sigv4-external-id", "ext-7f3a",
                    env={**_static_env(), "AWS_ENDPOINT_URL_STS": sts.url}) as ad:
        get_ok(ad, P1)
        new = _serve_until_new_key(ad, proxy, set(proxy.key_ids()))
        calls = sts.calls()
        assert {(c["action"], c["role_arn"], c["external_id"], c["session_name"]) for c in calls} == {
            ("assume_role", target, "ext-7f3a", "accel-metrics-adapter")}
        assert set(proxy.key_ids()) <= {c["access_key_id"] for c in calls} and new
        assert STATIC[0] not in proxy.key_ids()  # the source keys only call STS, never the workspace
        assert proxy.refused == []


@dataclass
class ContainerEndpoint:
    """EKS Pod Identity's agent, played locally: short-lived credentials, a new key on every call."""

    url: str
    token_file: Path
    tokens_seen: list[str] = field(default_factory=list)
    failing: bool = False  # answer 500, as an agent that is restarting
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def secrets(self, key: str) -> tuple[str, str | None] | None:
        with self.lock:
            return self.issued.get(key)


@contextlib.contextmanager
def container_endpoint(tmp: Path, lifetime: float = 903) -> Iterator[ContainerEndpoint]:
    token_file = tmp / "eks-pod-identity-token"
    token_file.write_text("pod-identity-token-1")
    ep = ContainerEndpoint(url="", token_file=token_file)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            with ep.lock:
                ep.tokens_seen.append(auth)
                if ep.failing:
                    body, status = b'{"message":"agent restarting"}', 500
                elif auth != token_file.read_text() or self.path != "/v1/credentials":
                    body, status = b'{"message":"bad token"}', 401
                else:
                    n = len(ep.issued) + 1
                    key = f"ASIAPODIDENTITY{n:05d}"
                    ep.issued[key] = (f"pod-identity-secret-{n}", f"pod-identity-session-{n}")
                    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
                    body, status = json.dumps({
                        "AccessKeyId": key, "SecretAccessKey": ep.issued[key][0], "Token": ep.issued[key][1],
                        "AccountId": "123456789012", "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }).encode(), 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ep.url = f"http://127.0.0.1:{server.server_address[1]}/v1/credentials"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield ep
    finally:
        server.shutdown()
        server.server_close()


def test_pod_identity_container_credentials_rotate_without_restart(tmp_path: Path, prom: Prometheus) -> None:
    with container_endpoint(tmp_path) as ep, sigv4_proxy(prom.url, ep.secrets, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", REGION, env={
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.url,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(ep.token_file)}) as ad:
        get_ok(ad, P1)
        first = set(proxy.key_ids())
        ep.token_file.write_text("pod-identity-token-2")  # the agent's token is rotated too
        new = _serve_until_new_key(ad, proxy, first)
        assert all(k.startswith("ASIAPODIDENTITY") for k in proxy.key_ids()) and new
        assert "pod-identity-token-2" in ep.tokens_seen
        assert set(ep.tokens_seen) <= {"pod-identity-token-1", "pod-identity-token-2"}
        assert proxy.refused == []
        _no_secret_in_log(ad, *(s for pair in ep.issued.values() for s in pair), "pod-identity-token-2")


def test_credentials_outage_answers_503_then_recovers(tmp_path: Path, prom: Prometheus) -> None:
    # 590 s credentials are inside botocore's mandatory window: every request needs a fresh fetch
    with container_endpoint(tmp_path, lifetime=590) as ep, sigv4_proxy(prom.url, ep.secrets, region=REGION) as proxy, \
            adapter(tmp_path, proxy.url, *SIGV4, "--prometheus-sigv4-region", REGION, "--log-format", "json", env={
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.url,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(ep.token_file)}) as ad:
        get_ok(ad, P1)
        ep.failing = True
        status, doc, _ = ad.get(P1)
        assert status == 503 and doc["reason"] == "ServiceUnavailable", doc
        assert doc["message"] == "AWS credentials for Prometheus are unavailable"
        ep.failing = False
        get_ok(ad, P1)
        assert proxy.refused == []  # nothing was sent unsigned or with expired keys
        msgs = [json.loads(line)["msg"] for line in ad.log_text().splitlines() if line.startswith("{")]
        assert sum("could not be obtained or refreshed" in m for m in msgs) == 1
        assert "AWS credentials for Prometheus available again" in msgs
        _no_secret_in_log(ad, *(s for pair in ep.issued.values() for s in pair))


def test_no_credentials_fails_at_start_up(tmp_path: Path) -> None:
    log = tmp_path / "adapter.log"
    cmd = python_module("adapter", "serve", "--config", str(RULES), "--prometheus-url",
                        "http://127.0.0.1:9/workspaces/ws-test", "--prometheus-auth", "sigv4",
                        "--prometheus-sigv4-region", REGION, "--authorization-mode", "AlwaysAllow",
                        "--bind-address", "127.0.0.1", "--cert-dir", str(tmp_path / "certs"))
    with running(cmd, log) as proc:
        assert proc.wait(60) == 2
    assert "--prometheus-auth sigv4: no AWS credentials found" in log.read_text()


def test_check_config_probes_a_workspace_with_signed_requests(
        tmp_path: Path, prom: Prometheus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from adapter.cli import main

    for k, v in _static_env().items():
        monkeypatch.setenv(k, v)
    with sigv4_proxy(prom.url, _static, region=REGION) as proxy:
        args = ["check-config", "--config", str(RULES), "--prometheus-url", proxy.url, "--prometheus-auth", "sigv4"]
        assert main([*args, "--prometheus-sigv4-region", REGION]) == 0
        assert proxy.refused == [] and proxy.key_ids() == [STATIC[0]]
        assert main([*args, "--prometheus-sigv4-region", "eu-west-1"]) == 1
    out = capsys.readouterr().out
    assert "rules[0]: error: Internal error occurred: unable to fetch metrics (HTTP Status Code 403" in out
    assert STATIC[2][:12] not in out
