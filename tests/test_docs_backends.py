"""The "Several backends" docs (docs/install.md, README.md): every rules-file block loads as written
(its credential files present), every backend kind is shown, and the Helm values block renders into
a rules file that loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.rules import load_rules, parse_rules_text
from tests.charts.tools import one, render
from tests.support.docs import section
from tests.support.docs import yaml_blocks as blocks

ROOT = Path(__file__).resolve().parents[1]
FILES = re.compile(r"(/etc/accel-adapter/backends/[\w./-]+)")


def with_files(text: str, tmp: Path) -> str:
    """``text`` with every credential file it names created under ``tmp`` (the Secret mounts)."""
    for path in set(FILES.findall(text)):
        local = tmp / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("user:secret\n")
        text = text.replace(path, str(local))
    return text


DOC = section(ROOT / "docs" / "install.md", "## Several backends")
README = section(ROOT / "README.md", "### Several backends")
RULES_BLOCKS = [b for b in blocks(DOC) + blocks(README) if not b.startswith("# my-values.yaml")]


@pytest.mark.parametrize("block", RULES_BLOCKS)
def test_every_rules_block_loads(block: str, tmp_path: Path) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(with_files(block, tmp_path))
    loaded = load_rules(cfg)
    assert loaded.backends
    assert all(r.backend in {"default", *(b.name for b in loaded.backends)}
               for r in (*loaded.rules, *loaded.external_rules))


def test_every_backend_kind_is_shown() -> None:
    docs: list[dict[str, Any]] = [b for block in RULES_BLOCKS for b in yaml.safe_load(block)["backends"]]
    auth = [d.get("auth") or {} for d in docs]
    assert any("sigv4" in a for a in auth) and any("bearerTokenFile" in a for a in auth)
    assert any("basicAuthFile" in a for a in auth) and any("mTLS" in a for a in auth)
    assert any("X-Scope-OrgID" in (d.get("headers") or {}) for d in docs)
    assert any("thanos" in d["name"] for d in docs) and any("vmselect" in d["url"] for d in docs)
    assert any("prometheus-operated" in d["url"] for d in docs)


def test_the_helm_values_block_renders_a_rules_file_that_loads(tmp_path: Path) -> None:
    (values_text,) = [b for b in blocks(DOC) if b.startswith("# my-values.yaml")]
    values = tmp_path / "values.yaml"
    values.write_text(values_text)
    objs = render((values,))
    config = one(objs, "ConfigMap")["data"]["config.yaml"]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    token = yaml.safe_load(config)["backends"][0]["auth"]["bearerTokenFile"]
    assert str(Path(token).parent) in mounts
    rf = parse_rules_text(with_files(config, tmp_path), "config.yaml")
    assert [b.name for b in rf.backends] == ["thanos-eu"]
