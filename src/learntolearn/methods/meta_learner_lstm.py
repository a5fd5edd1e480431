"""The Meta-Learner LSTM (Ravi & Larochelle, "Optimization as a model for few-shot learning",
ICLR 2017), Algorithm 1.

Gradient descent, θ_t = θ_{t−1} − α_t ∇_{θ_{t−1}} L_t, is the cell update of an LSTM,

    c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t,   with c_{t−1} = θ_{t−1}, c̃_t = −∇_{θ_{t−1}} L_t,
                                             i_t = α_t,  f_t = 1           (Sec. 3.1, Eq. 2)

so a meta-learner that *learns* the gates learns the learner's optimiser: i_t is a learned
learning rate per coordinate, f_t a learned shrinkage of the parameters, and c_0 the learner's
learned initialisation. For each training episode (Alg. 1):

    θ_0 = c_0
    for t = 1..T:  L_t, ∇_t on the support set at θ_{t−1};   θ_t = metalearner(∇_t, L_t)
    the meta-learner (and c_0) descends the query loss L(θ_T)

The gradients and losses fed to the meta-learner are treated as constants (Sec. 3.2: "we
ignore the second derivatives"), the meta-gradient still flows through θ_{t−1} → θ_t.
Batch normalisation uses the statistics of the episode being learned only (the support set
while learning, the support or query set at the end: the book's two modes), so nothing passes
between episodes (the paper's Sec. 3.3 keeps running averages for its meta-test only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from torch.func import functional_call

from learntolearn.methods.finetuning import finetune_predictions
from learntolearn.methods.inner_loop import LOSS, adapt
from learntolearn.methods.learned_optimizer import by_chunks, flatten, preprocess, unflatten
from learntolearn.models.optimizers import MetaLearnerCell
from learntolearn.objective import LossFn, Objective, Params, over_tasks
from learntolearn.tasks import TaskBatch

__all__ = ["MetaLearnerLSTM", "MetaLearnerRule", "split_params"]

LEARNER, META = "learner.", "meta_learner."


def split_params(params: Params) -> tuple[Params, Params]:
    """``(learner, meta-learner)`` parameters of a :class:`~.LearnerAndMetaLearner`."""
    learner = {k.removeprefix(LEARNER): v for k, v in params.items() if k.startswith(LEARNER)}
    meta = {k.removeprefix(META): v for k, v in params.items() if k.startswith(META)}
    if not learner or len(learner) + len(meta) != len(params):
        raise ValueError(
            f"expected parameters named {LEARNER}* and {META}*, got {sorted(params)[:4]}…"
        )
    return learner, meta


@dataclass(frozen=True, eq=False)
class MetaLearnerRule:
    """One step of the meta-learner (Alg. 1, line 7) in the update-rule seam; the state holds
    the first layer's (h, c) and the previous gates of every coordinate."""

    net: MetaLearnerCell
    weights: Params
    p: float = 10.0
    reads_loss: ClassVar[bool] = True  # the loss L_t is an input (the seam puts it in state)

    def __call__(
        self, params: Params, grads: Params, state: Params, step: int
    ) -> tuple[Params, Params]:
        names = list(grads)
        loss = state[LOSS]
        per_coordinate = {  # each task's loss, repeated for every coordinate of that task
            k: (loss.reshape(-1, *[1] * (g.dim() - 1)) if loss.dim() else loss).expand_as(g)
            for k, g in grads.items()
        }
        g, theta = flatten(grads, names), flatten(params, names)
        # the first layer's input per coordinate: the preprocessed gradient and loss
        x = torch.cat(
            [preprocess(g, self.p), preprocess(flatten(per_coordinate, names), self.p)], -1
        )
        memory = {k: v for k, v in state.items() if k != LOSS} or self.net.initial_state(
            g.numel(), g
        )
        new, memory = by_chunks(
            lambda *a: functional_call(self.net, self.weights, a),
            (x, theta, g),
            memory,
        )
        return unflatten(new, grads, names), memory


@dataclass(frozen=True)
class MetaLearnerLSTM:
    """The Meta-Learner LSTM over ``objective``, whose network is a learner and its
    meta-learner (:class:`~learntolearn.models.optimizers.LearnerAndMetaLearner`); the learner
    takes ``inner_steps`` steps of the meta-learner on each support set."""

    objective: Objective
    inner_steps: int
    batched: bool = True

    @property
    def learner(self) -> Objective:
        """The objective of the learner network alone (its parameters without the prefix)."""
        return replace(self.objective, model=self.objective.model.learner)

    def rule(self, meta: Params) -> MetaLearnerRule:
        return MetaLearnerRule(self.objective.model.meta_learner, meta)

    def loss(self, params: Params, batch: TaskBatch) -> Tensor:
        """The query loss after T steps of the meta-learner, averaged over the tasks."""
        c0, meta = split_params(params)
        rule = self.rule(meta)

        def per_task(
            theta: Params, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor, loss: LossFn
        ) -> Tensor:
            adapted = adapt(
                theta,
                lambda p, _: loss(p, xs, ys),
                steps=self.inner_steps,
                rule=rule,
                first_order=True,  # ∇_t and L_t are inputs (Sec. 3.2)
            )
            return loss(adapted, xq, yq, xs)

        return over_tasks(per_task, self.learner, c0, batch, batched=self.batched).mean()

    def predictions(
        self, params: Params, batch: TaskBatch, *, steps: int, lr: float, modes: Sequence[str]
    ) -> dict[str, Tensor]:
        """Test time (Alg. 1, meta-test): ``steps`` steps of the trained meta-learner from c_0
        on each support set; ``lr`` does not apply (the meta-learner sets its own)."""
        c0, meta = split_params(params)
        return finetune_predictions(
            self.learner, c0, batch, steps=steps, rule=self.rule(meta), modes=modes
        )
