"""What the metric-based methods share: embed a task's support and query sets with one set of
parameters, compare every query with the support set, and classify in one pass.

There is no inner loop: the meta-learned parameters are the embedding (and, for some methods,
the comparison itself), and "adapting" to a task is computing its support embeddings. Each
method supplies :meth:`MetricLearner.compare`, one score per query and class (logits, log
probabilities or relation scores: the largest wins), and, where its paper trains with another
loss than the cross-entropy of those scores, its own :meth:`~MetricLearner.loss`.

Batch normalisation follows the book's two modes (see ``Objective.in_mode``): the support set
is always normalised by its own statistics; the query set by its own (``transductive``, as in
the Prototypical and Relation networks' code) or by the support set's (``non-transductive``:
a query's prediction then depends on that query and the support set alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from learntolearn.objective import Objective, Params
from learntolearn.tasks import TaskBatch

__all__ = [
    "MetricLearner",
    "comparator",
    "embed",
    "embed_query",
    "embed_support",
    "num_classes",
    "one_hot_support",
]


def embed_support(objective: Objective, params: Params, batch: TaskBatch) -> Tensor:
    """The support embeddings ``[B, S, ...]`` of every task (shared parameters), each support
    set normalised by its own statistics."""
    single = objective.predict_single
    return vmap(lambda x: single(params, x), randomness="error")(batch.x_support)


def embed_query(objective: Objective, params: Params, batch: TaskBatch, mode: str) -> Tensor:
    """The query embeddings ``[B, Q, ...]``, normalised as batch-norm ``mode`` says."""
    single = objective.in_mode(mode).predict_single
    if mode == "transductive":
        return vmap(lambda x: single(params, x), randomness="error")(batch.x_query)
    return vmap(lambda x, s: single(params, x, s), randomness="error")(
        batch.x_query, batch.x_support
    )


def embed(
    objective: Objective, params: Params, batch: TaskBatch, mode: str
) -> tuple[Tensor, Tensor]:
    """Both sets' embeddings ``(support, query)``."""
    return embed_support(objective, params, batch), embed_query(objective, params, batch, mode)


def comparator(objective: Objective, params: Params, *args: Any) -> Any:
    """Call the network's learned comparison (``model.comparator``) with its parameters."""
    own = {
        k.removeprefix("comparator."): v for k, v in params.items() if k.startswith("comparator.")
    }
    return functional_call(objective.model.comparator, own, args)


def num_classes(batch: TaskBatch) -> int:
    """N of the batch's N-way tasks (labels are 0..N−1)."""
    if "classes" in batch.info:
        return batch.info["classes"].shape[1]
    return int(batch.y_support.max()) + 1


def one_hot_support(batch: TaskBatch, dtype: torch.dtype) -> Tensor:
    """``[B, S, N]``: which class each support example belongs to."""
    return torch.nn.functional.one_hot(batch.y_support, num_classes(batch)).to(dtype)


@dataclass(frozen=True)
class MetricLearner:
    """A metric-based method over ``objective``'s embedding; subclasses define ``compare``."""

    objective: Objective

    @property
    def mode(self) -> str:
        """The batch-norm mode of training (the objective's)."""
        return "transductive" if self.objective.transductive else "non-transductive"

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        """``[B, Q, N]``: how strongly each query belongs to each class, from the embeddings
        (``mode``: the batch-norm mode, for a comparison that normalises)."""
        raise NotImplementedError

    def scores(self, params: Params, batch: TaskBatch, mode: str) -> Tensor:
        """:meth:`compare` on the batch's embeddings."""
        support, query = embed(self.objective, params, batch, mode)
        return self.compare(params, batch, support, query, mode)

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """The episode loss: cross-entropy of the scores on the query set, averaged over tasks."""
        scores = self.scores(params, batch, self.mode)
        return vmap(self.objective.loss)(scores, batch.y_query).mean()

    def predictions(
        self, params: Params, batch: TaskBatch, *, steps: int, lr: float, modes: Sequence[str]
    ) -> dict[str, Tensor]:
        """One pass, no adaptation steps: ``[1, B, Q, N]`` scores per batch-norm mode (the
        support set, normalised alike in both modes, is embedded once)."""
        o = self.objective
        with torch.no_grad():
            support = embed_support(o, params, batch)
            return {
                m: self.compare(params, batch, support, embed_query(o, params, batch, m), m)[None]
                for m in modes
            }
