"""The book's experiments by name, and what each profile changes.

``experiment("sinusoid/maml-k10", "paper")`` returns the config the book uses; the chapter
notebooks, ``make reproduce`` and the CLI all go through this registry, so a number in the book
and a rerun from the command line always share one key.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import PROFILES, ConfigError, ExperimentConfig

__all__ = [
    "CHAPTERS",
    "NOT_RUN",
    "OMNIGLOT_SETTINGS",
    "chapter_experiments",
    "experiment",
    "names",
]

# Per task family and profile: overrides of the paper protocol (the paper profile has none).
_PROFILE_OVERRIDES: dict[str, dict[str, dict[str, int]]] = {
    "sinusoid": {
        "smoke": {"iterations": 40, "meta_batch": 5, "eval_tasks": 100},
        "cpu": {"iterations": 10_000},
        "paper": {},
    },
    # cpu: a short run with a small meta-batch, minutes per setting on two cores; far from
    # converged, and labelled as such wherever it is shown.
    "omniglot": {
        "smoke": {"iterations": 3, "meta_batch": 2, "eval_tasks": 10, "monitor_every": 1},
        "cpu": {"iterations": 2_000, "meta_batch": 4, "monitor_every": 100},
        "paper": {"monitor_every": 2_000},
    },
    "omniglot-20way": {
        "smoke": {"iterations": 3, "meta_batch": 2, "eval_tasks": 10, "monitor_every": 1},
        "cpu": {"iterations": 300, "meta_batch": 4, "monitor_every": 25},
        "paper": {"monitor_every": 2_000},
    },
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


def _omniglot(n_way: int, k_shot: int, first_order: bool) -> Callable[[str], ExperimentConfig]:
    # MAML Sec. 5.2 and its reference code: 5-way with one inner step of α = 0.4 and meta-batch
    # 32, 20-way with five steps of α = 0.1 and meta-batch 16; Adam 1e-3 for 60k iterations;
    # K query examples per class; 3 (5-way) or 5 (20-way) adaptation steps at test time.
    method = "fomaml" if first_order else "maml"
    five = n_way == 5
    return lambda profile: ExperimentConfig(
        name=f"omniglot/{method}-{n_way}w{k_shot}s",
        method="maml",
        profile=profile,
        tasks="omniglot",
        n_way=n_way,
        k_shot=k_shot,
        k_query=k_shot,
        hidden=None,
        model="conv",
        inner_lr=0.4 if five else 0.1,
        inner_steps=1 if five else 5,
        first_order=first_order,
        meta_batch=32 if five else 16,
        iterations=60_000,
        eval_shots=(k_shot,),
        eval_lrs=(0.4 if five else 0.1,),
        eval_query=k_shot,
        test_steps=3 if five else 5,
    )


OMNIGLOT_SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))

_REGISTRY: dict[str, Callable[[str], ExperimentConfig]] = {
    **{
        f"omniglot/{'fomaml' if fo else 'maml'}-{n}w{k}s": _omniglot(n, k, fo)
        for n, k in OMNIGLOT_SETTINGS
        for fo in (False, True)
    },
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

_OMNIGLOT = tuple(
    f"omniglot/{m}-{n}w{k}s" for n, k in OMNIGLOT_SETTINGS for m in ("maml", "fomaml")
)
CHAPTERS: dict[str, tuple[str, ...]] = {
    "01_meta_learning": (
        "sinusoid/maml-k5",
        "sinusoid/maml-k10",
        "sinusoid/maml-k20",
        "sinusoid/pretrain",
        "sinusoid/oracle",
    ),
    "02_maml_math": ("omniglot/maml-5w1s", "omniglot/maml-20w1s"),
    "03_first_order": _OMNIGLOT,
}


# Experiments a profile leaves out, with the reason; the chapters print it where the numbers
# would stand, and `reproduce` skips them at that profile.
NOT_RUN: dict[str, dict[str, str]] = {
    "cpu": {
        name: "20-way 5-shot costs about 4 s per second-order meta-iteration and 20 min of "
        "evaluation on one CPU thread: too slow for the cpu profile"
        for name in ("omniglot/maml-20w5s", "omniglot/fomaml-20w5s")
    },
}


def chapter_experiments(chapter: str, profile: str) -> tuple[str, ...]:
    """The experiments ``chapter`` shows at ``profile`` (those in :data:`NOT_RUN` left out)."""
    if chapter not in CHAPTERS:
        raise ConfigError(f"unknown chapter {chapter!r}; known: {sorted(CHAPTERS)}")
    skipped = NOT_RUN.get(profile, {})
    return tuple(n for n in CHAPTERS[chapter] if n not in skipped)


def names() -> list[str]:
    return sorted(_REGISTRY)


def experiment(name: str, profile: str = "paper") -> ExperimentConfig:
    """The registered experiment ``name`` under ``profile``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}; known experiments: {names()}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use one of {PROFILES}")
    config = _REGISTRY[name](profile)
    family = "omniglot-20way" if config.n_way == 20 else config.tasks
    return config.with_(**_PROFILE_OVERRIDES[family][profile])
