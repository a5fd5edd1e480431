"""What pretraining, first-order MAML, MAML and Reptile follow: Nichol et al. (2018, Sec. 5).

Take two minibatches A and B of one task (here its support and query sets) and two steps of
SGD with step size α from Φ: g1 = ∇L_A(Φ), φ1 = Φ − α g1, g2 = ∇L_B(φ1). Write ḡ_A, ḡ_B and
H̄_A, H̄_B for the gradients and Hessians at Φ. To second order in α (their Eq. 25-30):

    pretraining (joint training)   g1                = ḡ_A
    first-order MAML               g2                ≈ ḡ_B − α H̄_B ḡ_A
    Reptile (k = 2)                g1 + g2           ≈ ḡ_A + ḡ_B − α H̄_B ḡ_A
    MAML                           (I − α H_A) g2    ≈ ḡ_B − α H̄_B ḡ_A − α H̄_A ḡ_B

Averaged over tasks, E[ḡ_A] = E[ḡ_B] = AvgGrad and E[H̄_B ḡ_A] = E[H̄_A ḡ_B] = AvgGradInner =
½ ∇ E[ḡ_A · ḡ_B], the direction that increases the inner product of gradients of different
minibatches of a task (within-task generalisation). So the expected updates are AvgGrad,
AvgGrad − α AvgGradInner, 2 AvgGrad − α AvgGradInner and AvgGrad − 2α AvgGradInner.
:func:`update_directions` computes every one of these vectors exactly, by automatic
differentiation, for a batch of tasks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from learntolearn.objective import Objective, Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["TAYLOR", "fit_coefficients", "update_directions"]

# The expected update of each method as (coefficient of AvgGrad, coefficient of α·AvgGradInner).
TAYLOR = {"pretraining": (1, 0), "first-order MAML": (1, -1), "Reptile": (2, -1), "MAML": (1, -2)}


def _flat(tensors: tuple[Tensor, ...] | list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], 1)


def update_directions(
    objective: Objective, params: Params, batch: TaskBatch, lr: float
) -> dict[str, Tensor]:
    """Flat update directions (means over the tasks of ``batch``) and the Taylor terms.

    Returns ``pretraining``, ``first-order MAML``, ``Reptile``, ``MAML`` (exact, for inner step
    size ``lr``), ``AvgGrad``, ``AvgGradInner`` and the Taylor predictions ``taylor:<method>``
    built from the same batch's ḡ_A, ḡ_B, H̄_B ḡ_A and H̄_A ḡ_B.
    """
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    names = list(theta)
    b = batch
    per_task = expand_params(theta, b.num_tasks)

    def grads(p: Params, x: Tensor, y: Tensor, create_graph: bool) -> tuple[Tensor, ...]:
        loss = objective.batched(p, x, y).sum()
        return torch.autograd.grad(loss, [p[k] for k in names], create_graph=create_graph)

    def mean_grad_of(scalar: Tensor) -> Tensor:  # ∇_Φ of a sum over tasks, divided by B
        g = torch.autograd.grad(scalar, [theta[k] for k in names], retain_graph=True)
        return torch.cat([t.flatten() for t in g]) / b.num_tasks

    g_a = grads(per_task, b.x_support, b.y_support, True)
    g_b = grads(per_task, b.x_query, b.y_query, True)
    h_b_g_a = mean_grad_of(sum((gb * ga.detach()).sum() for ga, gb in zip(g_a, g_b, strict=True)))
    h_a_g_b = mean_grad_of(sum((ga * gb.detach()).sum() for ga, gb in zip(g_a, g_b, strict=True)))
    # φ1 = Φ − α ḡ_A, differentiable in Φ through ḡ_A: MAML's exact gradient needs it
    phi1 = {k: per_task[k] - lr * g for k, g in zip(names, g_a, strict=True)}
    loss_b = objective.batched(phi1, b.x_query, b.y_query).sum()
    g2 = _flat(torch.autograd.grad(loss_b, [phi1[k] for k in names], retain_graph=True)).mean(0)
    maml = mean_grad_of(loss_b)
    gbar_a = _flat([g.detach() for g in g_a]).mean(0)
    gbar_b = _flat([g.detach() for g in g_b]).mean(0)
    out = {
        "pretraining": gbar_a,
        "first-order MAML": g2,
        "Reptile": gbar_a + g2,
        "MAML": maml,
        "AvgGrad": (gbar_a + gbar_b) / 2,
        "AvgGradInner": (h_b_g_a + h_a_g_b) / 2,
        "taylor:first-order MAML": gbar_b - lr * h_b_g_a,
        "taylor:Reptile": gbar_a + gbar_b - lr * h_b_g_a,
        "taylor:MAML": gbar_b - lr * h_b_g_a - lr * h_a_g_b,
    }
    return {k: v.detach() for k, v in out.items()}


def fit_coefficients(direction: Tensor, avg_grad: Tensor, avg_grad_inner: Tensor) -> Tensor:
    """Least-squares (a, b) in direction ≈ a·AvgGrad + b·AvgGradInner, and the relative residual."""
    basis = torch.stack([avg_grad, avg_grad_inner], 1).double()
    d = direction.double()
    coef = torch.linalg.lstsq(basis, d.unsqueeze(1)).solution.squeeze(1)
    residual = (d - basis @ coef).norm() / d.norm()
    return torch.cat([coef, residual.unsqueeze(0)])
