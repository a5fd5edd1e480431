"""Test-time adaptation by fine-tuning, shared by every gradient-based method of the book.

The protocol of MAML (Finn et al. 2017, Sec. 5.1 and Fig. 3): start from the learned
initialisation, take 0, 1, …, n gradient steps on each test task's support set and predict the
query set after each step. Pretraining, MAML, first-order MAML and ANIL (head only) use plain
SGD, Reptile its inner Adam; each method's ``predictions`` calls :func:`finetune_predictions`
with its own rule and the parameters it adapts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import Tensor

from learntolearn.methods.inner_loop import UpdateRule, adapt
from learntolearn.objective import Objective, Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["finetune_predictions"]


def finetune_predictions(
    objective: Objective,
    params: Params,
    batch: TaskBatch,
    *,
    steps: int,
    rule: UpdateRule,
    adapted: Collection[str] | None = None,
    modes: Sequence[str] = ("transductive",),
) -> dict[str, Tensor]:
    """Query predictions after 0..``steps`` steps of ``rule`` on each task's support set.

    Returns, for each batch-norm mode of ``modes`` (see :meth:`Objective.in_mode`), a tensor
    ``[steps+1, B, Q, ...]``. Both modes adapt on the support set alone, normalised by its own
    statistics, so they share one trajectory; only the query predictions differ. ``adapted``
    names the parameters that adapt (ANIL's head, or a frozen body; None: all).
    """
    objectives = {m: objective.in_mode(m) for m in modes}
    out: dict[str, list[Tensor]] = {m: [] for m in modes}

    def record(_: int, p: Params) -> None:
        with torch.no_grad():
            for m, o in objectives.items():
                out[m].append(o.predict(p, batch.x_query, batch.x_support))

    theta = expand_params({k: v.detach() for k, v in params.items()}, batch.num_tasks)
    adapt(
        theta,
        lambda p, _: objective.batched(p, batch.x_support, batch.y_support),
        steps=steps,
        rule=rule,
        adapted=adapted,
        differentiable=False,
        trace=record,
    )
    return {m: torch.stack(v) for m, v in out.items()}
