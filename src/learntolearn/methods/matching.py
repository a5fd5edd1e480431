"""Matching networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016).

    ŷ = Σ_i a(x̂, x_i) y_i                                                  (Eq. 1)
    a(x̂, x_i) = exp(c(f(x̂), g(x_i))) / Σ_j exp(c(f(x̂), g(x_j)))            (Eq. 2)

with c the cosine similarity, y_i one-hot, and f = g the embedding; with full context
embeddings (Sec. 2.1.2, App. A) g reads the whole support set through a bidirectional LSTM and
f attends to it for K steps (:class:`~learntolearn.models.metric_networks.FullContext`). Training
maximises log ŷ of the true class on the query set (Eq. 3). ``distance="euclidean"`` is the
ablation c = −‖f − g‖², which turns the attention into a softmax over distances to every
support example (Prototypical networks average them first).

Scores are log ŷ: log Σ_{i ∈ class k} a(x̂, x_i), a log-sum-exp of Eq. 2's logits, so the
cross-entropy of the scores is exactly −log ŷ.

``scale`` multiplies the logits before the softmax: a temperature the paper does not print.
With the book's embedding (ReLU, then max-pooling) every feature is ≥ 0, so every cosine lies
in [0, 1] and, at scale 1, the softmax cannot give the true class of a 5-way 1-shot task more
than e / (e + 4) ≈ 0.40 however good the embedding: the loss has a floor and its gradients
stay small (chapter 6 measures what a scale of 10 changes). Common implementations either
scale the cosine or normalise only the support side, the query's norm acting as the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from learntolearn.methods.metric import MetricLearner, comparator, one_hot_support
from learntolearn.methods.prototypical import check_distance, negative_distance
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["Matching", "attention"]


def attention(query: Tensor, support: Tensor, distance: str) -> Tensor:
    """Eq. 2's logits c(f(x̂), g(x_i)) ``[B, Q, S]``; their softmax over S is a(x̂, x_i)."""
    return negative_distance(query, support, distance)


@dataclass(frozen=True)
class Matching(MetricLearner):
    """Attention over the support set (Eq. 1-2); ``read_steps`` > 0: full context embeddings
    with that many attention steps for the query (the network's ``comparator``)."""

    distance: str = "cosine"
    read_steps: int = 0
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_distance(self.distance)

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        """log ŷ ``[B, Q, N]``: the attention mass of each class."""
        if self.read_steps:
            support, query = comparator(self.objective, params, support, query, self.read_steps)
        logits = (self.scale * attention(query, support, self.distance)).log_softmax(-1)
        mask = one_hot_support(batch, logits.dtype).log().unsqueeze(1)  # 0 in class, −∞ not
        return torch.logsumexp(logits.unsqueeze(-1) + mask, dim=2)
