"""What a trained Meta-Learner LSTM does (Ravi & Larochelle 2017, Sec. 3.1): the values of its
input gate i_t (the learned learning rate) and forget gate f_t (the learned shrinkage of θ) at
every inner step, averaged over the coordinates of each parameter tensor of the learner and
over tasks. Gradient descent would show i_t = α and f_t = 1 throughout."""

from __future__ import annotations

import torch

from learntolearn.methods.inner_loop import adapt
from learntolearn.methods.learned_optimizer import unflatten
from learntolearn.methods.meta_learner_lstm import MetaLearnerLSTM, split_params
from learntolearn.objective import Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["gate_values"]


def gate_values(
    method: MetaLearnerLSTM, params: Params, batch: TaskBatch
) -> dict[str, dict[str, list[float]]]:
    """``{"input": {name: [mean i_t for t = 1..T]}, "forget": {...}}`` per learner parameter."""
    c0, meta = split_params({k: v.detach() for k, v in params.items()})
    rule = method.rule(meta)
    seen: dict[str, dict[str, list[float]]] = {"input": {}, "forget": {}}

    def recording(p: Params, g: Params, state: Params, step: int) -> tuple[Params, Params]:
        new, state = rule(p, g, state, step)
        for gate, key in (("input", "i"), ("forget", "f")):
            for name, v in unflatten(state[key], g, list(g)).items():
                seen[gate].setdefault(name, []).append(float(v.detach().double().mean()))
        return new, state

    recording.reads_loss = True  # type: ignore[attr-defined]
    learner = method.learner
    with torch.no_grad():
        adapt(
            expand_params(c0, batch.num_tasks),
            lambda p, _: learner.batched(p, batch.x_support, batch.y_support),
            steps=method.inner_steps,
            rule=recording,
            differentiable=False,
        )
    return seen
