"""Sinusoid regression tasks (MAML, Finn et al. 2017, Sec. 5.1).

Each task regresses y = A·sin(x − φ) with amplitude A ~ U[0.1, 5.0] and phase φ ~ U[0, π]; the
inputs are drawn from U[−5, 5]. K support points train the learner; the query points score it.
The sign convention (x − φ) follows the paper's reference code (github.com/cbfinn/maml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from learntolearn.tasks import TaskBatch

__all__ = ["SinusoidTasks", "fixed_tasks", "sinusoid", "with_task_parameters"]

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


def sinusoid(x: Tensor, amplitude: Tensor, phase: Tensor) -> Tensor:
    """A·sin(x − φ), broadcasting ``amplitude``/``phase`` of shape ``[B]`` over ``x [B, N, 1]``."""
    return amplitude.view(-1, 1, 1) * torch.sin(x - phase.view(-1, 1, 1))


def _uniform(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=g, device=g.device) * (high - low) + low


def _tasks(xs: Tensor, xq: Tensor, amplitude: Tensor, phase: Tensor) -> TaskBatch:
    return TaskBatch(
        x_support=xs,
        y_support=sinusoid(xs, amplitude, phase),
        x_query=xq,
        y_query=sinusoid(xq, amplitude, phase),
        info={"amplitude": amplitude, "phase": phase},
    )


@dataclass(frozen=True)
class SinusoidTasks:
    """The task distribution p(T) of sinusoids; samples on ``generator``'s device.

    ``support_range`` restricts where the support points lie (Figure 2 of the paper also shows
    fits from points drawn in one half of the input range); the query points always cover
    the whole range.
    """

    k_support: int
    k_query: int
    support_range: tuple[float, float] = X_RANGE

    def __post_init__(self) -> None:
        if self.k_support < 1 or self.k_query < 1:
            raise ValueError(
                f"sinusoid tasks need k_support >= 1 and k_query >= 1, "
                f"got {self.k_support} and {self.k_query}"
            )
        lo, hi = self.support_range
        if not X_RANGE[0] <= lo < hi <= X_RANGE[1]:
            raise ValueError(f"support_range {self.support_range} must lie within {X_RANGE}")

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        g = generator
        amplitude = _uniform((num_tasks,), *AMPLITUDE, g)
        phase = _uniform((num_tasks,), *PHASE, g)
        xs = _uniform((num_tasks, self.k_support, 1), *self.support_range, g)
        xq = _uniform((num_tasks, self.k_query, 1), *X_RANGE, g)
        return _tasks(xs, xq, amplitude, phase)


def fixed_tasks(
    k_shot: int, *, num_tasks: int = 600, k_query: int = 100, seed: int = 2017, half: bool = False
) -> TaskBatch:
    """The fixed evaluation tasks every sinusoid method is scored on (CPU, seeded).

    ``half=True`` draws the K support points from [−5, 0] only. The same ``seed`` gives the same
    amplitudes and phases for every K, so curves for different K compare like with like.
    """
    support = (X_RANGE[0], 0.0) if half else X_RANGE
    g = torch.Generator().manual_seed(seed)
    amplitude = _uniform((num_tasks,), *AMPLITUDE, g)
    phase = _uniform((num_tasks,), *PHASE, g)
    xq = _uniform((num_tasks, k_query, 1), *X_RANGE, g)
    g_support = torch.Generator().manual_seed(seed * 1000 + k_shot + (500 if half else 0))
    xs = _uniform((num_tasks, k_shot, 1), *support, g_support)
    return _tasks(xs, xq, amplitude, phase)


def with_task_parameters(batch: TaskBatch) -> TaskBatch:
    """Append (A, φ) to every input: the *oracle* of MAML's Figure 3 sees the true task."""

    def augment(x: Tensor) -> Tensor:
        a = batch.info["amplitude"].view(-1, 1, 1).expand(-1, x.shape[1], 1)
        p = batch.info["phase"].view(-1, 1, 1).expand(-1, x.shape[1], 1)
        return torch.cat([x, a, p], dim=-1)

    return TaskBatch(
        augment(batch.x_support), batch.y_support, augment(batch.x_query), batch.y_query, batch.info
    )
