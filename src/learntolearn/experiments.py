"""The book's experiments by name, and what each profile changes.

``experiment("sinusoid/maml-k10", "paper")`` returns the config the book uses; the chapter
notebooks, ``make reproduce`` and the CLI all go through this registry, so a number in the book
and a rerun from the command line always share one key.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import PROFILES, ConfigError, ExperimentConfig

__all__ = ["CHAPTERS", "experiment", "names"]

# Per profile: overrides of the paper protocol. The paper profile overrides nothing.
_PROFILE_OVERRIDES: dict[str, dict[str, int]] = {
    "smoke": {"iterations": 40, "meta_batch": 5, "eval_tasks": 100},
    "cpu": {"iterations": 10_000},
    "paper": {},
}


def _sinusoid_maml(k: int) -> Callable[[str], ExperimentConfig]:
    # MAML Sec. 5.1: one inner step with α = 0.01 on K points, meta-batch 25, Adam 1e-3,
    # 70k meta-iterations (the reference code's defaults); K query points per task.
    return lambda profile: ExperimentConfig(
        name=f"sinusoid/maml-k{k}",
        method="maml",
        profile=profile,
        k_shot=k,
        k_query=k,
        inner_lr=0.01,
        inner_steps=1,
        first_order=False,
        eval_lrs=(0.01, 0.01, 0.01),
    )


_REGISTRY: dict[str, Callable[[str], ExperimentConfig]] = {
    **{f"sinusoid/maml-k{k}": _sinusoid_maml(k) for k in (5, 10, 20)},
    # Pretraining on all tasks, fine-tuned at test time with the step sizes of Fig. 3's legend
    # (0.01 for K = 5, 0.02 for K = 10 and 20).
    "sinusoid/pretrain": lambda profile: ExperimentConfig(
        name="sinusoid/pretrain", method="pretrain", profile=profile, eval_lrs=(0.01, 0.02, 0.02)
    ),
    # The oracle receives amplitude and phase as extra inputs; it is not fine-tuned.
    "sinusoid/oracle": lambda profile: ExperimentConfig(
        name="sinusoid/oracle", method="oracle", profile=profile, eval_steps=0
    ),
}

CHAPTERS: dict[str, tuple[str, ...]] = {
    "01_meta_learning": (
        "sinusoid/maml-k5",
        "sinusoid/maml-k10",
        "sinusoid/maml-k20",
        "sinusoid/pretrain",
        "sinusoid/oracle",
    ),
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def experiment(name: str, profile: str = "paper") -> ExperimentConfig:
    """The registered experiment ``name`` under ``profile``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}; known experiments: {names()}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use one of {PROFILES}")
    return _REGISTRY[name](profile).with_(**_PROFILE_OVERRIDES[profile])
