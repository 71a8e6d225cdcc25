"""What the kernel says about the bench's processes and the machine (``/proc``): peak RSS, CPU time, load."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """The process's peak resident set size (``VmHWM``) in MB; None when it is gone."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / 1e6, 1)
    return None


def cpu_seconds(pid: int | str = "self", children: bool = False) -> float | None:
    """User + system CPU seconds of the process (with ``children``: plus those of its reaped children)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if children:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
        return ticks / TICK
    return None


def cpu_of_named(names: tuple[str, ...]) -> float:
    """CPU seconds of every process whose command name is one of ``names`` (reaped children included)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() in names:
                total += cpu_seconds(entry.name, children=True) or 0.0
    return total


@dataclass(frozen=True, slots=True)
class MachineCpu:
    """The machine's CPU time since boot, busy and in all, in seconds (``/proc/stat``)."""

    busy: float
    total: float

    @classmethod
    def now(cls) -> MachineCpu:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already inside user
        return cls((total - idle) / TICK, total / TICK)

    def busy_percent_since(self, before: MachineCpu) -> float:
        """Busy share of all cores between ``before`` and this sample, in % of the machine."""
        total = self.total - before.total
        return round(100.0 * (self.busy - before.busy) / total, 1) if total > 0 else 0.0
