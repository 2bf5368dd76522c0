"""The server's connection limits (--read-header-timeout, --idle-timeout, --max-header-bytes) as chart values.

The schema's bounds are in test_chart.py's test_values_schema_rejects."""

from __future__ import annotations

import argparse

from adapter.settings import Settings, build_parser, parse_duration

from .tools import one, render


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
