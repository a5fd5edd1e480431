"""The book's hyperparameter search (chapter 9) and what each profile changes."""

from __future__ import annotations

from typing import Any

from learntolearn.experiments.spec import PROFILES, ConfigError
from learntolearn.search.space import SearchConfig

__all__ = ["SEARCH_EXPERIMENT", "search_config"]

SEARCH_EXPERIMENT = "search/mnist-mlp"

_PROFILES: dict[str, dict[str, Any]] = {
    # seconds: every code path (grids, random, TPE past its start-up, the population)
    "smoke": {
        "steps": 5,
        "validation_images": 500,
        "trials": 8,
        "repeats": 2,
        "population": 12,
        "tpe_startup": 3,
    },
    "cpu": {},  # about 0.3 s per trial on one thread: the whole search is CPU-sized
}


def search_config(profile: str) -> SearchConfig:
    """The chapter's search at ``profile``. The search has no paper protocol to follow (it is
    the book's own experiment, sized for a CPU), so the paper profile is the cpu search."""
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is unknown; use one of {PROFILES}")
    profile = "smoke" if profile == "smoke" else "cpu"
    return SearchConfig(profile=profile, **_PROFILES[profile])
