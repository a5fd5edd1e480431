"""The optimizees of "Learning to learn by gradient descent by gradient descent" (Andrychowicz
et al., NIPS 2016, Sec. 3): families of problems that a learned optimizer is trained on and
tested on, each drawn in batches of B independent problems (a leading dimension B on every
parameter; one loss per problem).

* :class:`Quadratics` (Sec. 3.1): f(θ) = ‖Wθ − y‖² in 10 dimensions, W, y and θ_0 drawn from
  a standard normal distribution for every function (the paper's "i.i.d. Gaussian").
* :class:`MLPs` (Sec. 3.2): an MLP classifying MNIST (one hidden layer of 20 sigmoid units),
  trained on a random minibatch of 128 images at every step, its cross-entropy the loss.
  ``hidden`` and ``activation`` give the paper's generalisation experiments (40 units, two
  layers, ReLU; Fig. 5).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from learntolearn.objective import Params

__all__ = ["ACTIVATIONS", "MLPs", "Problems", "Quadratics"]


@dataclass(frozen=True, eq=False)
class Problems:
    """B problems: their initial parameters ``params`` and ``loss(θ, t) → [B]``, the loss of
    each problem at step ``t`` (the minibatch of step t, for stochastic problems)."""

    params: Params
    loss: Callable[[Params, int], Tensor]

    @property
    def num(self) -> int:
        return next(iter(self.params.values())).shape[0]


@dataclass(frozen=True)
class Quadratics:
    """f(θ) = ‖Wθ − y‖², W ∈ R^{d×d}, y, θ_0 ∈ R^d from N(0, 1) (Sec. 3.1, d = 10)."""

    dim: int = 10

    def sample(
        self, num: int, steps: int, generator: torch.Generator, device: torch.device | None = None
    ) -> Problems:
        """``num`` functions, drawn from ``generator`` and placed on ``device`` (default: the
        generator's)."""
        g = generator.device
        w = torch.randn(num, self.dim, self.dim, generator=generator, device=g).to(device or g)
        y = torch.randn(num, self.dim, generator=generator, device=g).to(device or g)
        theta = torch.randn(num, self.dim, generator=generator, device=g).to(device or g)

        def loss(p: Params, t: int) -> Tensor:
            residual = torch.einsum("bij,bj->bi", w, p["theta"]) - y
            return residual.pow(2).sum(-1)

        return Problems({"theta": theta}, loss)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"sigmoid": torch.sigmoid, "relu": torch.relu}


@dataclass(frozen=True, eq=False)
class MLPs:
    """MLPs on ``images`` ``[N, 784]`` with ``labels``, one minibatch of ``batch`` images per
    step (Sec. 3.2). Weights start from N(0, ``init_std``²) (the paper: 0.01), biases at zero."""

    images: Tensor
    labels: Tensor
    hidden: Sequence[int] = (20,)
    activation: str = "sigmoid"
    batch: int = 128
    classes: int = 10
    init_std: float = 0.01

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation {self.activation!r} is unknown; use one of {tuple(ACTIVATIONS)}"
            )
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive layer widths, got {self.hidden!r}")

    def sample(
        self,
        num: int,
        steps: int,
        generator: torch.Generator,
        device: torch.device | None = None,
        batches: torch.Generator | None = None,
    ) -> Problems:
        """``num`` networks and the minibatches of steps 0..``steps`` (drawn now, so that the
        same generator state gives the same problems), placed on ``device`` (default: the
        generator's; the images are moved there once, when first on another). ``batches``, when
        given, draws the minibatches instead of ``generator``, so that networks of different
        widths can see the same minibatches."""
        g = generator.device
        dev = device or g
        sizes = [self.images.shape[1], *self.hidden, self.classes]
        params: Params = {}
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            w = torch.randn(num, a, b, generator=generator, device=g)
            params[f"w{i}"] = (self.init_std * w).to(dev)
            params[f"b{i}"] = torch.zeros(num, b, device=dev)
        draw = batches or generator
        index = torch.randint(
            self.images.shape[0], (steps + 1, num, self.batch), generator=draw, device=draw.device
        ).to(dev)
        images, labels = self.images.to(dev), self.labels.to(dev)

        def loss(p: Params, t: int) -> Tensor:
            x, y = images[index[t]], labels[index[t]]  # [B, batch, 784], [B, batch]
            logits = self.logits(p, x)
            return torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), y, reduction="none"
            ).mean(-1)

        return Problems(params, loss)

    def logits(self, params: Params, x: Tensor) -> Tensor:
        """The B networks' logits ``[B, n, classes]`` on images ``x`` ``[B, n, 784]``."""
        act, layers = ACTIVATIONS[self.activation], len(self.hidden) + 1
        for i in range(layers):
            x = torch.baddbmm(params[f"b{i}"].unsqueeze(1), x, params[f"w{i}"])
            if i < layers - 1:
                x = act(x)
        return x
