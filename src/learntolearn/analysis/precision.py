"""How precise a float32 meta-gradient is, and why: rounding against conditioning.

MAML's meta-gradient differentiates through the inner steps θ_{k+1} = θ_k − α∇L_s(θ_k)
(Finn et al. 2017, Eq. 1), so it carries the product Π_k (I − α∇²L_s(θ_k)) (chapter 2). A
factor with an eigenvalue of α∇²L_s beyond 2 (gradient descent past its stability limit on that
direction) has |1 − αλ| > 1: after a few steps, tiny differences in θ are amplified, and so is
float32 rounding. This module separates the two causes:

* :func:`float32_error`: ‖g₃₂ − g₆₄‖ / ‖g₆₄‖, the float32 meta-gradient against the float64 one
  at the same (float32-representable) parameters;
* :func:`sensitivity`: the same ratio for the float64 meta-gradient at θ and at θ perturbed by a
  relative ``eps`` (float32 rounds θ by about 6e-8 relative): how much of the error the function
  itself would produce in exact arithmetic;
* :func:`task_noise`: the same ratio between the meta-gradients of two independent meta-batches,
  the yardstick: the outer loop follows a stochastic gradient whose noise is this large;
* :func:`curvature`: α·|λ|max of each task's support-loss Hessian at θ (power iteration on
  Hessian-vector products, float64), the stability number of the first inner step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from learntolearn.methods.maml import MAML
from learntolearn.objective import Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = [
    "curvature",
    "float32_error",
    "meta_gradients",
    "relative_error",
    "sensitivity",
    "task_noise",
]


def relative_error(a: list[Tensor], b: list[Tensor]) -> float:
    """‖a − b‖ / ‖b‖ over all tensors together, in float64."""
    diff = sum(((x.double() - y.double()) ** 2).sum() for x, y in zip(a, b, strict=True))
    return float(torch.sqrt(diff / sum((y.double() ** 2).sum() for y in b)))


def meta_gradients(
    maml: MAML, params: Params, batch: TaskBatch, dtype: torch.dtype
) -> list[list[Tensor]]:
    """∇θ of ``maml``'s meta-objective on each task of ``batch`` alone, computed in ``dtype``
    throughout (the meta-batch's meta-gradient is their mean)."""
    theta = {k: v.detach().to(dtype).requires_grad_() for k, v in params.items()}
    b = batch.to(batch.device, dtype)
    return [
        list(torch.autograd.grad(maml.loss(theta, b[i : i + 1]), list(theta.values())))
        for i in range(batch.num_tasks)
    ]


def _mean(grads: list[list[Tensor]]) -> list[Tensor]:
    return [torch.stack(t).double().mean(0) for t in zip(*grads, strict=True)]


def _errors(a: list[list[Tensor]], b: list[list[Tensor]]) -> tuple[float, list[float]]:
    """The relative error of the meta-batch's mean gradient, and of every task's."""
    per_task = [relative_error(x, y) for x, y in zip(a, b, strict=True)]
    return relative_error(_mean(a), _mean(b)), per_task


def float32_error(maml: MAML, params: Params, batch: TaskBatch) -> tuple[float, list[float]]:
    """‖g₃₂ − g₆₄‖ / ‖g₆₄‖ at the float32 parameters ``params``: for the meta-batch's
    meta-gradient, and for each task's."""
    theta = {k: v.detach().float() for k, v in params.items()}
    return _errors(
        meta_gradients(maml, theta, batch, torch.float32),
        meta_gradients(maml, theta, batch, torch.float64),
    )


def sensitivity(
    maml: MAML, params: Params, batch: TaskBatch, eps: float, gen: torch.Generator
) -> tuple[float, list[float]]:
    """‖g₆₄(θ ⊙ (1 + eps·z)) − g₆₄(θ)‖ / ‖g₆₄(θ)‖ for one z ~ N(0, I) from ``gen``: for the
    meta-batch's meta-gradient, and for each task's."""
    theta = {k: v.detach().double() for k, v in params.items()}
    moved = {
        k: v * (1 + eps * torch.randn(v.shape, generator=gen, dtype=v.dtype, device=v.device))
        for k, v in theta.items()
    }
    return _errors(
        meta_gradients(maml, moved, batch, torch.float64),
        meta_gradients(maml, theta, batch, torch.float64),
    )


def task_noise(maml: MAML, params: Params, batch: TaskBatch, other: TaskBatch) -> float:
    """‖g₆₄(other) − g₆₄(batch)‖ / ‖g₆₄(batch)‖: how far the meta-gradient of another meta-batch
    of the same size is, the sampling noise every training step carries anyway."""
    return relative_error(
        _mean(meta_gradients(maml, params, other, torch.float64)),
        _mean(meta_gradients(maml, params, batch, torch.float64)),
    )


def curvature(
    maml: MAML, params: Params, batch: TaskBatch, gen: torch.Generator, iterations: int = 30
) -> list[float]:
    """α·|λ|max of every task's support-loss Hessian at ``params`` (float64 power iteration)."""
    out = []
    b64 = batch.to(batch.device, torch.float64)
    for i in range(batch.num_tasks):
        task = b64[i : i + 1]
        theta = {k: v.detach().double().requires_grad_() for k, v in params.items()}
        loss = maml.objective.batched(expand_params(theta, 1), task.x_support, task.y_support)
        grads = torch.autograd.grad(loss.sum(), list(theta.values()), create_graph=True)
        v = [torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device) for g in grads]
        lam = 0.0
        for _ in range(iterations):
            norm = torch.sqrt(sum((x * x).sum() for x in v))
            v = [x / norm for x in v]
            hv = torch.autograd.grad(grads, list(theta.values()), v, retain_graph=True)
            lam = float(sum((h * x).sum() for h, x in zip(hv, v, strict=True)))
            v = [h.detach() for h in hv]
        out.append(abs(lam) * maml.inner_lr)
    return out
