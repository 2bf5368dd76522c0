"""An AWS SigV4 verifier written from the specification, independent of botocore (tests only).

Spec: "Create a canonical request", "Create a string to sign", "Calculate the signature" of the AWS
Signature Version 4 documentation. Only ``hashlib``, ``hmac`` and ``urllib.parse.unquote`` are used:
canonical URI (each segment URI-encoded twice, as for every service but S3), canonical query
(decoded, re-encoded, sorted by name then value; ``+`` is a literal plus, not a space), canonical
headers (lower-cased, trimmed, inner spaces collapsed), the body's SHA-256, the signing key chain
``AWS4+secret -> date -> region -> service -> aws4_request``.

``verify`` returns a ``Verdict``; ``sigv4_proxy`` answers 403 to refused requests and forwards the
rest to a real Prometheus, recording both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                   r"SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")

# (secret access key, session token or None) for an access key id, None when unknown
Secrets = Callable[[str], "tuple[str, str | None] | None"]


def uri_encode(text: str) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def canonical_uri(raw_path: str) -> str:
    if not raw_path:
        return "/"
    return "/".join(uri_encode(uri_encode(unquote(seg))) for seg in raw_path.split("/"))


def canonical_query(raw_query: str) -> str:
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        name, _, value = part.partition("=")
        pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")


def canonical_request(method: str, target: str, headers: dict[str, str], signed: list[str], body: bytes) -> str:
    """``headers`` maps lower-case names to values (repeated headers joined with ',')."""
    path, _, query = target.partition("?")
    canon_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    return "\n".join([method, canonical_uri(path), canonical_query(query), canon_headers, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])


def signature(secret: str, method: str, target: str, headers: dict[str, str], signed: list[str], body: bytes,
              amz_date: str, region: str, service: str) -> str:
    """Hex signature of a request; ``headers`` maps lower-case names to values (joined with ',')."""
    creq = canonical_request(method, target, headers, signed, body)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(signing_key(secret, amz_date[:8], region, service), sts.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    access_key: str = ""


def verify(method: str, target: str, headers: Message, body: bytes, *, region: str, service: str,
           secrets: Secrets, now: dt.datetime | None = None, max_skew: float = 300.0) -> Verdict:
    """Check one request as the AWS front end would; ``target`` is the request line's path?query."""
    auth = headers.get("Authorization", "")
    m = _AUTH.match(auth.strip())
    if not m:
        return Verdict(False, "missing or malformed Authorization")
    key_id, day, req_region, req_service, signed_text, sig = m.groups()
    if req_region != region:
        return Verdict(False, f"wrong region {req_region!r}", key_id)
    if req_service != service:
        return Verdict(False, f"wrong service {req_service!r}", key_id)
    amz_date = headers.get("X-Amz-Date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return Verdict(False, "missing or malformed X-Amz-Date", key_id)
    if day != amz_date[:8]:
        return Verdict(False, "credential scope date is not the X-Amz-Date day", key_id)
    now = now or dt.datetime.now(dt.UTC)
    if abs((now - when).total_seconds()) > max_skew:
        return Verdict(False, "request time too skewed (expired)", key_id)
    signed = signed_text.split(";")
    if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
        return Verdict(False, "SignedHeaders must be sorted and include host and x-amz-date", key_id)
    values: dict[str, str] = {}
    for h in signed:
        got = headers.get_all(h)
        if got is None:
            return Verdict(False, f"signed header {h!r} is missing", key_id)
        values[h] = ",".join(v.strip() for v in got)
    content_hash = headers.get("X-Amz-Content-Sha256")
    if content_hash is not None and content_hash != hashlib.sha256(body).hexdigest():
        return Verdict(False, "X-Amz-Content-Sha256 does not match the body", key_id)
    known = secrets(key_id)
    if known is None:
        return Verdict(False, "unknown access key id", key_id)
    secret, token = known
    sent_token = headers.get("X-Amz-Security-Token")
    if token is not None and (sent_token != token or "x-amz-security-token" not in signed):
        return Verdict(False, "missing, unsigned or wrong session token", key_id)
    expected = signature(secret, method, target, values, signed, body, amz_date, region, service)
    if not hmac.compare_digest(expected, sig):
        return Verdict(False, "signature mismatch", key_id)
    return Verdict(True, "ok", key_id)


@dataclass
class SigV4Proxy:
    """What the verifying proxy saw: ``accepted`` (key id, "METHOD path") and ``refused`` (reason, ...)."""

    url: str
    region: str = ""  # the workspace's region; a test may change it to play a wrong --prometheus-sigv4-region
    accepted: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key_ids(self) -> list[str]:
        """Accepted access key ids in first-seen order."""
        with self.lock:
            return list(dict.fromkeys(k for k, _ in self.accepted))

    def paths(self) -> set[str]:
        with self.lock:
            return {p for _, p in self.accepted}


@contextlib.contextmanager
def sigv4_proxy(upstream: str, secrets: Secrets, *, region: str, service: str = "aps",
                prefix: str = "/workspaces/ws-test") -> Iterator[SigV4Proxy]:
    """A workspace-like URL (``http://127.0.0.1:PORT/workspaces/ws-test``) that verifies, then forwards."""
    proxy = SigV4Proxy(url="", region=region)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            verdict = verify(self.command, self.path, self.headers, body, region=proxy.region, service=service,
                             secrets=secrets)
            with proxy.lock:
                if verdict.ok:
                    proxy.accepted.append((verdict.access_key, f"{self.command} {path}"))
                else:
                    proxy.refused.append((verdict.reason, f"{self.command} {path}"))
            if not verdict.ok:
                self._reply(403, self._refusal(verdict, body),
                            {"x-amzn-ErrorType": "InvalidSignatureException:http://internal.amazon.com/"})
            elif not self.path.startswith(prefix + "/"):
                self._reply(404, b'{"message":"no such workspace"}')
            else:
                self._forward(self.path[len(prefix):], body)

        def _refusal(self, verdict: Verdict, body: bytes) -> bytes:
            """As AWS's signature errors do, the body echoes the canonical request: signed header values
            included, the session token among them. A client must never log such a body verbatim."""
            m = _AUTH.match(self.headers.get("Authorization", "").strip())
            signed = m.group(5).split(";") if m else ["host", "x-amz-date", "x-amz-security-token"]
            values = {h: ",".join(self.headers.get_all(h) or [""]) for h in signed}
            creq = canonical_request(self.command, self.path, values, signed, body)
            return json.dumps({"message": f"{verdict.reason}. The Canonical String for this request should have "
                                          f"been\n'{creq}'\n"}).encode()

        def _forward(self, target: str, body: bytes) -> None:
            req = urllib.request.Request(upstream + target, data=body or None, method=self.command)
            if body:
                req.add_header("Content-Type", self.headers.get("Content-Type", ""))
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            except OSError:
                status, data = 502, b"upstream unreachable"
            self._reply(status, data)

        def _reply(self, status: int, data: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
