"""Provenance stored with every result: what code, on what machine, with what software, when."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy
import PIL
import torch

from learntolearn import __version__
from learntolearn.paths import project_root

__all__ = ["collect", "cpu_capability", "device_name", "git_state"]


def cpu_capability() -> str:
    """The instruction set ATen's CPU kernels use here (e.g. ``AVX2``, ``AVX512``): results
    computed with different ones can differ in the last bits, so a bitwise rerun needs the same."""
    return str(torch.backends.cpu.get_cpu_capability())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu ({cpu})"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The checked-out commit and whether tracked files other than the results store's differ
    from it (None outside git): a run in progress rewrites its checkpoint under ``results/``,
    which says nothing about the code."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def collect(
    device: torch.device, wall_time_s: float, git: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-ready record. ``git``: the code's state when the work *started* (taken now if
    not given), so edits made while a long run trains do not mislabel it."""
    return {
        **(git if git is not None else git_state()),
        "device": device_name(device),
        "torch": torch.__version__,
        "cpu_capability": cpu_capability(),
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "learntolearn": __version__,
        "wall_time_s": round(wall_time_s, 2),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
