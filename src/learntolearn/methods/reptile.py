"""Reptile (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018,
arXiv:1803.02999v3), Algorithm 2, the batched version:

    for iteration = 1, 2, ...:
        sample tasks τ_1, ..., τ_n
        W_i = U^k_{τ_i}(Φ)                    (k steps of SGD or Adam on minibatches of τ_i)
        Φ ← Φ + ε · (1/n) Σ_i (W_i − Φ)

Reptile has no query set and no meta-gradient: a task's examples (support and query pooled)
are cut into minibatches of ``inner_batch``, one per inner step. :meth:`Reptile.loss` is the
surrogate ½‖Φ − W̄‖² whose gradient is Φ − W̄, so one SGD step with step size ε on it is
exactly the update above; training.py anneals ε linearly to its final value, as the paper does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from learntolearn.methods.finetuning import finetune_predictions
from learntolearn.methods.inner_loop import UpdateRule, adapt
from learntolearn.objective import Objective, Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["Reptile", "pooled_examples"]


def pooled_examples(batch: TaskBatch) -> tuple[Tensor, Tensor]:
    """Every example of each task, support then query: ``x [B, M, ...]``, ``y [B, M, ...]``.

    Class labels (integer targets) are interleaved so that the i-th example of every class
    comes before any (i+1)-th one; consecutive minibatches of a multiple of N examples are then
    class-balanced. The sampler draws the examples of a class at random, so a minibatch is a
    random balanced sample of the task (the reference code shuffles without balancing).
    """
    x = torch.cat([batch.x_support, batch.x_query], 1)
    y = torch.cat([batch.y_support, batch.y_query], 1)
    if y.is_floating_point():
        return x, y
    classes = int(y.max()) + 1
    onehot = torch.nn.functional.one_hot(y, classes)
    rank = (onehot.cumsum(1) - 1).gather(2, y.unsqueeze(2)).squeeze(2)  # i-th of its class
    order = (rank * classes + y).argsort(dim=1)
    per_example = order.view(*order.shape, *[1] * (x.dim() - 2))  # broadcast over features
    return torch.take_along_dim(x, per_example, 1), y.gather(1, order)


@dataclass(frozen=True)
class Reptile:
    """Reptile with ``inner_steps`` steps of ``rule`` on minibatches of ``inner_batch``."""

    objective: Objective
    rule: UpdateRule
    inner_steps: int
    inner_batch: int

    def adapt(self, params: Params, batch: TaskBatch) -> Params:
        """W_i = U^k_{τ_i}(Φ) for every task: parameters with a leading task dimension."""
        x, y = pooled_examples(batch)
        m = x.shape[1]

        def minibatch_loss(p: Params, step: int) -> Tensor:
            idx = (step * self.inner_batch + torch.arange(self.inner_batch, device=x.device)) % m
            return self.objective.batched(p, x[:, idx], y[:, idx])

        theta = expand_params({k: v.detach() for k, v in params.items()}, batch.num_tasks)
        return adapt(
            theta, minibatch_loss, steps=self.inner_steps, rule=self.rule, differentiable=False
        )

    def direction(self, params: Params, batch: TaskBatch) -> Params:
        """Φ − W̄: the negative of Reptile's update direction (1/n) Σ_i (W_i − Φ)."""
        adapted = self.adapt(params, batch)
        return {k: v.detach() - adapted[k].mean(0).detach() for k, v in params.items()}

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """½‖Φ − W̄‖², with W̄ held constant: its gradient is Φ − W̄."""
        mean = {k: v.mean(0).detach() for k, v in self.adapt(params, batch).items()}
        return torch.stack([0.5 * (v - mean[k]).pow(2).sum() for k, v in params.items()]).sum()

    def predictions(
        self, params: Params, batch: TaskBatch, *, steps: int, lr: float, modes: Sequence[str]
    ) -> dict[str, Tensor]:
        """Test time (App. A): ``steps`` steps of the inner optimiser, with step size ``lr``, on
        the support set (full batch)."""
        rule = replace(self.rule, lr=lr)
        return finetune_predictions(
            self.objective, params, batch, steps=steps, rule=rule, modes=modes
        )
