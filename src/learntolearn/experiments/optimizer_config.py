"""The learned-optimizer experiments (chapter 7): their configs, stable keys and profiles.

A learned optimizer is trained on a family of problems rather than on few-shot tasks, so its
experiments have their own config, :class:`OptimizerConfig`, keyed like
:class:`~learntolearn.experiments.config.ExperimentConfig` (a hash of every field that can
change the result), and their own folder of the results store (``learned-optimizers/``).

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

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from learntolearn.experiments.config import ConfigError

__all__ = [
    "BASELINES",
    "CHAPTER_OPTIMIZERS",
    "LR_GRID",
    "OPTIMIZER_EXPERIMENTS",
    "PROBLEMS",
    "SETTINGS",
    "OptimizerConfig",
    "Setting",
    "optimizer_experiment",
]

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
class OptimizerConfig:
    """One learned optimizer's training and evaluation (Andrychowicz et al. 2016, Sec. 3)."""

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
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(f"optimizer config {self.name!r}: {msg}")

        need(self.problem in PROBLEMS, f"problem must be one of {PROBLEMS}, got {self.problem!r}")
        need(self.profile in ("smoke", "cpu", "paper"), f"unknown profile {self.profile!r}")
        for f in ("iterations", "meta_batch", "horizon", "unroll", "hidden", "layers"):
            v = getattr(self, f)
            need(isinstance(v, int) and v >= 1, f"{f} must be a positive integer, got {v!r}")
        need(self.horizon % self.unroll == 0, "horizon must be a multiple of unroll")
        need(self.eval_problems >= 2 and self.tune_problems >= 2, "evaluate on >= 2 problems")
        need(self.scale > 0 and self.p > 0 and self.meta_lr > 0, "scale, p, meta_lr must be > 0")
        need(len(self.lr_grid) >= 1 and min(self.lr_grid) > 0, "lr_grid: positive step sizes")
        need(
            self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1),
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

    @property
    def key(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
        return f"{self.name.replace('/', '-')}-{self.profile}-{digest}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown optimizer config field(s) {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# Per problem and profile: overrides of the paper's protocol. The cpu runs are minutes of one
# CPU thread (far fewer training horizons than the paper's), labelled wherever shown.
_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quadratic": {
        "smoke": {
            "iterations": 2,
            "meta_batch": 8,
            "eval_problems": 4,
            "tune_problems": 2,
            "max_steps": 20,
        },
        "cpu": {"iterations": 400},
        "paper": {},
    },
    "mnist": {
        "smoke": {
            "iterations": 1,
            "horizon": 20,
            "unroll": 10,
            "eval_problems": 3,
            "tune_problems": 2,
            "lr_grid": (0.01, 0.1),
            "max_steps": 20,
        },
        "cpu": {"iterations": 150},
        "paper": {},
    },
}

_PAPER: dict[str, dict[str, Any]] = {
    # 10-d quadratics, 128 functions per meta-step (the official code's batch)
    "l2l/quadratic": {"problem": "quadratic", "iterations": 10_000, "meta_batch": 128},
    # the same with the second derivatives of f kept (∂∇_t/∂φ ≠ 0)
    "l2l/quadratic-second-order": {
        "problem": "quadratic",
        "iterations": 10_000,
        "meta_batch": 128,
        "second_order": True,
    },
    # the MNIST MLP (one hidden layer of 20 sigmoid units, minibatches of 128)
    "l2l/mnist": {"problem": "mnist", "iterations": 10_000},
}
OPTIMIZER_EXPERIMENTS = tuple(_PAPER)
CHAPTER_OPTIMIZERS = {"07_lstm_optimizers": OPTIMIZER_EXPERIMENTS}  # for `reproduce --chapter`


def optimizer_experiment(name: str, profile: str) -> OptimizerConfig:
    """The registered learned-optimizer experiment ``name`` at ``profile``."""
    if name not in _PAPER:
        raise ConfigError(
            f"unknown learned-optimizer experiment {name!r}; known: {OPTIMIZER_EXPERIMENTS}"
        )
    base = OptimizerConfig(name=name, profile="paper", **_PAPER[name])
    if profile not in _PROFILES[base.problem]:
        raise ConfigError(f"profile {profile!r} is unknown; use smoke, cpu or paper")
    return replace(base, profile=profile, **_PROFILES[base.problem][profile])
