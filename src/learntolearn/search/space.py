"""Hyperparameter search (chapter 9): the space searched, the objective, and the grid design.

The objective is the MNIST MLP of chapter 7 (Andrychowicz et al. 2016, Sec. 3.2: one hidden
layer of sigmoid units, minibatches of 128) trained for a fixed number of steps by Nesterov
momentum with weight decay. Five hyperparameters span the space, as in Bergstra & Bengio (2012,
JMLR 13, Sec. 2–3): the learning rate matters most, the momentum and the initial weights'
scale through it, and the width and the weight decay hardly at all at this horizon; the
searcher is not told which. The value of a setting is its error on 10,000 held-out training
images, after training on the other 50,000 with the same initial draw and the same minibatches
for every setting (and the same initial draw of weights for every setting of the same width),
so that the objective is a fixed function of the setting: the same setting scores the same,
bit for bit.

A grid for ``B`` trials (:func:`grid`) gives the hyperparameters, in the order listed, 2, 2,
2, … levels and then 4, 8, … in turn until the product is B; the levels sit at the centres of
equal cells of each (log-)range, the usual design.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch

from learntolearn.data.mnist import flat_digits
from learntolearn.data.optimizees import MLPs
from learntolearn.experiments.spec import ConfigError, Spec, is_int
from learntolearn.methods.inner_loop import NAG

__all__ = [
    "SPACE",
    "Hyperparameter",
    "Outcome",
    "SearchConfig",
    "grid",
    "grid_levels",
    "score",
]

CHANCE_ERROR = 0.9  # the error of a diverged network (a constant guess), ten classes


@dataclass(frozen=True)
class Hyperparameter:
    """One axis of the space: [low, high], searched uniformly or in log scale."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def at(self, u: float) -> float | int:
        """The value at fraction ``u`` ∈ [0, 1] of the (log-)range."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return round(v) if self.integer else v


SPACE: tuple[Hyperparameter, ...] = (
    Hyperparameter("lr", 1e-3, 10.0, log=True),
    Hyperparameter("momentum", 0.0, 0.99),
    Hyperparameter("init_std", 1e-3, 1.0, log=True),
    Hyperparameter("hidden", 8, 64, log=True, integer=True),
    Hyperparameter("weight_decay", 1e-6, 1e-2, log=True),
)


def grid_levels(budget: int, dims: int = len(SPACE)) -> list[int]:
    """Levels per hyperparameter of a ``budget``-point grid (a power of two): doubled in turn,
    first to last, so 8 → 2·2·2·1·1 and 128 → 4·4·2·2·2."""
    if budget < 1 or budget & (budget - 1):
        raise ConfigError(f"a grid budget must be a power of two, got {budget}")
    levels = [1] * dims
    for i in range(budget.bit_length() - 1):
        levels[i % dims] *= 2
    return levels


def grid(budget: int, space: tuple[Hyperparameter, ...] = SPACE) -> dict[str, list[float]]:
    """The values of each hyperparameter on a ``budget``-point grid (cell centres)."""
    return {
        h.name: [h.at((i + 0.5) / n) for i in range(n)]
        for h, n in zip(space, grid_levels(budget, len(space)), strict=True)
    }


@dataclass(frozen=True)
class SearchConfig(Spec):
    """A whole search experiment: the objective's protocol and the searches run on it.

    ``trials`` per search, ``repeats`` seeded searches per sampler (random, TPE), full grids of
    1, 2, 4, … ``trials`` points, and ``population`` settings drawn at random to check the
    hit-probability formula on (chapter 9)."""

    what: ClassVar[str] = "search config"

    name: str = "search/mnist-mlp"
    profile: str = "cpu"
    steps: int = 200
    batch: int = 128
    train_images: int = 50_000
    validation_images: int = 10_000
    trials: int = 128
    repeats: int = 10
    population: int = 1000
    tpe_startup: int = 10
    seed: int = 0  # the initial weights' draw
    batch_seed: int = 1  # the minibatches' draw (the same for every width)
    space: tuple[dict[str, Any], ...] = field(
        default_factory=lambda: tuple(asdict(h) for h in SPACE)
    )

    def __post_init__(self) -> None:
        self.check_common()
        for f in ("steps", "batch", "train_images", "validation_images", "trials", "repeats"):
            v = getattr(self, f)
            self.need(is_int(v) and v >= 1, f"{f} must be a positive integer, got {v!r}")
        self.need(
            self.train_images + self.validation_images <= 60_000,
            "train_images + validation_images exceed 60,000",
        )
        grid_levels(self.trials)  # a power of two

    @property
    def hyperparameters(self) -> tuple[Hyperparameter, ...]:
        return tuple(Hyperparameter(**h) for h in self.space)

    @property
    def budgets(self) -> tuple[int, ...]:
        """The grid sizes searched: 1, 2, 4, … ``trials``."""
        return tuple(2**i for i in range(self.trials.bit_length()))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Outcome:
    """A trained setting: validation error (the objective), validation loss, and whether
    training diverged (its error is then :data:`CHANCE_ERROR`, its loss infinite)."""

    error: float
    loss: float
    diverged: bool


def score(config: SearchConfig, setting: dict[str, float]) -> Outcome:
    """Train the MLP with ``setting`` (the :data:`SPACE` names) and score it on the held-out
    images. Deterministic: one CPU thread; the same minibatches (``config.batch_seed``) for
    every setting, and the same draw of weights (``config.seed``) for every setting of the
    same width, scaled to ``init_std``."""
    images, labels = flat_digits(True)
    n = config.train_images
    family = MLPs(
        images[:n],
        labels[:n],
        hidden=(int(setting["hidden"]),),
        batch=config.batch,
        init_std=float(setting["init_std"]),
    )
    problems = family.sample(
        1,
        config.steps,
        torch.Generator().manual_seed(config.seed),
        batches=torch.Generator().manual_seed(config.batch_seed),
    )
    rule, decay = NAG(float(setting["lr"]), float(setting["momentum"])), setting["weight_decay"]
    params, state = dict(problems.params), {}
    for t in range(config.steps):
        params = {k: v.detach().requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            loss = problems.loss(params, t).sum()
        if not torch.isfinite(loss):
            return Outcome(CHANCE_ERROR, math.inf, True)
        grads = torch.autograd.grad(loss, list(params.values()))
        grads = {  # L2 weight decay on the weights (not the biases)
            k: g + decay * params[k].detach() if k.startswith("w") else g
            for k, g in zip(params, grads, strict=True)
        }
        params, state = rule({k: v.detach() for k, v in params.items()}, grads, state, t)
    x = images[n : n + config.validation_images].unsqueeze(0)
    y = labels[n : n + config.validation_images]
    with torch.no_grad():
        logits = family.logits(params, x)[0]
        loss = torch.nn.functional.cross_entropy(logits, y).item()
    if not math.isfinite(loss):
        return Outcome(CHANCE_ERROR, math.inf, True)
    error = (logits.argmax(-1) != y).double().mean().item()
    return Outcome(error, loss, False)
