"""The inner loop shared by every gradient-based meta-learner in the book.

MAML (Finn et al., 2017, Eq. 1) adapts the initialisation θ to task T_i with gradient steps on
the support loss, θ'_i = θ − α ∇_θ L_{T_i}(f_θ). Whether the meta-gradient flows through those
steps is the difference between second-order MAML (``create_graph``: the Hessian term of
∂θ'/∂θ = I − α ∇²L is kept) and its first-order approximation (the inner gradients are treated as
constants, so ∂θ'/∂θ = I; Sec. 5.2). Reptile (Nichol et al., 2018, Alg. 1) runs the same loop
with Adam and a different minibatch at each step; ANIL (Raghu et al., 2020) adapts the head only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch
from torch import Tensor

from learntolearn.objective import Params

__all__ = ["LOSS", "NAG", "SGD", "Adam", "RMSprop", "UpdateRule", "adapt", "inner_sgd"]

UpdateRule = Callable[[Params, Params, Params, int], tuple[Params, Params]]
"""``rule(params, grads, state, step) → (new params, new state)``; ``grads`` and the result
hold only the adapted parameters, and ``state`` starts empty for every task. A rule with the
attribute ``reads_loss = True`` also finds the losses of the step (one per task, constants)
in ``state[LOSS]`` (the Meta-Learner LSTM's input, Ravi & Larochelle 2017, Sec. 3.2)."""

LOSS = "@loss"  # the key of the step's losses in a rule's state (never a parameter's name)


@dataclass(frozen=True)
class SGD:
    """Plain gradient descent, θ ← θ − α g (MAML Eq. 1)."""

    lr: float

    def __call__(self, params: Params, grads: Params, state: Params, step: int):
        return {k: params[k] - self.lr * g for k, g in grads.items()}, state


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015, Alg. 1): θ ← θ − α m̂ / (√v̂ + ε), with m and v the running means
    of g and g² and m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t).

    ``beta1=0`` (the default) is the inner optimiser of Reptile's few-shot experiments (Nichol
    et al. 2018, App. A). Its state starts from zero for every task, so a task's adaptation
    depends on θ and the task alone (the reference code keeps v across tasks; resetting it is
    what lets tasks run batched).
    """

    lr: float
    beta2: float = 0.999
    eps: float = 1e-8
    beta1: float = 0.0

    def __call__(self, params: Params, grads: Params, state: Params, step: int):
        v = {k: self.beta2 * state.get(k, 0) + (1 - self.beta2) * g * g for k, g in grads.items()}
        correction = 1 - self.beta2 ** (step + 1)
        if self.beta1 == 0:  # Reptile's: g itself, bit for bit
            m, direction = {}, grads
        else:
            m = {
                k: self.beta1 * state.get(f"m/{k}", 0) + (1 - self.beta1) * g
                for k, g in grads.items()
            }
            first = 1 - self.beta1 ** (step + 1)
            direction = {k: m[k] / first for k in m}
        new = {
            k: params[k] - self.lr * direction[k] / ((v[k] / correction).sqrt() + self.eps)
            for k in grads
        }
        return new, {**v, **{f"m/{k}": m[k] for k in m}}


@dataclass(frozen=True)
class NAG:
    """Nesterov's accelerated gradient in the form of Sutskever et al. (2013) as PyTorch writes
    it: b ← μ b + g, θ ← θ − α (g + μ b)."""

    lr: float
    momentum: float = 0.9

    def __call__(self, params: Params, grads: Params, state: Params, step: int):
        b = {k: self.momentum * state[k] + g if k in state else g for k, g in grads.items()}
        return {k: params[k] - self.lr * (g + self.momentum * b[k]) for k, g in grads.items()}, b


@dataclass(frozen=True)
class RMSprop:
    """RMSprop (Tieleman & Hinton 2012): v ← ρ v + (1 − ρ) g², θ ← θ − α g / (√v + ε)."""

    lr: float
    rho: float = 0.99
    eps: float = 1e-8

    def __call__(self, params: Params, grads: Params, state: Params, step: int):
        v = {k: self.rho * state.get(k, 0) + (1 - self.rho) * g * g for k, g in grads.items()}
        return {k: params[k] - self.lr * g / (v[k].sqrt() + self.eps) for k, g in grads.items()}, v


def adapt(
    params: Params,
    loss: Callable[[Params, int], Tensor],
    *,
    steps: int,
    rule: UpdateRule,
    adapted: Collection[str] | None = None,
    first_order: bool = False,
    differentiable: bool = True,
    trace: Callable[[int, Params], None] | None = None,
) -> Params:
    """Take ``steps`` steps of ``rule`` on ``loss(params, step)``; returns the adapted params.

    ``params`` may carry a task dimension; the per-task losses are summed before
    differentiating, which gives every task its own gradient because tasks share no weights.
    ``adapted`` names the parameters that adapt (ANIL: the head; None: all); the rest stay.
    ``differentiable=False`` (evaluation, Reptile) keeps no graph at all; ``first_order=True``
    keeps the graph of θ' = θ − α g but treats g as a constant. ``trace(step, params)`` sees the
    parameters before the first and after every step.
    """
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    names = list(params) if adapted is None else [k for k in params if k in adapted]
    if adapted is not None and len(names) != len(set(adapted)):
        raise ValueError(
            f"adapted={sorted(adapted)} names parameters the model lacks: {list(params)}"
        )
    # Under torch.no_grad() nothing can be differentiated through, whatever was asked for.
    differentiable = differentiable and torch.is_grad_enabled()
    create_graph = differentiable and not first_order
    # Evaluation, or a caller that holds θ without grad (e.g. finite differences): the inner
    # loop still needs ∇_θ, so θ becomes a fresh leaf.
    params = {
        k: v if differentiable and v.requires_grad else v.detach().requires_grad_()
        for k, v in params.items()
    }
    state: Params = {}
    with torch.enable_grad():
        for step in range(steps):
            if trace is not None:
                trace(step, params)
            per_task = loss(params, step)
            grads = torch.autograd.grad(
                per_task.sum(), [params[k] for k in names], create_graph=create_graph
            )
            if getattr(rule, "reads_loss", False):
                state = {**state, LOSS: per_task.detach()}
            new, state = rule(params, dict(zip(names, grads, strict=True)), state, step)
            if not differentiable:
                new = {k: v.detach().requires_grad_() for k, v in new.items()}
                state = {k: v.detach() for k, v in state.items()}
            params = {**params, **new}
    if trace is not None:
        trace(steps, params)
    return params


def inner_sgd(
    params: Params,
    support_loss: Callable[[Params], Tensor],
    *,
    steps: int,
    lr: float,
    adapted: Collection[str] | None = None,
    first_order: bool = False,
    differentiable: bool = True,
    trace: Callable[[int, Params], None] | None = None,
) -> Params:
    """MAML's inner loop (Eq. 1): ``steps`` steps θ ← θ − α ∇L_support(θ) on one loss."""
    return adapt(
        params,
        lambda p, _: support_loss(p),
        steps=steps,
        rule=SGD(lr),
        adapted=adapted,
        first_order=first_order,
        differentiable=differentiable,
        trace=trace,
    )
