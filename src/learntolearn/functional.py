"""Models as pure functions of a parameter dictionary.

Meta-learning differentiates through parameter updates, so algorithms treat a network as
``f(params, x)`` rather than as a stateful module (the ``torch.func`` style). Parameters of a
batch of tasks carry a leading task dimension, and ``vmap`` maps the network over it
(see :class:`learntolearn.objective.Objective`), so one call evaluates every task of a
meta-batch with its own weights.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Params", "expand_params", "init_params"]

Params = dict[str, Tensor]


def init_params(model: nn.Module) -> Params:
    """Fresh leaf tensors (requiring grad) holding a copy of ``model``'s parameters."""
    return {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}


def expand_params(params: Params, num_tasks: int) -> Params:
    """Give every task its own (differentiable) view of the shared initialisation θ."""
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}
