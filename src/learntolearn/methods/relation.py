"""Relation networks (Sung, Yang, Zhang, Xiang, Torr & Hospedales, CVPR 2018), Sec. 3.

    r_{i,j} = g_φ(C(f_φ(x_i), f_φ(x_j)))                                   (Eq. 1)
    φ, ϕ ← argmin Σ_i Σ_j (r_{i,j} − 1(y_i == y_j))²                        (Eq. 2)

f_φ embeds each image as a feature map
(:class:`~learntolearn.models.metric_networks.RelationEncoder`), C concatenates a class's map
with a query's along the channels, and the relation module g_φ
(:class:`~learntolearn.models.metric_networks.RelationModule`, the network's ``comparator``)
scores the pair in (0, 1); training regresses the scores onto the one-hot labels with a mean squared
error (Sec. 3.2: the score is a similarity, not a class probability). For K > 1 shots a class's
map is the element-wise sum of its K support maps (Sec. 3.2).

The relation module's batch normalisation sees a task's pairs: all of them together in the
transductive mode (the authors' code), or one query's N pairs at a time in the
non-transductive one, so that a query's scores depend on it and the support set alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import vmap

from learntolearn.methods.metric import MetricLearner, comparator, one_hot_support
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["Relation", "pairs"]


def pairs(class_maps: Tensor, query_maps: Tensor) -> Tensor:
    """C(f(x_i), f(x_j)): ``[B, Q, N, 2C, h, w]`` from class maps ``[B, N, C, h, w]`` and query
    maps ``[B, Q, C, h, w]`` (the class's map first, as in the authors' code)."""
    b, n = class_maps.shape[:2]
    q = query_maps.shape[1]
    left = class_maps.unsqueeze(1).expand(b, q, *class_maps.shape[1:])
    right = query_maps.unsqueeze(2).expand(b, q, n, *query_maps.shape[2:])
    return torch.cat([left, right], dim=3)


@dataclass(frozen=True)
class Relation(MetricLearner):
    """Learned relation scores between each query and each class (Eq. 1), trained by Eq. 2."""

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        """Relation scores r ``[B, Q, N]`` in (0, 1)."""
        one_hot = one_hot_support(batch, support.dtype)
        class_maps = torch.einsum("bsn,bs...->bn...", one_hot, support)  # Sec. 3.2: the sum
        both = pairs(class_maps, query)

        def relate(p: Tensor) -> Tensor:  # [..., 2C, h, w] -> [...], one batch-norm group
            return comparator(self.objective, params, p.flatten(0, -4)).view(p.shape[:-3])

        per_query = vmap(relate) if mode == "non-transductive" else relate
        return vmap(per_query, randomness="error")(both)

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """Eq. 2: the mean squared error of the scores against the one-hot query labels."""
        r = self.scores(params, batch, self.mode)
        target = torch.nn.functional.one_hot(batch.y_query, r.shape[-1]).to(r.dtype)
        return (r - target).pow(2).mean()
