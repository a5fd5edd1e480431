"""Joint training on all tasks: the "pretrained" baseline of MAML (Finn et al. 2017, Sec. 5.1).

One network is fitted to the union of the tasks' data, min_θ Σ_i L_{T_i}(f_θ), with no inner
loop; at test time it is fine-tuned by gradient descent on the new task's K points. It optimises
*current performance* on the tasks, where MAML optimises the performance *after* adaptation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from learntolearn.methods.finetuning import finetune_predictions
from learntolearn.methods.inner_loop import SGD
from learntolearn.objective import LossFn, Objective, Params, over_tasks
from learntolearn.tasks import TaskBatch

__all__ = ["JointTraining"]


@dataclass(frozen=True)
class JointTraining:
    objective: Objective
    batched: bool = True

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """Mean over tasks of the loss on all of a task's points, support and query alike."""
        ns, nq = batch.x_support.shape[1], batch.x_query.shape[1]

        def all_points(
            theta: Params, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor, loss: LossFn
        ) -> Tensor:
            return (ns * loss(theta, xs, ys) + nq * loss(theta, xq, yq)) / (ns + nq)

        return over_tasks(all_points, self.objective, params, batch, batched=self.batched).mean()

    def predictions(
        self, params: Params, batch: TaskBatch, *, steps: int, lr: float, modes: Sequence[str]
    ) -> dict[str, Tensor]:
        """Test time (Sec. 5.1): fine-tune every parameter with ``steps`` steps of SGD."""
        return finetune_predictions(
            self.objective, params, batch, steps=steps, rule=SGD(lr), modes=modes
        )
