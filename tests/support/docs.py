"""Reading the docs the way the docs tests check them: a section under a heading, its code blocks."""

from __future__ import annotations

import re
from pathlib import Path


def section(path: Path, title: str) -> str:
    """From the heading ``title`` to the next heading as high (lines inside code blocks are not headings)."""
    depth = len(title) - len(title.lstrip("#"))
    out: list[str] = []
    fenced = False
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        heading = not fenced and re.match(rf"#{{1,{depth}}} ", line) is not None
        if out and heading:
            break
        if out or line.rstrip("\n") == title:
            out.append(line)
    assert out, f"{path}: no heading {title!r}"
    return "".join(out)


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, re.S)
