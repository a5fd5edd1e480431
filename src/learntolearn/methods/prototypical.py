"""Prototypical networks (Snell, Swersky & Zemel, NeurIPS 2017), Sec. 2.2 and Algorithm 1.

    c_k = (1 / |S_k|) Σ_{(x_i, y_i) ∈ S_k} f_φ(x_i)                        (Eq. 1)
    p_φ(y = k | x) = exp(−d(f_φ(x), c_k)) / Σ_k' exp(−d(f_φ(x), c_k'))    (Eq. 2)
    J(φ) = −log p_φ(y = k | x) on the query set                           (Algorithm 1)

with d the squared Euclidean distance (Sec. 2.6; Fig. 2: better than cosine on miniImageNet);
``distance="cosine"`` is that comparison, the negative cosine similarity as d, and
``"one-sided-cosine"`` divides by the centre's norm only, f·c/‖c‖: the cosine scaled by the
query's norm, a temperature the network learns for each query (the cosine of most public
Matching-network code). Training episodes may have more classes than the test tasks (60-way
for Omniglot, Sec. 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from learntolearn.methods.metric import MetricLearner, one_hot_support
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["DISTANCES", "Prototypical", "check_distance", "negative_distance", "prototypes"]

DISTANCES = ("euclidean", "cosine", "one-sided-cosine")


def check_distance(distance: str) -> None:
    """Refuse a distance that :func:`negative_distance` does not know."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def prototypes(support: Tensor, one_hot: Tensor) -> Tensor:
    """Eq. 1: ``[B, N, F]`` class means of the support embeddings ``[B, S, F]``."""
    return one_hot.transpose(1, 2) @ support / one_hot.sum(1).unsqueeze(-1)


def negative_distance(query: Tensor, centres: Tensor, distance: str) -> Tensor:
    """−d(query, centre) ``[B, Q, N]``: squared Euclidean, cosine, or one-sided cosine."""
    if distance in ("cosine", "one-sided-cosine"):
        q = torch.nn.functional.normalize(query, dim=-1) if distance == "cosine" else query
        c = torch.nn.functional.normalize(centres, dim=-1)
        return q @ c.transpose(1, 2)
    return -(query.unsqueeze(2) - centres.unsqueeze(1)).pow(2).sum(-1)


@dataclass(frozen=True)
class Prototypical(MetricLearner):
    """Softmax over negative distances to the class prototypes (Eq. 2)."""

    distance: str = "euclidean"

    def __post_init__(self) -> None:
        check_distance(self.distance)

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        """Logits −d(f_φ(x), c_k) of every query and class."""
        centres = prototypes(support, one_hot_support(batch, support.dtype))
        return negative_distance(query, centres, self.distance)
