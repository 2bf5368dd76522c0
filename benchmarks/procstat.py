"""CPU seconds and peak RSS of a process tree, from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out.extend(int(c) for c in task.read_text().split())
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (bounded by the process table)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 10_000:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime of the tree (live processes only)."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM over the tree, MiB."""
    return sum(_status_kb(p, "VmHWM") for p in tree(pid)) / 1024


def rss_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in tree(pid)) / 1024


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > clear_refs``); False when not permitted."""
    ok = True
    for p in tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


@dataclass
class Usage:
    """CPU used between ``start`` and ``stop``, and the peak RSS seen meanwhile."""

    pid: int
    cpu0: float = 0.0
    cpu: float = 0.0
    peak_mb: float = 0.0

    def start(self) -> None:
        reset_peak(self.pid)
        self.cpu0 = cpu_seconds(self.pid)

    def stop(self) -> None:
        self.cpu = cpu_seconds(self.pid) - self.cpu0
        self.peak_mb = peak_rss_mb(self.pid)
