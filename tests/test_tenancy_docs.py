"""The tenancy configurations the README and docs/install.md show load as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from adapter.rules import parse_rules_text
from adapter.tenancy_config import TenancyConfig

ROOT = Path(__file__).resolve().parents[1]


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(f"\n{heading}\n")
    level = len(heading.split(" ", maxsplit=1)[0])
    # up to the next heading of the same or a higher level (## ends a ### section too)
    nxt = re.compile(f"^#{{1,{level}}} ", re.M).search(text, start + len(heading) + 2)
    return text[start:nxt.start() if nxt else None]


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


def test_readme_tenancy_block_loads() -> None:
    (block,) = _yaml_blocks(_section(ROOT / "README.md", "## Tenancy"))
    tenancy = parse_rules_text(block, "README.md").tenancy
    assert isinstance(tenancy, TenancyConfig)
    assert tenancy.header == "X-Scope-OrgID" and tenancy.namespace_label == "example.com/tenant"


@pytest.mark.parametrize("heading", ["### Mimir or Cortex (`X-Scope-OrgID`)",
                                     "### Thanos with prom-label-proxy (`namespace=` parameter)"])
def test_install_doc_helm_values_load(heading: str) -> None:
    (block,) = _yaml_blocks(_section(ROOT / "docs" / "install.md", heading))
    values = yaml.safe_load(block)
    rules_file = yaml.safe_dump({"tenancy": values["rules"]["tenancy"]})
    assert parse_rules_text(rules_file, "values.yaml").tenancy is not None
