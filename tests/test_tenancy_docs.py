"""The tenancy configurations the README and docs/install.md show load as they are written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapter.rules import parse_rules_text
from adapter.tenancy_config import TenancyConfig
from tests.support.docs import section, yaml_blocks

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tenancy_block_loads() -> None:
    (block,) = yaml_blocks(section(ROOT / "README.md", "## Tenancy"))
    tenancy = parse_rules_text(block, "README.md").tenancy
    assert isinstance(tenancy, TenancyConfig)
    assert tenancy.header == "X-Scope-OrgID" and tenancy.namespace_label == "example.com/tenant"


@pytest.mark.parametrize("heading", ["### Mimir or Cortex (`X-Scope-OrgID`)",
                                     "### Thanos with prom-label-proxy (`namespace=` parameter)"])
def test_install_doc_helm_values_load(heading: str) -> None:
    (block,) = yaml_blocks(section(ROOT / "docs" / "install.md", heading))
    values = yaml.safe_load(block)
    rules_file = yaml.safe_dump({"tenancy": values["rules"]["tenancy"]})
    assert parse_rules_text(rules_file, "values.yaml").tenancy is not None
