"""The serving certificate is swapped on disk while the real adapter runs; new handshakes get the new one."""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
from pathlib import Path

from adapter.certs import create_ca, issue
from tests.integration.conftest import RULES
from tests.support.adapter import adapter
from tests.support.procs import free_port


def served_fingerprint(url: str) -> str:
    host, port = url.removeprefix("https://").split(":")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_serving_certificate_reloads_from_disk(tmp_path: Path) -> None:
    ca = create_ca()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    issue(ca, "accel-metrics-adapter", dns_names=("localhost",), ips=("127.0.0.1",)).write(cert, key)
    dead = f"http://127.0.0.1:{free_port()}"
    with adapter(tmp_path, dead, "--config", str(RULES), "--tls-cert-file", str(cert),
                 "--tls-private-key-file", str(key), ready=False) as ad:
        before = served_fingerprint(ad.url)
        issue(ca, "accel-metrics-adapter", dns_names=("localhost",), ips=("127.0.0.1",)).write(cert, key)
        deadline = time.monotonic() + 30
        after = before
        while time.monotonic() < deadline and after == before:
            time.sleep(0.5)
            after = served_fingerprint(ad.url)
        assert after != before, "the new certificate was not served within 30s"
        assert after == hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()
        status, _, _ = ad.get("/livez")
        assert status == 200
