"""``accel-adapter simulate``: serve the simulated fleet's exporters on one port."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from adapter.errors import ConfigError
from adapter.settings import parse_duration
from adapter.simulator.curves import SHAPES, Curve
from adapter.simulator.fleet import Fleet
from adapter.simulator.server import SimulatorServer
from adapter.simulator.topology import LAYOUTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind-address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9400, help="port (default 9400; 0 picks a free port and prints it)")
    p.add_argument("--curve", choices=SHAPES, default="wave", help="load curve shape (default wave)")
    p.add_argument("--period", default="300s", help="load curve period, e.g. 120s, 5m (default 300s)")
    p.add_argument("--base", type=float, default=0.2, help="load at the curve's bottom, 0-1 (default 0.2)")
    p.add_argument("--amplitude", type=float, default=0.6, help="load swing, 0-1, base+amplitude <= 1 (default 0.6)")
    p.add_argument("--seed", type=int, default=1, help="seed for names, ids and per-device parameters (default 1)")
    p.add_argument("--dcgm-layout", choices=LAYOUTS, default="mixed",
                   help="dcgm-exporter pod labels: exported (honorLabels false), direct (honorLabels true) "
                        "or mixed (one node each; default)")
    p.add_argument("--namespaces", type=int, default=None,
                   help="synthetic scale mode: this many namespaces of single-GPU pods (instead of the demo fleet)")
    p.add_argument("--pods-per-namespace", type=int, default=40, help="synthetic scale mode: pods per namespace")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("simulate", help="serve a simulated GPU/Neuron/LLM-server fleet's exporters",
                              description=__doc__)
    add_arguments(p)
    p.set_defaults(func=run)


def build_fleet(args: argparse.Namespace) -> Fleet:
    curve = Curve(args.curve, parse_duration(args.period, "--period"), args.base, args.amplitude)
    if args.namespaces is not None and (args.namespaces < 1 or args.pods_per_namespace < 1):
        raise ValueError("--namespaces and --pods-per-namespace must be >= 1")
    return Fleet.build(seed=args.seed, curve=curve, layout=args.dcgm_layout, namespaces=args.namespaces,
                       pods_per_namespace=args.pods_per_namespace)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    try:
        fleet = build_fleet(args)
        fleet.render()  # format every label string once, before the first scrape
        server = SimulatorServer((args.bind_address, args.port), fleet)
    except (ValueError, ConfigError, OSError) as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    print(f"simulator listening on {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m adapter.simulator", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))
