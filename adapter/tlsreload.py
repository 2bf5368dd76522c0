"""Serving-certificate hot reload.

Kubernetes updates a mounted Secret by swapping a symlink, which does not reliably produce
inotify events on the file paths, so the files are polled: every ``interval`` seconds the
SHA-256 of the certificate and key bytes is compared with the last loaded pair. On a change the
pair is first loaded into a scratch context (so a half-written or mismatched pair is rejected
with a warning and the old certificate stays), then into the live ``ssl.SSLContext`` itself.
OpenSSL copies the certificate into each connection when it is accepted, so new handshakes get
the new certificate and established connections keep theirs: nothing is dropped.

Usage, with uvicorn: ``config.load()`` builds ``config.ssl``; pass that context here and run
``CertReloader.run()`` as a background task next to the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

log = logging.getLogger(__name__)


def _describe(cert_pem: bytes) -> str:
    """``sha256=<fingerprint> notAfter=<date>`` of the first certificate, for the log."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "unparseable certificate"
    return f"sha256={cert.fingerprint(hashes.SHA256()).hex()} notAfter={cert.not_valid_after_utc.isoformat()}"


class CertReloader:
    """Poll ``cert_file``/``key_file`` and load a changed, valid pair into ``ctx`` in place."""

    def __init__(self, ctx: ssl.SSLContext, cert_file: Path, key_file: Path, interval: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.ctx = ctx
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.interval = interval
        self.reloads = 0
        # The context is assumed to hold the pair currently on disk.
        pair = self._read()
        self._loaded = self._digest(*pair) if pair else ""
        self._rejected = ""

    @staticmethod
    def _digest(cert: bytes, key: bytes) -> str:
        h = hashlib.sha256()
        for part in (cert, key):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.hexdigest()

    def _read(self) -> tuple[bytes, bytes] | None:
        try:
            return self.cert_file.read_bytes(), self.key_file.read_bytes()
        except OSError as e:
            log.warning("serving certificate: cannot read %s / %s: %s", self.cert_file, self.key_file, e)
            return None

    def check_now(self) -> bool:
        """Reload if the files changed and form a valid pair. True when a new pair was loaded."""
        pair = self._read()
        if pair is None:
            return False
        digest = self._digest(*pair)
        if digest == self._loaded:
            return False
        cert, key = pair
        # Load exactly the bytes that were hashed (the files may change again meanwhile), from a
        # private temporary directory: load_cert_chain only takes paths.
        with tempfile.TemporaryDirectory(prefix="tlsreload-") as tmp:
            cert_path = Path(tmp) / "tls.crt"
            key_path = Path(tmp) / "tls.key"
            cert_path.write_bytes(cert)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
            try:
                # A failed load can leave a context without a usable key: try a scratch one first.
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, OSError, ValueError) as e:
                if digest != self._rejected:
                    log.warning("serving certificate: %s / %s changed but is not a valid pair (%s); "
                                "keeping the current certificate", self.cert_file, self.key_file, e)
                    self._rejected = digest
                return False
            self.ctx.load_cert_chain(cert_path, key_path)
        self._loaded = digest
        self._rejected = ""
        self.reloads += 1
        log.info("serving certificate reloaded from %s (%s)", self.cert_file, _describe(cert))
        return True

    async def run(self) -> None:
        """Poll forever; cancel the task to stop (the check itself is synchronous and short)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check_now()
            except Exception:  # keep polling: a later fix of the files must still be picked up
                log.exception("serving certificate: reload check failed")
