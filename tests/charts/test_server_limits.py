"""The server's connection limits (--read-header-timeout, --idle-timeout, --max-header-bytes) as chart values."""

from __future__ import annotations

import argparse

import pytest

from adapter.settings import Settings, build_parser, parse_duration

from .tools import one, render, run, template_cmd


def _flags(*sets: str) -> argparse.Namespace:
    args = one(render(sets=sets), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    return build_parser(argparse.ArgumentParser(exit_on_error=False)).parse_args(args)


def test_defaults_are_the_servers_defaults() -> None:
    parsed, defaults = _flags(), Settings()
    assert parse_duration(parsed.read_header_timeout, "--read-header-timeout") == defaults.read_header_timeout
    assert parse_duration(parsed.idle_timeout, "--idle-timeout") == defaults.idle_timeout
    assert parsed.max_header_bytes == defaults.max_header_bytes


def test_values_become_flags() -> None:
    parsed = _flags("server.readHeaderTimeout=5s", "server.idleTimeout=2m", "server.maxHeaderBytes=8192")
    assert (parsed.read_header_timeout, parsed.idle_timeout, parsed.max_header_bytes) == ("5s", "2m", 8192)


@pytest.mark.parametrize(("sets", "message"), [
    (("server.idleTimeout=0s",), "idleTimeout"),
    (("server.readHeaderTimeout=0ms",), "readHeaderTimeout"),
    (("server.readHeaderTimeout=soon",), "readHeaderTimeout"),
    (("server.maxHeaderBytes=1000",), "maxHeaderBytes"),
    (("server.maxConnections=10",), "maxConnections"),
])
def test_values_schema_rejects(sets: tuple[str, ...], message: str) -> None:
    r = run(template_cmd(sets=sets))
    assert r.returncode != 0 and message in r.stderr, r.stderr
