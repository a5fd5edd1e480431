"""ANIL, Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, Sec. 4).

MAML (Algorithm 2 of Finn et al.) with the inner loop restricted to the network's head, the
final linear classifier; the outer loop still trains every parameter:

    θ'_head = θ_head − α ∇_{θ_head} L_{T_i}(f_θ)      (Eq. 1, the body fixed)
    θ ← θ − β ∇_θ Σ_i L_{T_i}(f_{θ_body, θ'_head})

At test time the head alone is fine-tuned. Everything else is :class:`~.maml.MAML`'s, except
that with a network exposing its body and head for a batch of tasks (``features_tasks`` and
``head_tasks``, as :class:`~learntolearn.models.networks.ConvNet`) the body runs once per task
and meta-iteration: the inner loop does not change it, so its features are the same at every
inner step, and only the linear head is evaluated and differentiated there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import vmap

from learntolearn.methods.inner_loop import inner_sgd
from learntolearn.methods.maml import MAML
from learntolearn.objective import Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["ANIL", "HEAD"]

HEAD = ("head.weight", "head.bias")
"""The classifier's last layer in the book's networks (``ConvNet.head``, ``FCNet.head``): what
ANIL adapts (Sec. 4)."""


@dataclass(frozen=True)
class ANIL(MAML):
    """MAML whose inner loop adapts ``adapted`` (the head) alone."""

    adapted: tuple[str, ...] | None = HEAD

    def __post_init__(self) -> None:
        if not self.adapted:
            raise ValueError("ANIL adapts the head: adapted must name its parameters")

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """The meta-objective (Eq. 2), the body's features computed once per task."""
        model = self.objective.model
        cached = self.batched and set(self.adapted or ()) == set(HEAD)
        if not (cached and hasattr(model, "features_tasks")):
            return super().loss(params, batch)
        theta = expand_params(params, batch.num_tasks)
        if self.objective.transductive:  # each set normalised by its own statistics
            support = model.features_tasks(theta, batch.x_support)
            query = model.features_tasks(theta, batch.x_query)
        else:  # the query normalised with the support set's statistics
            n = batch.x_support.shape[1]
            both = torch.cat([batch.x_support, batch.x_query], 1)
            features = model.features_tasks(theta, both, stats_from=n)
            support, query = features[:, :n], features[:, n:]
        per_task = vmap(self.objective.loss)

        def head_loss(head: Params, features: Tensor, labels: Tensor) -> Tensor:
            return per_task(model.head_tasks(head, features), labels)

        head = inner_sgd(
            {k: theta[k] for k in HEAD},
            lambda h: head_loss(h, support, batch.y_support),
            steps=self.inner_steps,
            lr=self.inner_lr,
            first_order=self.first_order,
        )
        return head_loss(head, query, batch.y_query).mean()
