"""The inner loop shared by every gradient-based meta-learner in the book.

MAML (Finn et al., 2017, Eq. 1) adapts the initialisation θ to task T_i with gradient steps on
the support loss, θ'_i = θ − α ∇_θ L_{T_i}(f_θ). Whether the meta-gradient flows through those
steps is the difference between second-order MAML (``create_graph``: the Hessian term of
∂θ'/∂θ = I − α ∇²L is kept) and its first-order approximation (the inner gradients are treated as
constants, so ∂θ'/∂θ = I; Sec. 5.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .functional import Params

__all__ = ["inner_sgd"]


def inner_sgd(
    params: Params,
    support_loss: Callable[[Params], Tensor],
    *,
    steps: int,
    lr: float,
    first_order: bool = False,
    differentiable: bool = True,
    trace: Callable[[int, Params], None] | None = None,
) -> Params:
    """Take ``steps`` plain gradient steps θ ← θ − α ∇L_support(θ) (MAML Eq. 1).

    ``params`` may carry a task dimension; the per-task losses are summed before
    differentiating, which gives every task its own gradient because tasks share no weights.
    ``differentiable=False`` (evaluation) keeps no graph at all; ``first_order=True`` keeps the
    graph of θ' = θ − α g but treats g as a constant. ``trace(step, params)`` sees the
    parameters before the first and after every step.
    """
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    # Under torch.no_grad() nothing can be differentiated through, whatever was asked for.
    differentiable = differentiable and torch.is_grad_enabled()
    create_graph = differentiable and not first_order
    # Evaluation, or a caller that holds θ without grad (e.g. finite differences): the inner
    # loop still needs ∇_θ, so θ becomes a fresh leaf.
    params = {
        k: v if differentiable and v.requires_grad else v.detach().requires_grad_()
        for k, v in params.items()
    }
    with torch.enable_grad():
        for step in range(steps):
            if trace is not None:
                trace(step, params)
            loss = support_loss(params).sum()
            grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)
            params = {k: v - lr * g for (k, v), g in zip(params.items(), grads, strict=True)}
            if not differentiable:
                params = {k: v.detach().requires_grad_() for k, v in params.items()}
    if trace is not None:
        trace(steps, params)
    return params
