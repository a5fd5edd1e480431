"""Summaries of scores over the fixed test tasks: mean with 95% CI, median, divergence count."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.func import vmap

from learntolearn.objective import TaskLoss

__all__ = ["Z_95", "mean_ci95", "median", "score_curve", "summarize_curve"]

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def mean_ci95(values: Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval over tasks.

    ``values`` holds one number per test task; the half-width is 1.96·s/√n with the sample
    standard deviation s, the convention of the few-shot literature (e.g. MAML's Table 1).
    """
    v = values.detach().double().flatten()
    if v.numel() < 2:
        raise ValueError("a confidence interval needs at least two tasks")
    return v.mean().item(), Z_95 * v.std(unbiased=True).item() / math.sqrt(v.numel())


def median(values: Tensor) -> float:
    """The median, counting a non-finite value (a diverged task) as +inf."""
    v = values.double()
    v = torch.where(torch.isfinite(v), v, torch.inf).sort().values
    n = v.numel()
    return ((v[(n - 1) // 2] + v[n // 2]) / 2).item()


def summarize_curve(curve: Tensor, metric: str = "mse") -> dict[str, object]:
    """Per step: mean and 95% CI over tasks and the median; for a loss, how many tasks diverged.

    ``curve`` is ``[steps+1, tasks]``. Plain gradient descent from a meta-learned
    initialisation can blow up on a few ill-conditioned tasks when run for more steps than it
    was meta-trained for; such a task counts as *diverged* at a step when its loss is
    non-finite or at least ten times its loss before adaptation. The mean keeps every task (as
    the papers do), so divergence shows in it; the median and the count say how much.
    """
    stats = [mean_ci95(c) for c in curve]
    out: dict[str, object] = {
        "metric": metric,
        "mean": [m for m, _ in stats],
        "ci95": [h for _, h in stats],
        "median": [median(c) for c in curve],
    }
    if metric != "accuracy":
        out["diverged"] = (~torch.isfinite(curve) | (curve >= 10 * curve[0])).sum(1).tolist()
    return out


def score_curve(score: TaskLoss, predictions: Tensor, targets: Tensor) -> Tensor:
    """``score`` of every task after every step: ``predictions [S, B, Q, ...]`` (a method's
    :meth:`~learntolearn.methods.protocol.Method.predictions`) against ``targets [B, Q, ...]``
    gives ``[S, B]``."""
    per_task = vmap(score)
    return torch.stack([per_task(p, targets) for p in predictions])
