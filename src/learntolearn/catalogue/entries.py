"""Every experiment of the book by name, whatever its kind, and the one way to get its result.

``experiment(name, profile)`` is the config the book uses (a few-shot run, a learned optimizer
or the hyperparameter search); :func:`store_for` is where its result lives; :func:`run` loads
or computes it through its kind, handing the kind the store. The CLI, ``reproduce``, the plan
and the chapters all go through here, so a number in the book and a rerun from the command line
always share one key.
"""

from __future__ import annotations

from typing import Any

import torch

from learntolearn.catalogue.fewshot import fewshot_experiment, fewshot_names
from learntolearn.catalogue.learned_optimizers import OPTIMIZER_EXPERIMENTS, optimizer_experiment
from learntolearn.catalogue.search import SEARCH_EXPERIMENT, search_config
from learntolearn.experiments.spec import ConfigError, Spec
from learntolearn.experiments.store import Store
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.runs import run as run_fewshot
from learntolearn.fewshot.store import ResultStore
from learntolearn.fewshot.stored_analyses import analyse as analyse_stored
from learntolearn.learned_optimizers.config import OptimizerConfig
from learntolearn.learned_optimizers.runs import FOLDER, OptimizerStore, run_optimizer
from learntolearn.paths import results_dir
from learntolearn.search.space import SearchConfig
from learntolearn.search.studies import FOLDER as SEARCH_FOLDER
from learntolearn.search.studies import SearchStore, load_summary

__all__ = ["analyse", "experiment", "kind_of", "names", "registered", "run", "store_for", "stored"]


def names() -> list[str]:
    """Every experiment of the book, few-shot runs first."""
    return [*fewshot_names(), *OPTIMIZER_EXPERIMENTS, SEARCH_EXPERIMENT]


def experiment(name: str, profile: str = "paper") -> Any:
    """The book's experiment ``name`` under ``profile``, whatever its kind."""
    if name in OPTIMIZER_EXPERIMENTS:
        return optimizer_experiment(name, profile)
    if name == SEARCH_EXPERIMENT:
        return search_config(profile)
    if not isinstance(name, str) or name not in fewshot_names():
        raise ConfigError(f"unknown experiment {name!r}; known experiments: {names()}")
    return fewshot_experiment(name, profile)


def kind_of(spec: Spec) -> str:
    """The kind's name a reader sees: 'few-shot', 'learned optimizer' or 'search'."""
    kinds = {ExperimentConfig: "few-shot", OptimizerConfig: "learned optimizer"}
    return kinds.get(type(spec), "search")


def registered(spec: Spec) -> bool:
    """Whether ``spec`` is exactly the book's experiment of its name at its profile."""
    try:
        return bool(experiment(spec.name, spec.profile) == spec)
    except ConfigError:
        return False


def store_for(spec: Spec) -> Store[Any]:
    """Where ``spec``'s result lives: the committed store for a registered experiment at a
    committed profile, else the scratch store (see :func:`learntolearn.paths.results_dir`)."""
    root = results_dir(spec.profile, scratch=not registered(spec))
    if isinstance(spec, OptimizerConfig):
        return OptimizerStore(root / FOLDER)
    if isinstance(spec, ExperimentConfig):
        return ResultStore(root)
    return SearchStore(root / SEARCH_FOLDER)  # the summary; its trials are in the study store


def stored(spec: Spec) -> bool:
    """Whether ``spec``'s result is stored (and reads back whole)."""
    if isinstance(spec, SearchConfig):
        try:
            load_summary(spec, compute=False)
        except (FileNotFoundError, ValueError):
            return False
        return True
    return store_for(spec).get(spec) is not None


def run(
    spec: Spec,
    store: Store[Any] | None = None,
    *,
    device: str | torch.device = "auto",
    progress: bool = True,
    deadline: float | None = None,
    checkpoint_every: int | None = None,
    stop_after: int | None = None,
    task_chunk: int | None = None,
    workers: int = 1,
) -> Any:
    """The stored result of ``spec``, or compute it (resuming) through its kind, in ``store``
    (default: :func:`store_for`). ``deadline`` (a :func:`time.monotonic` time) ends the sitting
    with :class:`InterruptedError`; the same call resumes it. The other options go to the kinds
    that have them (``workers``: the search's processes)."""
    if isinstance(spec, SearchConfig):
        summary = load_summary(spec, workers=workers, progress=progress, deadline=deadline)
        if summary is None:
            raise InterruptedError(f"{spec.key}: the search continues at the next sitting")
        return summary
    store = store if store is not None else store_for(spec)
    if isinstance(spec, OptimizerConfig):
        return run_optimizer(
            spec,
            store,  # type: ignore[arg-type]
            device=device,
            progress=progress,
            deadline=deadline,
            **({} if checkpoint_every is None else {"checkpoint_every": checkpoint_every}),
        )
    return run_fewshot(
        spec,  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        device=device,
        progress=progress,
        deadline=deadline,
        stop_after=stop_after,
        task_chunk=task_chunk,
        **({} if checkpoint_every is None else {"checkpoint_every": checkpoint_every}),
    )


def analyse(
    config: ExperimentConfig,
    name: str,
    *,
    device: str | torch.device = "auto",
    store: ResultStore | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The stored analysis ``name`` of a few-shot result (computed and stored when absent)."""
    store = store if store is not None else store_for(config)  # type: ignore[assignment]
    return analyse_stored(config, name, device=device, store=store, progress=progress)  # type: ignore[arg-type]
