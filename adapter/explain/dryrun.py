"""``accel-adapter explain``: trace one metric request against Prometheus, without a cluster or a server.

Builds exactly what ``serve`` builds (``adapter.server.build``: rules, Prometheus backend, relist,
providers), lists the series once, and explains one request as the HPA would make it. Exit status:
0 when the metric would be served, 1 when it would not (the reason is printed), 2 on a bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from adapter import settings
from adapter.errors import AdapterError, ConfigError
from adapter.explain import render
from adapter.model import ResourceInfo, Selector
from adapter.naming.selectors import parse_selector


class StaticPods:
    """``ObjectResolver`` for ``--pods``: these pods exist and are the ones the selector picks."""

    def __init__(self, pods: Sequence[str]) -> None:
        self.pods = list(pods)

    async def names(self, info: ResourceInfo, namespace: str, selector: Selector) -> Sequence[str] | None:
        return self.pods

    async def exists(self, info: ResourceInfo, namespace: str, name: str) -> bool | None:
        return name in self.pods


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="trace one metric request (rule -> PromQL -> samples -> value), "
                                       "without a cluster; exit 1 when it would not be served")
    p.add_argument("--config", help="rules file (prometheus-adapter format)")
    p.add_argument("--preset", action="append", dest="presets", help="built-in preset (repeatable)")
    p.add_argument("--prometheus-url", required=True)
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--metric", required=True, help="metric name as the HPA asks for it")
    p.add_argument("--external", action="store_true", help="an External metric (external.metrics.k8s.io)")
    p.add_argument("--resource", default="pods", help="custom metrics: resource (default pods)")
    p.add_argument("--name", default="*", help="custom metrics: object name (default *: by selector)")
    p.add_argument("--selector", "-l", default="",
                   help="labelSelector: the pods' selector (custom) or the metric's selector (external)")
    p.add_argument("--metric-selector", default="", help="metricLabelSelector (custom metrics)")
    p.add_argument("--pods", default="", help="comma-separated pod names the selector picks (else "
                                               "kube-state-metrics' kube_pod_labels is used)")
    p.add_argument("--max-value-age", help="age limit (as serve's flag)")
    p.add_argument("--missing-data", choices=["error", "zero", "lastKnown"])
    p.add_argument("--metrics-max-age", help="series discovery look-back (as serve's flag)")
    p.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    p.set_defaults(func=main)


def _settings(args: argparse.Namespace) -> settings.Settings:
    argv = ["--prometheus-url", args.prometheus_url, "--authorization-mode", "AlwaysAllow", "--cache-ttl", "0"]
    for flag, value in (("--config", args.config), ("--max-value-age", args.max_value_age),
                        ("--missing-data", args.missing_data), ("--metrics-max-age", args.metrics_max_age)):
        if value:
            argv += [flag, value]
    for preset in args.presets or ():
        argv += ["--preset", preset]
    return settings.parse(argv)


async def _explain(args: argparse.Namespace) -> dict[str, object]:
    from adapter import server  # noqa: PLC0415 - the serving stack only for this subcommand

    pods = [p for p in args.pods.split(",") if p]
    built = server.build(_settings(args), resolver=StaticPods(pods) if pods else None)
    try:
        await built.relister.update_now()
        explainer = built.explainer
        assert explainer is not None
        selector = parse_selector(args.selector)
        if args.external:
            ex = await explainer.external(args.namespace, args.metric, selector)
        else:
            ex = await explainer.custom(args.resource, args.namespace, args.name, args.metric, selector,
                                        parse_selector(args.metric_selector))
        return ex.to_dict()
    finally:
        built.backend.close()


def main(args: argparse.Namespace) -> int:
    try:
        doc = asyncio.run(_explain(args))
    except ConfigError:
        raise
    except AdapterError as e:
        print(f"accel-adapter explain: {e.message}", file=sys.stderr)
        return 1
    out = render.explanation_report(doc) if args.output == "text" else render.dump(doc, args.output)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    if not doc.get("served"):
        print(f"accel-adapter explain: {args.metric} would not be served: {doc.get('summary')}", file=sys.stderr)
        return 1
    return 0
