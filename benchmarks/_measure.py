"""Time, memory and the conditions of a measurement, written beside its numbers."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from benchmarks._project import ROOT


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: unlike wall time, it does not grow
    when other jobs share the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_conditions(note: str | None = None) -> dict[str, Any]:
    """What a reader needs to judge a timing: when, which code, which machine, how loaded."""
    import torch

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15min": list(os.getloadavg()),
        "note": note,
    }


def load_average() -> float:
    """The 1-minute load average now (runnable processes; above the core count means waiting)."""
    return os.getloadavg()[0]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name")), None)
    except OSError:
        return None
