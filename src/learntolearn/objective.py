"""A model and a per-task loss, evaluated over a batch of tasks.

Every algorithm is written for one task and run over a :class:`~learntolearn.tasks.TaskBatch` by
:func:`over_tasks`, either *batched* (all tasks at once, the fast path: a network with
``forward_tasks``, such as :class:`~learntolearn.models.networks.ConvNet`, computes the whole
meta-batch itself; any other is mapped over the task dimension with ``vmap``) or *unbatched* (a
Python loop over tasks: the plain reference the tests compare the batched path against).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from learntolearn.tasks import TaskBatch

__all__ = [
    "MODES",
    "Objective",
    "Params",
    "TaskLoss",
    "accuracy",
    "cross_entropy",
    "expand_params",
    "init_params",
    "mse",
    "over_tasks",
]

Params = dict[str, Tensor]
"""A network's parameters by name: models are pure functions ``f(params, x)`` (the
``torch.func`` style), since meta-learning differentiates through parameter updates. Parameters
of a batch of tasks carry a leading task dimension, and ``vmap`` maps the network over it."""


def init_params(model: nn.Module) -> Params:
    """Fresh leaf tensors (requiring grad) holding a copy of ``model``'s parameters."""
    return {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}


def expand_params(params: Params, num_tasks: int) -> Params:
    """Give every task its own (differentiable) view of the shared initialisation θ."""
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


TaskLoss = Callable[[Tensor, Tensor], Tensor]
"""Loss of one task: ``(prediction [N, ...], target [N, ...]) → scalar``."""

LossFn = Callable[..., Tensor]
"""``loss(params, x, y, context=None)``: per-task losses under the given parameters; ``context``
is the task's support inputs, used only by non-transductive normalisation."""


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of one task (the sinusoid loss of MAML, Sec. 5.1)."""
    return (pred - target).pow(2).mean()


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of one N-way classification task (MAML, Sec. 5.1)."""
    return torch.nn.functional.cross_entropy(logits, labels)


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correctly classified examples of one task."""
    return (logits.argmax(-1) == labels).float().mean()


@dataclass(frozen=True)
class Objective:
    """``L_T(f_θ)`` for a network ``f`` and a task loss ``L``.

    ``transductive`` (the MAML reference code's behaviour): batch normalisation uses the
    statistics of whatever batch it is given, so a query prediction depends on the other query
    examples. ``transductive=False``: query inputs are normalised with their task's support
    statistics (the support set, passed as ``context``, is put first and ``stats_from`` set).
    """

    model: nn.Module
    loss: TaskLoss
    transductive: bool = True

    def predict_single(
        self, params: Params, x: Tensor, context: Tensor | None = None, layers: bool = False
    ) -> Any:
        """Predictions of one task for inputs ``x`` (``context``: its support inputs); with
        ``layers``, the tuple of every layer's output (networks that offer ``layers=True``)."""
        kwargs = {"layers": True} if layers else {}
        if self.transductive or context is None:
            return functional_call(self.model, params, (x,), kwargs)
        n = context.shape[0]
        inputs = (torch.cat([context, x]),)
        out = functional_call(self.model, params, inputs, {"stats_from": n, **kwargs})
        return tuple(o[n:] for o in out) if layers else out[n:]

    def in_mode(self, mode: str) -> Objective:
        """This objective with batch norm in ``mode``: ``"transductive"`` (the query batch's
        statistics, as MAML's code) or ``"non-transductive"`` (the support set's)."""
        if mode not in MODES:
            raise ValueError(f"unknown batch-norm mode {mode!r}; use one of {MODES}")
        return replace(self, transductive=mode == "transductive")

    def single(self, params: Params, x: Tensor, y: Tensor, context: Tensor | None = None) -> Tensor:
        """Loss of one task (no task dimension anywhere)."""
        return self.loss(self.predict_single(params, x, context), y)

    def batched(
        self, params: Params, x: Tensor, y: Tensor, context: Tensor | None = None
    ) -> Tensor:
        """Losses ``[B]`` of ``B`` tasks, each with its own parameters ``params[k][b]``."""
        if hasattr(self.model, "forward_tasks"):
            return vmap(self.loss, randomness="error")(self.predict(params, x, context), y)
        dims = (0, 0, 0, None if context is None else 0)
        return vmap(self.single, in_dims=dims, randomness="error")(params, x, y, context)

    def predict(
        self, params: Params, x: Tensor, context: Tensor | None = None, layers: bool = False
    ) -> Any:
        """Predictions ``[B, N, ...]`` of ``B`` tasks with per-task parameters (``layers``: a
        tuple of every layer's outputs). A network with ``forward_tasks`` computes them for all
        tasks at once (see :class:`~learntolearn.models.networks.ConvNet`); any other is
        mapped over the tasks with ``vmap``."""
        tasks = getattr(self.model, "forward_tasks", None)
        if tasks is not None and not layers:
            if self.transductive or context is None:
                return tasks(params, x)
            n = context.shape[1]
            return tasks(params, torch.cat([context, x], 1), stats_from=n)[:, n:]
        dims = (0, 0, None if context is None else 0)
        single = partial(self.predict_single, layers=layers)
        return vmap(single, in_dims=dims, randomness="error")(params, x, context)


MODES = ("transductive", "non-transductive")
"""The batch-norm modes of evaluation, by the names the stored results use."""


PerTask = Callable[[Params, Tensor, Tensor, Tensor, Tensor, LossFn], Tensor]
"""``fn(θ, x_support, y_support, x_query, y_query, loss) → a value per task``."""


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
