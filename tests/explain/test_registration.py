"""Every APIService the plain manifests register gets its caBundle from the printed patch commands."""

from __future__ import annotations

import yaml

from adapter import certs_cli
from tests.support.stack import ROOT


def test_certs_cli_patches_every_apiservice_of_the_plain_manifests() -> None:
    docs = yaml.safe_load_all((ROOT / "apiservice" / "apiservices.yaml").read_text())
    names = {d["metadata"]["name"] for d in docs if d and d["kind"] == "APIService"}
    assert names == set(certs_cli.APISERVICES)
    assert "v1alpha1.explain.accel-metrics.io" in names
