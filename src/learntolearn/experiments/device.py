"""The device a computation runs on, and the CPU numerics every CPU run shares."""

from __future__ import annotations

import torch

__all__ = ["cpu_numerics", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when there is a GPU, else the CPU; otherwise the device named."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available")
    return dev


def cpu_numerics(device: torch.device) -> None:
    """On the CPU: flush denormal floats to zero, and compute with one intra-op thread.

    Second-order meta-gradients through batch-normalised convolutions produce denormal numbers
    (below ~1e-38 in float32), which x86 CPUs process 10-100x slower. ``set_flush_denormal``
    only reaches the calling thread, so extra intra-op threads would still hit them: measured
    here, a 5-way 1-shot MAML step took 86 ms on one flushing thread and 3.2 s on two threads.
    Values that small carry no information, flushing is deterministic, and on the CPU
    experiments run in parallel as separate ``learntolearn train`` processes instead. Both
    settings are process-wide.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        torch.set_num_threads(1)
