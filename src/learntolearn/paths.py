"""Where the project reads data and writes caches, checkpoints and results.

Every location can be moved with an environment variable, so that CI, a laptop and a GPU box
all run the same code:

``LEARNTOLEARN_DATA``
    A folder that already holds the data sets (``omniglot/``, ``mnist/``, ...). Read only.
    ``make`` sets it to ``../shared/data`` when that folder exists. Unset: ``<root>/data``.
``LEARNTOLEARN_CACHE``
    Downloads and decoded tensors. Default ``<root>/data``. (Resumable checkpoints live in the
    results store's ``in-progress/`` folder; ``runs/`` here is where older versions kept them.)
``LEARNTOLEARN_RESULTS``
    The results store, for every run when set. Unset: ``<root>/results`` (committed to git) for
    the registered experiments at the ``cpu`` and ``paper`` profiles, and the scratch store
    ``<root>/results-scratch`` (ignored by git) for runs that are not committed results: the
    ``smoke`` profile, and configs that are not registered experiments (JSON files).

``<root>`` is the checkout that holds ``pyproject.toml`` (the package is installed editable),
or the current directory for a non-editable install. A variable that names a file (or a path
inside one) is refused when the folder is asked for, naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "SCRATCH_PROFILES",
    "cache_dir",
    "data_dir",
    "project_root",
    "results_dir",
    "runs_dir",
    "scratch_results_dir",
    "search_trials_dir",
]

# Profiles whose results are never committed: they go to the scratch store.
SCRATCH_PROFILES: tuple[str, ...] = ("smoke",)


def project_root() -> Path:
    """The checkout holding ``pyproject.toml``, or the current directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def _env_path(var: str, default: Path) -> Path:
    """The folder that ``var`` names, or ``default`` when it is unset (or empty)."""
    value = os.environ.get(var, "").strip()
    if not value:
        return default
    path = Path(value).expanduser().resolve()
    _check_folder(var, path)
    return path


def _check_folder(var: str, path: Path) -> None:
    """Refuse a setting that names a file, or a path inside one: no folder can be there."""
    existing = next(p for p in (path, *path.parents) if os.path.exists(p))  # / exists
    if not os.path.isdir(existing):
        raise NotADirectoryError(
            f"{var}={path}: {existing} is a file, not a folder; point {var} at a folder, or "
            "unset it"
        )


def data_dir() -> Path:
    """The read-only folder searched first for data sets."""
    return _env_path("LEARNTOLEARN_DATA", project_root() / "data")


def cache_dir() -> Path:
    """The writable folder for downloads and decoded caches."""
    return _env_path("LEARNTOLEARN_CACHE", project_root() / "data")


def scratch_results_dir() -> Path:
    """The store for runs that are not committed results (ignored by git)."""
    return project_root() / "results-scratch"


def results_dir(profile: str | None = None, *, scratch: bool = False) -> Path:
    """The results store, one folder per experiment key, for runs at ``profile``.

    ``LEARNTOLEARN_RESULTS`` wins when set. Otherwise ``<root>/results`` (the committed store),
    except for a scratch profile (``smoke``) or ``scratch=True`` (a config that is not a
    registered experiment): then :func:`scratch_results_dir`.
    """
    if scratch or profile in SCRATCH_PROFILES:
        return _env_path("LEARNTOLEARN_RESULTS", scratch_results_dir())
    return _env_path("LEARNTOLEARN_RESULTS", project_root() / "results")


def search_trials_dir(profile: str | None = None) -> Path:
    """The trial store of the hyperparameter searches (chapter 9; never committed): beside the
    results store of ``profile``, in ``results-search/``, unless ``LEARNTOLEARN_SEARCH`` is set."""
    return _env_path("LEARNTOLEARN_SEARCH", results_dir(profile).parent / "results-search")


def runs_dir() -> Path:
    """Where older versions kept resumable checkpoints (moved to ``in-progress/`` on resume)."""
    return cache_dir() / "runs"
