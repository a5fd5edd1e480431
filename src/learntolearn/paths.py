"""Where the project reads data and writes caches, checkpoints and results.

Every location can be moved with an environment variable, so that CI, a laptop and a GPU box
all run the same code:

``LEARNTOLEARN_DATA``
    A folder that already holds the data sets (``omniglot/``, ``mnist/``, ...). Read only.
    ``make`` sets it to ``../shared/data`` when that folder exists. Unset: ``<root>/data``.
``LEARNTOLEARN_CACHE``
    Downloads, decoded tensors and resumable training checkpoints. Default ``<root>/data``.
``LEARNTOLEARN_RESULTS``
    The results store (committed to git in the project). Default ``<root>/results``.

``<root>`` is the checkout that holds ``pyproject.toml`` (the package is installed editable),
or the current directory for a non-editable install.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_dir", "project_root", "results_dir", "runs_dir"]


def project_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var, "").strip()
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """The read-only folder searched first for data sets."""
    return _env_path("LEARNTOLEARN_DATA", project_root() / "data")


def cache_dir() -> Path:
    """The writable folder for downloads and decoded caches."""
    return _env_path("LEARNTOLEARN_CACHE", project_root() / "data")


def results_dir() -> Path:
    """The results store: one folder per experiment key."""
    return _env_path("LEARNTOLEARN_RESULTS", project_root() / "results")


def runs_dir() -> Path:
    """Resumable training checkpoints (never committed)."""
    return cache_dir() / "runs"
