"""Evaluation shared by every chapter: fine-tuning curves on fixed test tasks, and 95% CIs.

The protocol of MAML (Finn et al. 2017, Sec. 5.1 and Fig. 3): start from the learned
initialisation, take 0, 1, …, n plain gradient steps on each test task's K support points and
score the query points after each step. The same seeded test tasks serve every method.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .functional import Params, expand_params
from .inner_loop import inner_sgd
from .objective import Objective
from .tasks import TaskBatch

__all__ = ["finetune_curve", "mean_ci95"]

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


def finetune_curve(
    objective: Objective, params: Params, batch: TaskBatch, *, steps: int, lr: float
) -> Tensor:
    """Query loss of each task after 0..``steps`` SGD steps on its support set: ``[steps+1, B]``."""
    losses: list[Tensor] = []

    def score(_: int, p: Params) -> None:
        with torch.no_grad():
            losses.append(objective.batched(p, batch.x_query, batch.y_query))

    theta = expand_params({k: v.detach() for k, v in params.items()}, batch.num_tasks)
    inner_sgd(
        theta,
        lambda p: objective.batched(p, batch.x_support, batch.y_support),
        steps=steps,
        lr=lr,
        differentiable=False,
        trace=score,
    )
    return torch.stack(losses)
