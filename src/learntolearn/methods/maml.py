"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017), Algorithm 2.

    for each task T_i of the meta-batch:
        θ'_i = θ − α ∇_θ L_{T_i}(f_θ)            (Eq. 1, on the support set; repeated n times)
    θ ← θ − β ∇_θ Σ_i L_{T_i}(f_{θ'_i})           (Eq. 2/3, on the query sets)

The meta-optimiser (Adam in the paper) applies the outer update; this module computes the
meta-objective whose gradient it follows. ``first_order=True`` is FOMAML (Sec. 5.2).
``adapted`` restricts the inner loop to some parameters: the head alone is ANIL (Raghu et al.,
ICLR 2020, Sec. 4), whose outer loop still trains every parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from learntolearn.methods.finetuning import finetune_predictions
from learntolearn.methods.inner_loop import SGD, inner_sgd
from learntolearn.objective import LossFn, Objective, Params, over_tasks
from learntolearn.tasks import TaskBatch

__all__ = ["MAML"]


@dataclass(frozen=True)
class MAML:
    """MAML's meta-objective for ``objective`` with inner step size α and ``inner_steps`` steps."""

    objective: Objective
    inner_lr: float
    inner_steps: int = 1
    first_order: bool = False
    batched: bool = True
    adapted: tuple[str, ...] | None = None  # None: all parameters (MAML); the head: ANIL

    def adapt_and_score(
        self, theta: Params, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor, loss: LossFn
    ) -> Tensor:
        """L_T(f_θ') on the query set, with θ' from Eq. 1 on the support set (the support
        inputs are the query's normalisation context when the objective is non-transductive)."""
        adapted = inner_sgd(
            theta,
            lambda p: loss(p, xs, ys),
            steps=self.inner_steps,
            lr=self.inner_lr,
            adapted=self.adapted,
            first_order=self.first_order,
        )
        return loss(adapted, xq, yq, xs)

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """The meta-objective, averaged over the tasks of the meta-batch (Eq. 2)."""
        per_task = over_tasks(
            self.adapt_and_score, self.objective, params, batch, batched=self.batched
        )
        return per_task.mean()

    def predictions(
        self, params: Params, batch: TaskBatch, *, steps: int, lr: float, modes: Sequence[str]
    ) -> dict[str, Tensor]:
        """Test time (Sec. 5): ``steps`` steps of SGD with step size ``lr`` on the support set,
        adapting what the inner loop adapts."""
        return finetune_predictions(
            self.objective,
            params,
            batch,
            steps=steps,
            rule=SGD(lr),
            adapted=self.adapted,
            modes=modes,
        )
