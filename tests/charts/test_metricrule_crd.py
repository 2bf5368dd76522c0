"""The MetricRule CRD: the chart ships exactly what ``adapter.crd`` generates from the rules model, it is
a structural schema, the rules file's fields validate against it, and the RBAC and flag follow
``metricRules.enabled``."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import yaml

from adapter.crd import render
from adapter.settings import build_parser
from tests.charts.crdschema import conforms, structural_problems

from .test_chart import allowed
from .tools import CHART, NAMESPACE, one
from .tools import render as helm_render

CRD_FILE = CHART / "crds" / "metricrules.accel-metrics.io.yaml"


def crd() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return doc


def schema() -> dict[str, Any]:
    return dict(crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_the_committed_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == render(), "run scripts/gen-crd"


def test_the_crd_is_a_structural_schema() -> None:
    assert structural_problems(schema()) == []
    assert schema()["properties"]["metadata"] == {"type": "object"}


def test_the_crd_names_scope_status_and_printer_columns() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "metricrules.accel-metrics.io"
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == ("accel-metrics.io", "Namespaced", "MetricRule")
    version = spec["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Accepted", "Metrics", "Age"]


def test_the_rules_files_fields_validate_against_it() -> None:
    rules = yaml.safe_load((CHART.parents[1] / "tests" / "data" / "rules.yaml").read_text())
    spec = {"rules": rules["rules"], "externalRules": rules["externalRules"]}
    assert conforms(spec, schema()["properties"]["spec"]) == []
    rule = {**rules["rules"][0], "missingData": "lastKnown", "maxAge": "2m", "cacheTTL": None,
            "seriesFilters": [{"is": "x"}, {"isNot": "y"}]}
    assert conforms({"rules": [rule]}, schema()["properties"]["spec"]) == []


@pytest.mark.parametrize(("spec", "problem"), [
    ({"rules": [{"metricsQuery": "x"}]}, ".rules[0].seriesQuery: required"),
    ({"rules": [{"seriesQuery": "x", "metricsQuery": "y", "missingData": "never"}]}, "not in"),
    ({"rules": [{"seriesQuery": "x", "metricsQuery": "y", "seriesQery": "z"}]}, ".rules[0].seriesQery: unknown field"),
    ({"rules": [{"seriesQuery": "x", "metricsQuery": "y", "resources": {"overrides": {"pod": {"group": ""}}}}]},
     ".rules[0].resources.overrides.pod.resource: required"),
], ids=["required", "enum", "unknown", "map-of-objects"])
def test_what_the_schema_refuses(spec: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in conforms(spec, schema()["properties"]["spec"]))


def test_rbac_and_flag_only_with_metric_rules_enabled() -> None:
    off = helm_render()
    on = helm_render(sets=("metricRules.enabled=true",))
    sa = (NAMESPACE, one(on, "ServiceAccount")["metadata"]["name"])
    for verb in ("get", "list", "watch"):
        assert allowed(on, sa, verb, "accel-metrics.io", "metricrules")
        assert not allowed(off, sa, verb, "accel-metrics.io", "metricrules")
    assert allowed(on, sa, "patch", "accel-metrics.io", "metricrules/status")
    assert not allowed(on, sa, "patch", "accel-metrics.io", "metricrules")  # status only
    assert not allowed(on, sa, "create", "accel-metrics.io", "metricrules")
    parse = build_parser(argparse.ArgumentParser(exit_on_error=False)).parse_args
    assert parse(one(on, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]).metric_rules == "true"
    assert parse(one(off, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]).metric_rules is None
