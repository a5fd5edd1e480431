"""The learned-optimizer experiments' config (chapter 7): :class:`OptimizerConfig`.

A learned optimizer is trained on a family of problems rather than on few-shot tasks, so its
experiments have their own config, keyed like every :class:`~learntolearn.experiments.spec.Spec`
(a hash of every field that can change the result), and their own folder of the results store
(``learned-optimizers/``). The experiments the book runs, and their profiles, are in
:mod:`learntolearn.catalogue.learned_optimizers`.

Where the paper (Andrychowicz et al. 2016) and its official code (github.com/deepmind/
learning-to-learn) differ, the book follows the paper's text, which a reader can check:

* the preprocessing constant p = 10 (App. A; the code uses 5, and no preprocessing at all for
  the quadratics);
* the output scale 0.1 (Sec. 3; the code's 0.01 for MNIST and 1 for the quadratics);
* Gaussian W and y (Sec. 3.1: "i.i.d. Gaussian"; the code draws them uniform in [0, 1)), with
  θ_0 from N(0, 1) (the paper does not say; the code starts at N(0, 0.01²)).

The rest is the code's: 20-step unrolls of a 100-step horizon, Adam 1e-3 on φ, the meta-loss
summed over the unroll, 128 quadratics per meta-step, 10,000 training horizons.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from learntolearn.experiments.spec import Spec, is_int, is_positive

__all__ = ["BASELINES", "LR_GRID", "PROBLEMS", "SETTINGS", "OptimizerConfig", "Setting"]

PROBLEMS = ("quadratic", "mnist")
BASELINES = ("sgd", "nag", "rmsprop", "adam")
# learning rates 10^-4 … 10^0.5 in half decades: every baseline is tuned on this grid
LR_GRID = tuple(round(10 ** (k / 2), 6) for k in range(-8, 2))


@dataclass(frozen=True)
class Setting:
    """A test problem family: the training one, or a change of it (Fig. 5's generalisation)."""

    steps: int = 100
    hidden: tuple[int, ...] = (20,)
    activation: str = "sigmoid"


# The evaluation settings of each problem (the quadratic has its 100-step test alone).
SETTINGS: dict[str, dict[str, Setting]] = {
    "quadratic": {"quadratic": Setting()},
    "mnist": {
        "mnist": Setting(),
        "200 steps": Setting(steps=200),
        "40 hidden units": Setting(hidden=(40,)),
        "2 hidden layers": Setting(hidden=(20, 20)),
        "ReLU": Setting(activation="relu"),
    },
}


@dataclass(frozen=True)
class OptimizerConfig(Spec):
    """One learned optimizer's training and evaluation (Andrychowicz et al. 2016, Sec. 3)."""

    what: ClassVar[str] = "optimizer config"

    name: str
    profile: str
    problem: str
    iterations: int  # training horizons, each on freshly drawn problems
    meta_batch: int = 1  # problems per horizon (128 functions for the quadratics)
    horizon: int = 100
    unroll: int = 20  # truncated BPTT: φ is updated every ``unroll`` steps
    hidden: int = 20
    layers: int = 2
    scale: float = 0.1
    p: float = 10.0
    meta_lr: float = 1e-3
    second_order: bool = False
    seed: int = 0
    eval_problems: int = 100
    tune_problems: int = 20
    eval_seed: int = 2016
    lr_grid: tuple[float, ...] = LR_GRID
    max_steps: int | None = None  # caps every test setting's steps (smoke: seconds in CI)

    def __post_init__(self) -> None:
        need = self.need
        self.check_common()
        need(self.problem in PROBLEMS, f"problem must be one of {PROBLEMS}, got {self.problem!r}")
        for f in ("iterations", "meta_batch", "horizon", "unroll", "hidden", "layers"):
            v = getattr(self, f)
            need(is_int(v) and v >= 1, f"{f} must be a positive integer, got {v!r}")
        need(self.horizon % self.unroll == 0, "horizon must be a multiple of unroll")
        for f in ("eval_problems", "tune_problems"):
            v = getattr(self, f)
            need(is_int(v) and v >= 2, f"{f} must be an integer >= 2, got {v!r}")
        for f in ("scale", "p", "meta_lr"):
            v = getattr(self, f)
            need(is_positive(v), f"{f} must be a positive number, got {v!r}")
        need(isinstance(self.second_order, bool), "second_order must be true or false")
        for f in ("seed", "eval_seed"):
            v = getattr(self, f)
            need(is_int(v) and v >= 0, f"{f} must be an integer >= 0, got {v!r}")
        need(
            isinstance(self.lr_grid, tuple)
            and len(self.lr_grid) >= 1
            and all(is_positive(lr) for lr in self.lr_grid),
            f"lr_grid must be a non-empty list of positive step sizes, got {self.lr_grid!r}",
        )
        need(
            self.max_steps is None or (is_int(self.max_steps) and self.max_steps >= 1),
            f"max_steps must be a positive integer or unset, got {self.max_steps!r}",
        )

    @property
    def settings(self) -> dict[str, Setting]:
        """The test settings, their steps capped at ``max_steps``."""
        cap = self.max_steps or max(s.steps for s in SETTINGS[self.problem].values())
        return {n: replace(s, steps=min(s.steps, cap)) for n, s in SETTINGS[self.problem].items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; a field left at None is left out (so new optional fields keep
        the existing keys)."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if v is not None
        }
