"""Siamese neural networks for one-shot image recognition (Koch, Zemel & Salakhutdinov, ICML
Deep Learning Workshop 2015), Sec. 3.

    p(x₁, x₂) = σ(Σ_j α_j |h₁⁽ʲ⁾ − h₂⁽ʲ⁾| + b)                              (Sec. 3.1)
    L = −Σ y(x₁, x₂) log p + (1 − y) log(1 − p)                           (Sec. 3.2)

Twin copies of one embedding (tied weights) map both images to h₁, h₂; the weights α_j and
bias b (the network's ``comparator``, a linear layer over |h₁ − h₂|) are learned with it, and
y = 1 for a pair of the same class. Training is a verification task: every (query, support)
pair of an N-way 1-shot training episode is one example, a query's one same pair weighted
N − 1 against its N − 1 different ones, so that same and different pairs weigh equally, as
in Koch et al.'s balanced training set (Sec. 4.2). One-shot classification
(Sec. 4.3, Eq. 3) picks the support image with the highest p; with K shots a class scores its
best support image. Scores are the logit of p (the same order), so the loss can use the
numerically stable form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from learntolearn.methods.metric import (
    MetricLearner,
    comparator,
    embed,
    num_classes,
    one_hot_support,
)
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["Siamese"]


@dataclass(frozen=True)
class Siamese(MetricLearner):
    """Same/different verification on pairs; classification by the most similar support image."""

    def pair_logits(self, params: Params, a: Tensor, b: Tensor) -> Tensor:
        """logit p(x₁, x₂) ``[B, Q, S]`` of every pair of embeddings ``a [B, Q, F]`` and
        ``b [B, S, F]``."""
        distance = (a.unsqueeze(2) - b.unsqueeze(1)).abs()
        return comparator(self.objective, params, distance).squeeze(-1)

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        """Each class's best logit p over its support images (Eq. 3) ``[B, Q, N]``."""
        logits = self.pair_logits(params, query, support)
        member = one_hot_support(batch, torch.bool).unsqueeze(1)  # [B, 1, S, N]
        return logits.unsqueeze(-1).masked_fill(~member, -torch.inf).amax(dim=2)

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """Sec. 3.2: binary cross-entropy over every (query, support) pair of the episodes, the
        same pairs weighted N − 1 (balanced against the different ones)."""
        support, query = embed(self.objective, params, batch, self.mode)
        logits = self.pair_logits(params, query, support)
        same = (batch.y_query.unsqueeze(2) == batch.y_support.unsqueeze(1)).to(logits.dtype)
        weight = logits.new_tensor(float(num_classes(batch) - 1))
        return F.binary_cross_entropy_with_logits(logits, same, pos_weight=weight)
