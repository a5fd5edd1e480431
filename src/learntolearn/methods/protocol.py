"""What every method of the book offers: a training objective and its own test-time adaptation.

Training minimises :meth:`Method.loss` over meta-batches (MAML's meta-objective, Reptile's
surrogate, a metric learner's episode loss); evaluation calls :meth:`Method.predictions` on the
fixed test tasks. Gradient-based methods fine-tune (:mod:`learntolearn.methods.finetuning`), a
metric-based method classifies the query from the support set in one pass (one step), a learned
optimizer applies its own update. Evaluation and the analyses go through this contract alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import Tensor

from learntolearn.objective import Objective, Params
from learntolearn.tasks import TaskBatch

__all__ = ["Method"]


class Method(Protocol):
    """A meta-learning method over ``objective``'s network and loss."""

    objective: Objective

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """The training objective on a meta-batch (a scalar)."""
        ...

    def predictions(
        self, params: Params, batch: TaskBatch, *, steps: int, lr: float, modes: Sequence[str]
    ) -> dict[str, Tensor]:
        """Query predictions ``[S, B, Q, ...]`` per batch-norm mode of ``modes``, after each
        recorded adaptation step (S = steps + 1 for fine-tuning; 1 for a method without
        steps); ``lr`` is the test protocol's step size, for methods that take steps."""
        ...
