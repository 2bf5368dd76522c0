"""The real adapter process honours --read-header-timeout and --max-header-bytes (no Prometheus needed).

The protocol-level behaviour (both h11 and httptools) is tested in tests/api/test_connection_limits.py;
this checks the flags reach the server the process runs.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from tests.support.adapter import adapter
from tests.support.procs import free_port
from tests.support.rawtls import connect, read_until_closed
from tests.support.stack import ROOT


def test_flags_close_slow_headers_and_refuse_large_ones(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    with adapter(tmp_path, unreachable, "--config", str(ROOT / "tests" / "data" / "rules.yaml"),
                 "--read-header-timeout", "1s", "--max-header-bytes", "8192", ready=False) as ad:
        port = urllib.parse.urlsplit(ad.url).port
        assert port
        with connect(port) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: a\r\n")
            assert read_until_closed(s) == b""
        with connect(port) as s:
            try:
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 30000 + b"\r\n")
            except OSError:
                return  # closed while we were still sending
            data = read_until_closed(s)
        assert data == b"" or data.startswith(b"HTTP/1.1 431"), data[:200]
