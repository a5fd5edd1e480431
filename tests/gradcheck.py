"""Central finite differences in float64, shared by the meta-gradient tests."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from learntolearn.objective import Params


def flatten(params: Params) -> Tensor:
    return torch.cat([v.detach().flatten() for v in params.values()])


def unflatten(vec: Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vec[i : i + v.numel()].view_as(v)
        i += v.numel()
    return out


def finite_difference(f: Callable[[Params], Tensor], at: Params, eps: float = 1e-6) -> Tensor:
    """∂f/∂θ by central differences (f(θ + εe_i) − f(θ − εe_i)) / 2ε, one coordinate at a time."""
    theta = flatten(at).double()
    grad = torch.empty_like(theta)
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = eps
        grad[i] = (f(unflatten(theta + e, at)) - f(unflatten(theta - e, at))) / (2 * eps)
    return grad


def rel_error(a: Tensor, b: Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
