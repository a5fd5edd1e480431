"""What the black-box methods share: the learner is a sequence model, and learning a task is
its forward pass over the task's examples.

A task's support set becomes a sequence of labelled examples; the network reads it and then
answers a query (Santoro et al. 2016, Sec. 2; Mishra et al. 2018, Sec. 3). Nothing is
fine-tuned: the meta-learned parameters are the embedding and the sequence model's weights,
and whatever "learning" happens on a task lives in the sequence model's state (an LSTM's
cells, MANN's memory, SNAIL's attention over the past). Each step's input is an example's
embedding f(x_t) concatenated with a one-hot label:

* ``label_delay = 1`` (Santoro et al., Sec. 3.1): the label of the *previous* example,
  (f(x_t), y_{t−1}), so the network predicts every y_t before it is shown: an online
  prediction at every support step, and the loss sums over all of them;
* ``label_delay = 0`` (Mishra et al., Sec. 4.1): each support example with its own label, and
  the query with a zero label; only the query is predicted.

Every query continues the support sequence on its own: one query's prediction depends on the
support set and that query alone (a query never sees another query). The support examples are
read in a per-task order drawn from the images themselves (:func:`presentation_order`), not
the class-major order the sampler stores them in, so the position of an example says nothing
about its label. The embedding is the book's conv4-64 (chapter 6), normalised in either
batch-norm mode as for the metric-based methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learntolearn.methods.metric import (
    MetricLearner,
    comparator,
    embed,
    embed_support,
    num_classes,
)
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = [
    "BlackBox",
    "SequenceCore",
    "SequenceInputs",
    "check_episode",
    "presentation_order",
]


class SequenceCore(nn.Module):
    """A causal sequence model (the network's ``comparator``): :meth:`read` maps steps
    ``[B, T, inputs]`` to logits ``[B, T, n_way]``, output ``t`` depending on inputs ``0..t``
    only. ``length`` is the longest sequence (support + one query) it is built for; ``n_way``
    the classes it can name. Called with ``queries``, it answers them (:meth:`answer`)."""

    def __init__(self, inputs: int, n_way: int, length: int) -> None:
        super().__init__()
        self.inputs, self.n_way, self.length = inputs, n_way, length

    def forward(self, steps: Tensor, queries: Tensor | None = None, online: bool = False) -> Any:
        """:meth:`read` (no ``queries``), :meth:`answer`, or with ``online`` both, as
        ``(read, answer)`` (:meth:`read_and_answer`)."""
        if queries is None:
            return self.read(steps)
        return self.read_and_answer(steps, queries) if online else self.answer(steps, queries)

    def read_and_answer(self, support: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
        """``(read(support), answer(support, queries))``; a recurrent core reads the support
        sequence once for both."""
        return self.read(support), self.answer(support, queries)

    def read(self, steps: Tensor) -> Tensor:
        """Logits ``[B, T, N]`` of every step of ``steps [B, T, D]``."""
        raise NotImplementedError

    def answer(self, support: Tensor, queries: Tensor) -> Tensor:
        """Logits ``[B, Q, N]``: each of the ``Q`` query steps ``[B, Q, D]`` read right after
        the support sequence ``[B, S, D]``, each on its own (here by reading S + 1 steps per
        query; a recurrent core reads the support once and continues from its state)."""
        b, s, d = support.shape
        q = queries.shape[1]
        whole = torch.cat([support.unsqueeze(1).expand(b, q, s, d), queries.unsqueeze(2)], 2)
        return self.read(whole.flatten(0, 1))[:, -1].view(b, q, -1)


def presentation_order(x_support: Tensor) -> Tensor:
    """``[B, S]``: the order in which each task's support examples are read, the ranks of a
    hash of their pixels, (Σᵢ aᵢ vᵢ) mod p for 8-bit pixel values vᵢ, fixed random integers aᵢ
    and the prime p = 2³¹ − 1. Unlike a smooth function of the pixels, the hash puts similar
    images (often of one class) at unrelated ranks, so the order is random with respect to the
    classes and to the labels (which the sampler assigns at random); it is the same for the same
    images on every call, on every device and in every precision, and needs no random generator
    (training and evaluation stay deterministic)."""
    pixels = (x_support.flatten(2) * 255).round().long()
    g = torch.Generator().manual_seed(0)
    weights = torch.randint(0, _PRIME, (pixels.shape[-1],), generator=g).to(pixels.device)
    return torch.argsort((pixels * weights).sum(-1) % _PRIME, dim=1, stable=True)


_PRIME = 2**31 - 1


def check_episode(batch: TaskBatch, core: SequenceCore) -> None:
    """Refuse, before any work, an episode the sequence model cannot read: more steps than it
    was built for, a label it cannot name, or a class the support sequence never shows."""
    steps = batch.y_support.shape[1] + 1
    if steps > core.length:
        raise ValueError(
            f"the episode has {steps} steps (support + query) but the network was built for "
            f"{core.length}: train a model for this many shots, or evaluate with fewer"
        )
    labels = torch.cat([batch.y_support, batch.y_query], 1)
    if labels.min() < 0 or labels.max() >= core.n_way:
        raise ValueError(
            f"labels must lie in 0..{core.n_way - 1} for this {core.n_way}-way network, got "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    n = num_classes(batch)
    if n != core.n_way:
        raise ValueError(
            f"the tasks are {n}-way but the network names {core.n_way} classes: train a model "
            "for this number of classes"
        )
    seen = F.one_hot(batch.y_support, n).amax(1)  # [B, N]
    if not bool(seen.all()):
        task, cls = (int(i) for i in (seen == 0).nonzero()[0])
        raise ValueError(
            f"task {task}'s support sequence shows no example of class {cls}: every class a "
            "query may belong to must appear in the support set"
        )


@dataclass(frozen=True)
class SequenceInputs:
    """One batch of tasks as the sequence model reads it: ``support [B, S, F + N]`` in
    presentation order, its labels ``[B, S]`` in that order, and each query's step
    ``queries [B, Q, F + N]``."""

    support: Tensor
    labels: Tensor
    queries: Tensor


@dataclass(frozen=True)
class BlackBox(MetricLearner):
    """A sequence model that reads the support set and answers the queries; ``label_delay``:
    1 shows each label one step late (Santoro et al.), 0 with its example (Mishra et al.)."""

    label_delay: int = 1

    def core(self) -> SequenceCore:
        core = self.objective.model.comparator
        assert isinstance(core, SequenceCore)
        return core

    def sequence(self, batch: TaskBatch, support: Tensor, query: Tensor) -> SequenceInputs:
        """The steps' inputs from the embeddings ``support [B, S, F]`` and ``query [B, Q, F]``."""
        n = self.core().n_way
        order = presentation_order(batch.x_support)
        support = support.gather(1, order.unsqueeze(-1).expand_as(support))
        labels = batch.y_support.gather(1, order)
        shown = F.one_hot(labels, n).to(support.dtype)
        b, q = query.shape[:2]
        if self.label_delay:  # step t shows y_{t−1}; a query step shows the last support label
            shown = torch.cat([torch.zeros_like(shown[:, :1]), shown], 1)
            last = shown[:, -1:].expand(b, q, n)
            shown = shown[:, :-1]
        else:
            last = shown.new_zeros(b, q, n)
        return SequenceInputs(torch.cat([support, shown], -1), labels, torch.cat([query, last], -1))

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        """Logits ``[B, Q, N]`` of every query, each read after the support sequence alone."""
        check_episode(batch, self.core())
        steps = self.sequence(batch, support, query)
        return comparator(self.objective, params, steps.support, steps.queries)

    def online(self, params: Params, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """``(logits [B, S, N], labels [B, S])``: the prediction at every support step, made
        before that step's label is shown (``label_delay = 1``), in presentation order."""
        if not self.label_delay:
            raise ValueError("online predictions need label_delay = 1 (the label shown late)")
        check_episode(batch, self.core())
        support = embed_support(self.objective, params, batch)
        steps = self.sequence(batch, support, support[:, :1])
        return comparator(self.objective, params, steps.support), steps.labels

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """Cross-entropy of the query answers and, with ``label_delay = 1``, of every online
        support prediction (Santoro et al., Sec. 3.1), averaged over all predicted steps."""
        if not self.label_delay:
            return super().loss(params, batch)
        check_episode(batch, self.core())
        steps = self.sequence(batch, *embed(self.objective, params, batch, self.mode))
        online, answers = comparator(self.objective, params, steps.support, steps.queries, True)
        logits = torch.cat([online.flatten(0, 1), answers.flatten(0, 1)])
        labels = torch.cat([steps.labels.flatten(), batch.y_query.flatten()])
        return F.cross_entropy(logits, labels)
