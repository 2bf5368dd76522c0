"""Command line: ``accel-adapter serve | presets | check-config | simulate | certs``. Thin; calls the layers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from adapter import __version__, logs, settings
from adapter.errors import ConfigError

log = logging.getLogger("adapter")

# subcommands owned by their own modules: each exposes register(subparsers)
_PLUGGABLE = ("adapter.simulator.cli", "adapter.certs_cli", "adapter.demo", "adapter.explain.dryrun")


def _serve(args: argparse.Namespace) -> int:
    from adapter import server  # noqa: PLC0415 - keep `presets` and `--help` fast

    st = settings.from_args(args)
    logs.setup(st.log_level, st.log_format)
    log.info("accel-metrics-adapter starting", extra={"version": __version__, "prometheus": st.prometheus_url,
                                                      "presets": ",".join(st.presets)})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.run(st))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from adapter import server  # noqa: PLC0415
    from adapter.naming.resources import StaticResourceMapper  # noqa: PLC0415
    from adapter.rules import load_rules  # noqa: PLC0415

    rules = load_rules(Path(args.config) if args.config else None, tuple(args.presets or ()))
    custom, external = server.compile_rules(rules, StaticResourceMapper())
    print(f"ok: {len(custom)} rules, {len(external)} externalRules"
          + (f", presets: {', '.join(rules.presets)}" if rules.presets else ""))
    if not args.prometheus_url:
        return 0
    from adapter.provider.probe import probe  # noqa: PLC0415

    st = settings.from_args(args)
    backend = server.backends(st, rules)
    quiet = logging.getLogger("adapter.backends")  # each rule's line below says it; no outage log lines
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        reports = asyncio.run(probe(custom, external, backend.series, st.series_max_age))
    finally:
        quiet.setLevel(level)
        backend.close()
    others = "".join(f", backend {b.name} {b.url}" for b in rules.backends)  # each rule's on its own backend
    print(f"series discovery against {st.prometheus_url}{others} (last {st.series_max_age:g}s):")
    for r in reports:
        print(f"  {r.line()}")
    failed = sum(1 for r in reports if r.error)
    if failed:
        print(f"accel-adapter: series discovery failed for {failed} of {len(reports)} rules", file=sys.stderr)
    return 1 if failed else 0


def _presets(args: argparse.Namespace) -> int:
    from adapter import presets_table  # noqa: PLC0415

    print(presets_table.render(args.output))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accel-adapter", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the aggregated API server")
    settings.build_parser(serve)
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="load and compile a rules file (and presets), then exit; "
                           "with --prometheus-url also run each seriesQuery once")
    check.add_argument("--config")
    check.add_argument("--preset", action="append", dest="presets")
    check.add_argument("--prometheus-url", help="also run each seriesQuery once against this Prometheus and "
                       "report per rule what it found (exit 1 if any failed)")
    for flag in ("--prometheus-timeout", "--metrics-max-age", "--prometheus-token-file", "--prometheus-ca-file",
                 "--prometheus-client-tls-cert-file", "--prometheus-client-tls-key-file"):
        check.add_argument(flag, help="as for serve; used with --prometheus-url")
    check.add_argument("--prometheus-header", action="append", help="as for serve (repeatable)")
    check.add_argument("--prometheus-auth", choices=["none", "sigv4"], help="as for serve; used with --prometheus-url")
    for flag in ("--prometheus-sigv4-region", "--prometheus-sigv4-role-arn", "--prometheus-sigv4-external-id"):
        check.add_argument(flag, help="as for serve; used with --prometheus-url")
    check.set_defaults(func=_check_config)
    presets = sub.add_parser("presets", help="list the built-in presets and the metrics they define")
    presets.add_argument("-o", "--output", choices=["table", "json"], default="table")
    presets.set_defaults(func=_presets)
    for name in _PLUGGABLE:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except ConfigError as e:
        print(f"accel-adapter: configuration error: {e.message}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
