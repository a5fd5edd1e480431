"""The book's learned-optimizer experiments (chapter 7) by name, and what each profile changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from learntolearn.experiments.spec import ConfigError
from learntolearn.learned_optimizers.config import OptimizerConfig

__all__ = ["OPTIMIZER_EXPERIMENTS", "optimizer_experiment"]

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
