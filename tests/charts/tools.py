"""Find the real helm / checkov / hadolint and render the chart. Missing tools fail, never skip."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "accel-metrics-adapter"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
TOOLS = ROOT / ".tools"
RELEASE = "accel-metrics-adapter"
NAMESPACE = "accel-metrics"
INSTALL_HINT = "run scripts/install-tools (installs helm, hadolint and checkov into .tools/)"

# Any stray HTTP(S) call from a tool goes to a closed loopback port instead of the internet.
OFFLINE_ENV = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "NO_PROXY": "", "no_proxy": ""}


def tool(name: str, *candidates: Path) -> str:
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found (looked in {', '.join(map(str, candidates))} and PATH): {INSTALL_HINT}",
                pytrace=False)


def helm() -> str:
    return tool("helm", TOOLS / "helm" / "helm")


def checkov() -> str:
    return tool("checkov", TOOLS / "venv" / "bin" / "checkov")


def hadolint() -> str:
    return tool("hadolint", TOOLS / "venv" / "bin" / "hadolint")


def run(cmd: list[str], timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "BC_", "PRISMA_"))}
    env.update(OFFLINE_ENV)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=env,
                          check=False)


# tls.mode=generate (the default) refuses to render without a cluster unless allowed: the renders
# below are offline, so they allow it (tests of the refusal build their command without it).
ALLOW_OFFLINE_GENERATE = "tls.generate.allowTemplate=true"


def template_cmd(values: tuple[Path, ...] = (), sets: tuple[str, ...] = (), release: str = RELEASE,
                 namespace: str = NAMESPACE, allow_offline_generate: bool = True) -> list[str]:
    cmd = [helm(), "template", release, str(CHART), "--namespace", namespace]
    if allow_offline_generate:
        cmd += ["--set", ALLOW_OFFLINE_GENERATE]
    for v in values:
        cmd += ["-f", str(v)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


@functools.lru_cache(maxsize=64)
def render_text(values: tuple[Path, ...] = (), sets: tuple[str, ...] = (), release: str = RELEASE,
                namespace: str = NAMESPACE) -> str:
    r = run(template_cmd(values, sets, release, namespace))
    if r.returncode != 0:
        raise AssertionError(f"helm template failed ({values}, {sets}):\n{r.stderr}")
    return r.stdout


def render(values: tuple[Path, ...] = (), sets: tuple[str, ...] = (), release: str = RELEASE,
           namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    text = render_text(values, sets, release, namespace)
    return [d for d in yaml.safe_load_all(text) if d]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def kinds(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]
