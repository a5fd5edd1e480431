"""Learning to learn by gradient descent by gradient descent (Andrychowicz et al., NIPS 2016).

The optimizer m, with parameters φ, is an update rule (Eq. 1 and Sec. 2):

    θ_{t+1} = θ_t + g_t,        [g_t, h_{t+1}] = m(∇_t, h_t, φ),     ∇_t = ∇_θ f(θ_t)

and it is trained on the sum of the optimizee's losses along the trajectory (Eq. 3),

    L(φ) = E_f [ Σ_{t=1}^{T} w_t f(θ_t) ],     w_t = 1,

by truncated backpropagation through time: T = 20 steps are unrolled, φ takes an Adam step,
and the next 20 continue from where they stopped, until the 100-step horizon is reached.
m is coordinatewise (Sec. 2.1): one small LSTM for every coordinate, with shared weights, fed
the preprocessed gradient (App. A) and scaled on output. The paper drops the second derivatives
of f (∂∇_t/∂φ = 0, Sec. 2: "the gradients ∇_t ... are treated as inputs"); ``second_order``
keeps them, which the chapter compares on a small problem.

φ stays a dictionary of plain tensors applied with ``torch.func.functional_call``: updating an
``nn.Parameter`` in place inside the unroll would cut the meta-gradient (the tests check that
φ gets the finite-difference gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call

from learntolearn.models.optimizers import CoordinatewiseLSTM
from learntolearn.objective import Params

__all__ = [
    "CHUNK",
    "LSTMOptimizer",
    "NonFiniteLossError",
    "by_chunks",
    "flatten",
    "preprocess",
    "unflatten",
    "unroll",
]


class NonFiniteLossError(FloatingPointError):
    """The optimizee's loss became NaN or infinite."""


def preprocess(x: Tensor, p: float = 10.0) -> Tensor:
    """Andrychowicz et al., App. A: each value x becomes two inputs,

        (log|x| / p, sgn(x))   if |x| ≥ e^{−p},      (−1, e^p x)   otherwise,

    which keeps gradients of very different magnitudes within the LSTM's range. Returns
    ``[..., 2]``; differentiable (the logarithm never sees 0)."""
    floor = math.exp(-p)
    big = x.abs() >= floor
    log = torch.where(big, x.abs().clamp_min(floor).log() / p, torch.full_like(x, -1.0))
    sign = torch.where(big, torch.sign(x), x * math.exp(p))
    return torch.stack([log, sign], dim=-1)


def flatten(tensors: Params, names: list[str]) -> Tensor:
    """Every coordinate of ``tensors[names]``, in order, as one vector."""
    return torch.cat([tensors[k].reshape(-1) for k in names])


def unflatten(flat: Tensor, like: Params, names: list[str]) -> Params:
    """:func:`flatten`'s inverse: ``flat`` cut into the shapes of ``like[names]``."""
    out, start = {}, 0
    for k in names:
        n = like[k].numel()
        out[k] = flat[start : start + n].view_as(like[k])
        start += n
    return out


CHUNK = 32_768  # coordinates per call of the LSTM (a large batch of rows runs out of cache)


def by_chunks(
    step: Callable[..., tuple[Tensor, Params]], inputs: tuple[Tensor, ...], state: Params
) -> tuple[Tensor, Params]:
    """``step(*inputs, state)`` applied to :data:`CHUNK` coordinates (rows) at a time: the same
    values, since every coordinate is computed alone, about twice as fast on millions of rows."""
    rows = inputs[0].shape[0]
    if rows <= CHUNK:
        return step(*inputs, state)
    outs, states = [], []
    for i in range(0, rows, CHUNK):
        part = slice(i, i + CHUNK)
        out, new = step(*(x[part] for x in inputs), {k: v[part] for k, v in state.items()})
        outs.append(out)
        states.append(new)
    return torch.cat(outs), {k: torch.cat([s[k] for s in states]) for k in states[0]}


@dataclass(frozen=True, eq=False)
class LSTMOptimizer:
    """The learned update rule g_t = scale · m(preprocess(∇_t), h_t; φ) (Sec. 2.1, App. A),
    in the seam ``rule(params, grads, state, step) → (params, state)``; ``weights`` is φ."""

    net: CoordinatewiseLSTM
    weights: Params
    scale: float = 0.1
    p: float = 10.0

    def __call__(
        self, params: Params, grads: Params, state: Params, step: int
    ) -> tuple[Params, Params]:
        names = list(grads)
        g = flatten(grads, names)
        if not state:
            state = self.net.initial_state(g.numel(), g)
        out, state = by_chunks(
            lambda x, s: functional_call(self.net, self.weights, (x, s)),
            (preprocess(g, self.p),),
            state,
        )
        update = unflatten(self.scale * out, grads, names)
        return {k: params[k] + update[k] for k in names}, state


Loss = Callable[[Params, int], Tensor]
"""``loss(θ, t)``: the optimizee's loss at step ``t`` (its minibatch), one value per problem."""


def unroll(
    rule: Callable[[Params, Params, Params, int], tuple[Params, Params]],
    loss: Loss,
    params: Params,
    state: Params,
    *,
    start: int,
    steps: int,
    second_order: bool = False,
) -> tuple[Tensor, Params, Params, list[float]]:
    """``steps`` steps of ``rule`` from step ``start``: returns the meta-loss Σ_{t} f(θ_t) over
    the parameters the steps produced (Eq. 3, w_t = 1, summed over the problems of a batch),
    the last parameters and state (still attached to φ's graph), and the mean loss before each
    step. ``second_order=False`` treats each ∇_t as a constant input (the paper)."""
    if not params:
        raise ValueError("the optimizee has no parameters")
    params = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
    names, meta_loss, seen = list(params), torch.zeros(()), []
    for t in range(start, start + steps + 1):
        value = loss(params, t)
        if not bool(torch.isfinite(value).all()):
            raise NonFiniteLossError(
                f"the optimizee's loss is not finite at step {t} ({value.detach().flatten()[:4]})"
                ": the optimizer diverged or the problem's inputs hold NaN/inf"
            )
        if t > start:
            meta_loss = meta_loss + value.sum()
        if t == start + steps:
            break
        seen.append(float(value.detach().mean()))
        # the losses stay in the meta-loss: their graph is kept, whatever the order
        grads = torch.autograd.grad(
            value.sum(), [params[k] for k in names], create_graph=second_order, retain_graph=True
        )
        params, state = rule(params, dict(zip(names, grads, strict=True)), state, t)
    return meta_loss, params, state, seen
