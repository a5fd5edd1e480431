"""Models as pure functions of a parameter dictionary.

Meta-learning differentiates through parameter updates, so algorithms treat a network as
``f(params, x)`` rather than as a stateful module (the ``torch.func`` style). Parameters of a
batch of tasks carry a leading task dimension; :func:`batched_forward` maps the network over it
with ``vmap``, so one call evaluates every task of a meta-batch with its own weights.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.func import functional_call, vmap

__all__ = [
    "Forward",
    "Params",
    "batched_forward",
    "clone_params",
    "expand_params",
    "functional_forward",
    "init_params",
]

Params = dict[str, Tensor]
Forward = Callable[[Params, Tensor], Tensor]


def init_params(model: nn.Module) -> Params:
    """Fresh leaf tensors (requiring grad) holding a copy of ``model``'s parameters."""
    return {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}


def clone_params(params: Params) -> Params:
    """Detached copies, e.g. to store or to evaluate without touching the originals."""
    return {k: v.detach().clone() for k, v in params.items()}


def expand_params(params: Params, num_tasks: int) -> Params:
    """Give every task its own (differentiable) view of the shared initialisation θ."""
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


def functional_forward(model: nn.Module) -> Forward:
    """``f(params, x)`` for one task: ``x`` has no task dimension."""

    def forward(params: Params, x: Tensor) -> Tensor:
        return functional_call(model, params, (x,))

    return forward


def batched_forward(model: nn.Module) -> Forward:
    """``f(params, x)`` for ``B`` tasks: ``params[k]`` is ``[B, ...]`` and ``x`` is ``[B, ...]``."""
    return vmap(functional_forward(model), in_dims=(0, 0), randomness="error")
