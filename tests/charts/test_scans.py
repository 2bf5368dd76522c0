"""checkov on the rendered chart, the plain manifests and the Dockerfile; hadolint on the Dockerfile.

A failed check is allowed only when .checkov.yaml skips it with a written reason, and every
skip there must still be needed (a stale skip fails too).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from .tools import CI_VALUES, ROOT, checkov, hadolint, render_text, run

CONFIG = ROOT / ".checkov.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SKIP_LINE = re.compile(r"^\s*-\s*(CKV2?_[A-Z0-9_]+)\s*(?:#\s*(.*))?$")


def _skips() -> dict[str, str]:
    lines = CONFIG.read_text().splitlines()
    start = lines.index("skip-check:")
    out: dict[str, str] = {}
    for line in lines[start + 1:]:
        if not line.startswith((" ", "-")):
            break
        m = SKIP_LINE.match(line)
        assert m, f".checkov.yaml: cannot read skip entry {line!r}"
        out[m.group(1)] = (m.group(2) or "").strip()
    return out


def _checkov(args: list[str], cwd: Path = ROOT) -> dict[str, Any]:
    # checkov also reads .checkov.yaml from its working directory
    r = run([checkov(), *args, "--skip-download", "-o", "json"], timeout=300, cwd=cwd)
    assert r.returncode in (0, 1), f"checkov crashed ({r.returncode}):\n{r.stderr[-3000:]}"
    data = json.loads(r.stdout)
    if isinstance(data, list):  # one report per framework
        assert len(data) == 1, [d.get("check_type") for d in data]
        data = data[0]
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every ci/ scenario rendered, plus the plain manifests, in one directory."""
    d = tmp_path_factory.mktemp("rendered")
    for values in CI_VALUES:
        (d / f"chart-{values.stem}.yaml").write_text(render_text((values,)))
    for plain in (ROOT / "apiservice").glob("*.yaml"):
        shutil.copy(plain, d / f"plain-{plain.name}")
    return d


def test_every_skip_has_a_reason() -> None:
    skips = _skips()
    assert skips, ".checkov.yaml lists no skips (then delete the skip-check key)"
    for check, reason in skips.items():
        assert len(reason) >= 40, f"{check}: skipped without a written reason"


def _failed(report: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]


def test_checkov_kubernetes_passes_with_the_documented_skips(manifests: Path) -> None:
    report = _checkov(["-d", str(manifests), "--framework", "kubernetes", "--config-file", str(CONFIG)])
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 50
    assert summary["passed"] > 100
    assert summary["failed"] == 0, "\n".join(_failed(report))


def test_every_skip_is_still_needed(manifests: Path) -> None:
    report = _checkov(["-d", str(manifests), "--framework", "kubernetes"], cwd=manifests)
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    skips = set(_skips())
    assert failing - skips == set(), "failing without a skip"
    assert skips - failing == set(), "skipped in .checkov.yaml but no longer failing: remove the skip"


def test_checkov_dockerfile() -> None:
    report = _checkov(["-f", str(DOCKERFILE), "--framework", "dockerfile", "--config-file", str(CONFIG)])
    assert report["summary"]["passed"] > 10
    assert report["summary"]["failed"] == 0, "\n".join(_failed(report))


def test_hadolint_dockerfile() -> None:
    r = run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_shape() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) == 2, "multi-stage: a builder and the final image"
    assert all(re.match(r"FROM python:3\.11-slim", f) for f in froms)
    final = lines[lines.index(froms[1]):]
    text = "\n".join(final)
    assert "USER 65532" in text, "numeric non-root user"
    assert final[-1] == 'ENTRYPOINT ["accel-adapter", "serve"]'
    assert "--no-index" in text and ".whl" in text, "the final stage installs the wheel only"
    assert not re.search(r"apt-get|apk |gcc|build-essential|COPY (?!--from)", text), "no build tools or sources"
    users = [ln for ln in final if ln.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] == "65532"
    ignore = (ROOT / ".dockerignore").read_text()
    assert "*" in ignore.splitlines() and "!adapter/" in ignore


def test_a_missing_tool_fails_with_the_install_hint(tmp_path: Path) -> None:
    from .tools import tool

    with pytest.raises(pytest.fail.Exception, match=r"run scripts/install-tools"):
        tool("no-such-tool-accel-test", tmp_path / "no-such-tool-accel-test")
