"""A model and a per-task loss, evaluated over a batch of tasks.

Every algorithm is written for one task and run over a :class:`~learntolearn.tasks.TaskBatch` by
:func:`over_tasks`, either *batched* (the task dimension is mapped with ``vmap``: one kernel
launch for the whole meta-batch, the fast path) or *unbatched* (a Python loop over tasks: the
plain reference the tests compare the batched path against).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .functional import Params, expand_params
from .tasks import TaskBatch

__all__ = ["Objective", "TaskLoss", "cross_entropy", "mse", "over_tasks"]

TaskLoss = Callable[[Tensor, Tensor], Tensor]
"""Loss of one task: ``(prediction [N, ...], target [N, ...]) → scalar``."""

LossFn = Callable[[Params, Tensor, Tensor], Tensor]
"""``loss(params, x, y)``: per-task losses of a model with the given parameters."""


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of one task (the sinusoid loss of MAML, Sec. 5.1)."""
    return (pred - target).pow(2).mean()


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of one N-way classification task (MAML, Sec. 5.1)."""
    return torch.nn.functional.cross_entropy(logits, labels)


@dataclass(frozen=True)
class Objective:
    """``L_T(f_θ)`` for a network ``f`` and a task loss ``L``."""

    model: nn.Module
    loss: TaskLoss

    def single(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Loss of one task (no task dimension anywhere)."""
        return self.loss(functional_call(self.model, params, (x,)), y)

    def batched(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Losses ``[B]`` of ``B`` tasks, each with its own parameters ``params[k][b]``."""
        return vmap(self.single, in_dims=(0, 0, 0), randomness="error")(params, x, y)

    def predict(self, params: Params, x: Tensor) -> Tensor:
        """Predictions of ``B`` tasks with per-task parameters (``x`` is ``[B, N, ...]``)."""
        forward = lambda p, xi: functional_call(self.model, p, (xi,))  # noqa: E731
        return vmap(forward, in_dims=(0, 0), randomness="error")(params, x)


PerTask = Callable[[Params, Tensor, Tensor, Tensor, Tensor, LossFn], Tensor]
"""``fn(θ, x_support, y_support, x_query, y_query, loss) → loss of that task``."""


def over_tasks(
    fn: PerTask, objective: Objective, params: Params, batch: TaskBatch, *, batched: bool = True
) -> Tensor:
    """Apply a per-task computation to every task of ``batch``; returns one value per task.

    Batched: θ is expanded to one differentiable copy per task and ``fn`` sees tensors with a
    task dimension and ``objective.batched``. Unbatched: ``fn`` runs once per task on the
    shared θ with ``objective.single``. Both give the same values and the same gradients.
    """
    b = batch
    if batched:
        theta = expand_params(params, b.num_tasks)
        return fn(theta, b.x_support, b.y_support, b.x_query, b.y_query, objective.batched)
    return torch.stack(
        [
            fn(params, b.x_support[i], b.y_support[i], b.x_query[i], b.y_query[i], objective.single)
            for i in range(b.num_tasks)
        ]
    )
