"""moto's server mode as the local STS of the SigV4 tests: ``python -m tests.support.moto_sts --port N ...``.

This is moto's own ``moto_server`` (``moto.server.main``) on 127.0.0.1, with two test-only additions:

* sessions from AssumeRole / AssumeRoleWithWebIdentity last ``--session-seconds`` when the caller
  does not ask for a duration (real STS: one hour; botocore never sends DurationSeconds for IRSA).
  903 s puts a new session 3 s from botocore's 15-minute advisory refresh, so a test sees rotation
  without waiting an hour and without touching the adapter's clock;
* every such call is appended to ``--calls`` as one JSON line (action, role, web identity token,
  external ID, session name and the credentials issued), so the verifying proxy knows the secrets
  and a test can see which token file contents and external ID the adapter sent.

``start_moto_sts`` runs it as a subprocess and yields its URL and the calls file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import free_port, python_module, running, wait_http


def _patch(session_seconds: int, calls: Path) -> None:
    from moto.sts.responses import TokenResponse as STSResponse

    base_int_param = STSResponse._get_int_param
    lock = threading.Lock()

    def _get_int_param(self: Any, name: str, if_none: Any = None) -> Any:
        if name == "DurationSeconds" and if_none == 3600:
            if_none = session_seconds
        return base_int_param(self, name, if_none)

    def recorded(orig: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def method(self: Any) -> Any:
            result = orig(self)
            creds = result.result["Credentials"]
            line = {"action": orig.__name__, "role_arn": self._get_param("RoleArn"),
                    "session_name": self._get_param("RoleSessionName"),
                    "token": self._get_param("WebIdentityToken"), "external_id": self._get_param("ExternalId"),
                    "access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key,
                    "session_token": creds.session_token, "expiration": creds.expiration.isoformat()}
            with lock, calls.open("a") as fh:
                fh.write(json.dumps(line) + "\n")
            return result
        method.__name__ = orig.__name__
        return method

    STSResponse._get_int_param = _get_int_param  # type: ignore[method-assign]
    STSResponse.assume_role = recorded(STSResponse.assume_role)  # type: ignore[method-assign]
    STSResponse.assume_role_with_web_identity = recorded(  # type: ignore[method-assign]
        STSResponse.assume_role_with_web_identity)


@dataclass
class MotoSts:
    url: str
    calls_file: Path

    def calls(self) -> list[dict[str, str]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines() if line.strip()]

    def secrets(self, key_id: str) -> tuple[str, str | None] | None:
        """For the verifier: (secret, session token) of a key moto issued."""
        for call in self.calls():
            if call["access_key_id"] == key_id:
                return call["secret_access_key"], call["session_token"]
        return None


@contextlib.contextmanager
def start_moto_sts(tmp: Path, session_seconds: int = 903) -> Iterator[MotoSts]:
    port = free_port()
    calls = tmp / f"sts-calls-{port}.jsonl"
    cmd = python_module("tests.support.moto_sts", "--port", str(port), "--calls", str(calls),
                        "--session-seconds", str(session_seconds))
    root = str(Path(__file__).resolve().parents[2])
    with running(cmd, tmp / f"moto-{port}.log", env={"PYTHONPATH": root}) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/moto-api/", timeout=60, proc=proc)
        except RuntimeError as e:
            time.sleep(0.1)
            raise RuntimeError(f"{e}\n{(tmp / f'moto-{port}.log').read_text(errors='replace')[-2000:]}") from e
        yield MotoSts(f"http://127.0.0.1:{port}", calls)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--calls", type=Path, required=True)
    ap.add_argument("--session-seconds", type=int, default=903)
    args = ap.parse_args(argv)
    _patch(args.session_seconds, args.calls)
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", str(args.port)])


if __name__ == "__main__":
    main(sys.argv[1:])
