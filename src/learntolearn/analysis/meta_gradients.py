"""How far the first-order approximation is from MAML's exact meta-gradient.

By the chain rule through the inner step θ' = θ − α∇L_s(θ) (MAML, Eq. 1), the exact
meta-gradient of the query loss L_q is

    ∇_θ L_q(θ') = (I − α ∇²L_s(θ)) ∇L_q(θ')      (one inner step; a product of such factors
                                                     for several),

and first-order MAML keeps only ∇L_q(θ') (Finn et al. 2017, Sec. 5.2). The difference, the
Hessian term, is what this module measures: its size relative to the first-order gradient and
the cosine between the two gradients.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from learntolearn.methods.maml import MAML
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["compare_meta_gradients", "flat_grad", "step_cost"]


def flat_grad(loss: Tensor, params: Params) -> Tensor:
    """∂loss/∂params as one flat vector."""
    grads = torch.autograd.grad(loss, tuple(params.values()))
    return torch.cat([g.flatten() for g in grads])


def compare_meta_gradients(maml: MAML, params: Params, batch: TaskBatch) -> dict[str, float]:
    """Exact vs first-order meta-gradient of ``maml`` on ``batch``.

    Returns the cosine between them, ``‖g_exact − g_first‖ / ‖g_first‖`` (the relative size of
    the second-order term) and both norms.
    """
    leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
    exact = flat_grad(replace(maml, first_order=False).loss(leaf, batch), leaf)
    first = flat_grad(replace(maml, first_order=True).loss(leaf, batch), leaf)
    return {
        "cosine": torch.nn.functional.cosine_similarity(exact, first, dim=0).item(),
        "second_order_ratio": ((exact - first).norm() / first.norm()).item(),
        "exact_norm": exact.norm().item(),
        "first_order_norm": first.norm().item(),
    }


def step_cost(
    loss: Callable[[Params, TaskBatch], Tensor], params: Params, batch: TaskBatch, repeats: int = 5
) -> dict[str, float]:
    """Cost of one meta-iteration's forward and backward pass on ``batch``.

    ``saved_bytes`` adds up the distinct tensor storages autograd saves for backward passes
    during the step (through ``saved_tensors_hooks``), each counted once: the activation memory
    of the step, exact and independent of the machine. Every counted storage is held until the
    count is done, so a storage freed mid-step (first-order inner gradients free theirs) cannot
    hand its address to a new one and be miscounted. ``seconds`` is the median wall time over
    ``repeats`` (after a warm-up); on CUDA, ``peak_bytes`` is the allocator's peak during one step.
    """
    leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
    device = next(iter(leaf.values())).device
    storages: dict[int, torch.UntypedStorage] = {}

    def pack(t: Tensor) -> Tensor:
        s = t.untyped_storage()
        storages.setdefault(s.data_ptr(), s)  # held: its address stays its own
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss(leaf, batch).backward()
    out: dict[str, float] = {"saved_bytes": float(sum(s.nbytes() for s in storages.values()))}
    storages.clear()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss(leaf, batch).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    out["seconds"] = statistics.median(times)
    if device.type == "cuda":
        out["peak_bytes"] = float(torch.cuda.max_memory_allocated(device) - base)
    return out
