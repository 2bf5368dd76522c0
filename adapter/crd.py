"""The ``MetricRule`` CustomResourceDefinition, its spec schema generated from the rules file's model.

``python -m adapter.crd`` prints the CRD the chart ships (``scripts/gen-crd`` writes it there; a test
checks the committed file is what this prints). The spec's ``openAPIV3Schema`` comes from
``adapter.rules.MetricRuleSpec`` (the rules file's ``rules``/``externalRules`` and their fields, by
the same names), made structural as apiextensions.k8s.io/v1 requires: references inlined, a ``type``
on every node, optional fields as ``nullable``, no ``additionalProperties`` beside ``properties``
(unknown fields are pruned by the API server, and rejected by kubectl's field validation), no titles
or defaults (the adapter applies its defaults when it validates the object with the same model).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from adapter.rules import MetricRuleSpec

GROUP = "accel-metrics.io"
VERSION = "v1alpha1"
KIND = "MetricRule"
PLURAL = "metricrules"

_DROP = frozenset({"title", "default"})


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """A pydantic JSON schema node as a structural OpenAPI v3 schema node."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return structural(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) != 1 or len(options) == len(node["anyOf"]):
            raise ValueError(f"cannot express {node} in a structural schema")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return {**structural({**rest, **options[0]}, defs), "nullable": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: structural(v, defs) for name, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    if "properties" in out:
        out.pop("additionalProperties", None)
    if "type" not in out:
        raise ValueError(f"schema node without a type: {node}")
    return out


def spec_schema() -> dict[str, Any]:
    schema = MetricRuleSpec.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    out: dict[str, Any] = structural(schema, defs)
    out["description"] = ("Rules for this namespace, in the rules file's format (prometheus-adapter's fields). "
                          "Their queries are confined to this namespace.")
    return out


def status_schema() -> dict[str, Any]:
    string = {"type": "string"}
    condition = {"type": "object", "required": ["type", "status"], "properties": {
        "type": string, "status": {"type": "string", "enum": ["True", "False", "Unknown"]}, "reason": string,
        "message": string, "observedGeneration": {"type": "integer", "format": "int64"},
        "lastTransitionTime": {"type": "string", "format": "date-time"}}}
    return {"type": "object", "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "conditions": {"type": "array", "items": condition, "x-kubernetes-list-type": "map",
                       "x-kubernetes-list-map-keys": ["type"]},
        "metrics": {"type": "array", "items": string,
                    "description": "The metric names this MetricRule serves (after series discovery)."},
        "shadowed": {"type": "array", "items": string,
                     "description": "Metric names it would serve that a cluster rule serves instead."}}}


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": "metricrule",
                      "categories": ["accel-metrics"]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Accepted", "type": "string",
                     "jsonPath": '.status.conditions[?(@.type=="Accepted")].status'},
                    {"name": "Metrics", "type": "string", "jsonPath": ".status.metrics"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "Metric rules owned by a team, served for this namespace only.",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": spec_schema(), "status": status_schema()}}},
            }],
        },
    }


HEADER = "# Generated by scripts/gen-crd (python -m adapter.crd) from adapter/rules.py: do not edit.\n"


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    return HEADER + yaml.dump(crd(), Dumper=_NoAliases, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())
