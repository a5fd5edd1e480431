"""The searches of chapter 9, run with Optuna into their own trial store, resumably.

Every search is an Optuna study in one SQLite file (Optuna's RDB storage, so the same code runs
against a PostgreSQL server by changing the URL): full grids of 1, 2, 4, … points,
``repeats`` seeded random searches (``RandomSampler``) and TPE searches (``TPESampler``,
Bergstra et al. 2011), and one random population for the hit-probability check. Studies run as
parallel processes that share the file; each study belongs to one process at a time (a lock),
so that its trials come in a reproducible order.

Resuming: the sampler is re-created before every trial with a seed derived from the study and
the trial's index among the completed ones, and the objective is deterministic, so a search
killed after trial 40 and rerun gives the same 128 trials as one that never stopped. A trial
left running by a killed process is marked failed and run again. A grid's points are
enumerated here (:func:`~learntolearn.search.space.grid`, in a fixed order) and
each is added to its study once trained, as a complete trial: Optuna's ``GridSampler`` hands
out points by trial number, so a failed trial would leave a hole in a resumed grid.

The trial store (``results-search/<key>/trials.db``, never committed) is the working copy; the
summary the chapter reads (``results/search/<key>.json``: every trial's value and setting, in
order, with provenance) is written once every study is complete.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import sqlite3
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy.exc
import torch
from tqdm import TqdmWarning, tqdm

from learntolearn.analysis.random_search import best_so_far
from learntolearn.experiments import provenance
from learntolearn.experiments.device import cpu_numerics
from learntolearn.experiments.runner import MissingResultError
from learntolearn.experiments.store import Layout, Store, Stored, check_writable_folder
from learntolearn.io import load_json, save_json, training_lock
from learntolearn.paths import results_dir, search_trials_dir
from learntolearn.search.space import Hyperparameter, SearchConfig, grid, score

with warnings.catch_warnings():  # optuna imports tqdm.auto, which warns in a bare kernel
    warnings.simplefilter("ignore", TqdmWarning)
    import optuna

__all__ = [
    "FOLDER",
    "SearchResult",
    "SearchStore",
    "Study",
    "efficiency",
    "grid_best",
    "grid_points",
    "load_summary",
    "run_search",
    "studies",
    "summarise",
]

FOLDER = "search"  # of the results store: the committed summaries

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Study:
    """One search: its sampler (``grid``, ``random``, ``tpe`` or ``population``), its seed (or
    grid size) and its number of trials."""

    sampler: str
    index: int
    trials: int

    @property
    def name(self) -> str:
        return f"{self.sampler}-{self.index}"


def studies(config: SearchConfig) -> list[Study]:
    """Every study of the search, the longest first (for a parallel pool)."""
    out = [Study("grid", b, b) for b in config.budgets]
    for r in range(config.repeats):
        out += [Study("random", r, config.trials), Study("tpe", r, config.trials)]
    out.append(Study("population", 0, config.population))
    return sorted(out, key=lambda s: (-s.trials, s.name))


def _folder(config: SearchConfig) -> Path:
    return search_trials_dir(config.profile) / config.key


def _storage(config: SearchConfig) -> optuna.storages.RDBStorage:
    """The search's Optuna trial store; one that cannot be read is a clear error naming it."""
    path = _folder(config) / "trials.db"
    check_writable_folder(path.parent, "LEARNTOLEARN_SEARCH (the trial store)")
    damaged = (
        f"{path} is not a readable Optuna trial store; delete it (the search starts again "
        "from its first trial) or restore it from a copy"
    )
    if path.exists() and not path.is_file():
        raise StudyStoreError(f"{damaged}: it is not a file")
    try:
        # a writer waits for the other processes' transactions instead of failing at once
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 120}}
        )
        storage.get_all_studies()  # reads the file now, not in the middle of a search
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, OSError) as err:
        raise StudyStoreError(f"{damaged} ({type(err).__name__})") from err
    return storage


class StudyStoreError(ValueError):
    """The trial store of a search cannot be read."""


def _seed(config: SearchConfig, study: Study, i: int) -> int:
    digest = hashlib.sha256(f"{config.seed}/{study.name}/{i}".encode()).hexdigest()
    return int(digest[:8], 16)


def _sampler(config: SearchConfig, study: Study, i: int) -> optuna.samplers.BaseSampler:
    """The sampler for the study's ``i``-th completed trial (seeded by the study and ``i``)."""
    seed = _seed(config, study, i)
    if study.sampler == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=config.tpe_startup, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _distribution(h: Hyperparameter) -> optuna.distributions.BaseDistribution:
    if h.integer:
        return optuna.distributions.IntDistribution(int(h.low), int(h.high), log=h.log)
    return optuna.distributions.FloatDistribution(h.low, h.high, log=h.log)


def _suggest(trial: optuna.Trial, h: Hyperparameter) -> float | int:
    if h.integer:
        return trial.suggest_int(h.name, int(h.low), int(h.high), log=h.log)
    return trial.suggest_float(h.name, h.low, h.high, log=h.log)


def grid_points(config: SearchConfig, budget: int) -> list[dict[str, float | int]]:
    """The settings of the ``budget``-point grid, in a fixed order (the first hyperparameter
    varies slowest)."""
    values = grid(budget, config.hyperparameters)
    return [dict(zip(values, p, strict=True)) for p in itertools.product(*values.values())]


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    done = optuna.trial.TrialState.COMPLETE
    return sorted(study.get_trials(deepcopy=False, states=(done,)), key=lambda t: t.number)


def run_study(config: SearchConfig, study: Study, deadline: float | None = None) -> int:
    """Run ``study`` to its number of trials (resuming a partial one), or until ``deadline`` (a
    :func:`time.monotonic` time, one clock for every process of the machine) passes; returns
    the trials run now."""
    cpu_numerics(torch.device("cpu"))
    storage = _storage(config)
    lock = _folder(config) / f"{study.name}.lock"
    with training_lock(lock, _lock_name(config, study)):
        s = optuna.create_study(
            study_name=study.name, storage=storage, direction="minimize", load_if_exists=True
        )
        for t in s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # left running by a killed process (we hold the lock): run it again
            storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        start = len(_complete(s))

        def evaluate(setting: dict[str, float | int]) -> tuple[float, dict[str, Any]]:
            begun = time.perf_counter()
            outcome = score(config, setting)
            attrs = {
                "loss": outcome.loss if outcome.loss < float("inf") else None,
                "diverged": outcome.diverged,
                "seconds": round(time.perf_counter() - begun, 3),
            }
            return outcome.error, attrs

        def objective(trial: optuna.Trial) -> float:
            value, attrs = evaluate({h.name: _suggest(trial, h) for h in config.hyperparameters})
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            return value

        points = grid_points(config, study.index) if study.sampler == "grid" else []
        for i in range(start, study.trials):
            if deadline is not None and time.monotonic() >= deadline:
                return i - start
            if points:  # a grid point: trained, then stored as a complete trial
                value, attrs = evaluate(points[i])
                distributions = {h.name: _distribution(h) for h in config.hyperparameters}
                s.add_trial(
                    optuna.trial.create_trial(
                        params=points[i],
                        distributions=distributions,
                        value=value,
                        user_attrs=attrs,
                    )
                )
                continue
            s.sampler = _sampler(config, study, i)
            s.optimize(objective, n_trials=1, catch=())
        return study.trials - start


def _remaining(config: SearchConfig) -> list[Study]:
    """The studies with fewer complete trials than they need (counted, not read)."""
    storage = _storage(config)
    names = {s.study_name for s in storage.get_all_studies()}
    done = optuna.trial.TrialState.COMPLETE
    return [
        study
        for study in studies(config)
        if study.name not in names
        or storage.get_n_trials(storage.get_study_id_from_name(study.name), state=done)
        < study.trials
    ]


def _run_one(config: SearchConfig, study: Study, deadline: float | None) -> int:
    torch.set_num_threads(1)
    return run_study(config, study, deadline)


def run_search(
    config: SearchConfig,
    *,
    workers: int = 1,
    progress: bool = True,
    deadline: float | None = None,
) -> Path | None:
    """Run every study not yet complete (``workers`` processes, at most one per core and per
    study), then write the summary; with ``deadline`` (a :func:`time.monotonic` time), stop
    starting trials once it passes and return None if studies are left (the next call resumes
    them). A summary stored already is returned as it is (not rewritten)."""
    path = summary_path(config)
    if _store(config).get(config) is not None:
        return path
    save_json(_folder(config) / "config.json", config.to_dict())
    git, begun, started = provenance.git_state(), time.perf_counter(), time.time()
    left = _remaining(config)
    for study in left:  # a study another process holds is refused now, not after minutes
        with training_lock(_folder(config) / f"{study.name}.lock", _lock_name(config, study)):
            pass
    workers = max(1, min(workers, len(left), os.cpu_count() or 1))
    bar = tqdm(total=len(left), desc=f"search {config.profile}", unit="study", disable=not progress)
    try:
        if workers <= 1:
            for study in left:
                _run_one(config, study, deadline)
                bar.update()
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                jobs = [pool.submit(_run_one, config, study, deadline) for study in left]
                for job in as_completed(jobs):
                    job.result()
                    bar.update()
    finally:
        bar.close()
        sittings = _folder(config) / "sittings.json"
        record = {**git, "started": started, "wall_time_s": round(time.perf_counter() - begun, 2)}
        past = load_json(sittings) if sittings.is_file() else []
        save_json(sittings, [*past, {**record, "workers": workers}])
    if _remaining(config):
        return None
    return summarise(config)


def _lock_name(config: SearchConfig, study: Study) -> str:
    return f"search study {study.name} of {config.key}"


def summarise(config: SearchConfig) -> Path:
    """Write the committed summary: per study, the completed trials in order, with the
    provenance of the last sitting and the wall time of all of them."""
    storage = _storage(config)
    out: dict[str, Any] = {}
    for study in studies(config):
        trials = _complete(optuna.load_study(study_name=study.name, storage=storage))
        if len(trials) < study.trials:
            raise RuntimeError(f"study {study.name} has {len(trials)} of {study.trials} trials")
        trials = trials[: study.trials]
        out[study.name] = {
            "values": [t.value for t in trials],
            "params": {h.name: [t.params[h.name] for t in trials] for h in config.hyperparameters},
            "diverged": [bool(t.user_attrs["diverged"]) for t in trials],
            "seconds": [t.user_attrs["seconds"] for t in trials],
        }
    sittings = load_json(_folder(config) / "sittings.json")
    last = sittings[-1]
    made = provenance.collect(
        torch.device("cpu"),
        sum(s["wall_time_s"] for s in sittings),
        {k: last[k] for k in ("commit", "dirty") if k in last},
    )
    # every trial runs on one thread, in a worker process or in this one
    made.update(workers=max(s["workers"] for s in sittings), sittings=sittings, threads=1)
    return _store(config).save(config, {"studies": out}, made, None).path


@dataclass(frozen=True)
class SearchResult(Stored):
    """A stored search: every study's trials (``metrics["studies"]``) and its provenance."""

    config: SearchConfig

    @property
    def summary(self) -> dict[str, Any]:
        """What the chapter reads: the config, the studies and the provenance together."""
        return {
            "config": self.config.to_dict(),
            "studies": self.metrics["studies"],
            "provenance": self.provenance,
        }


LAYOUT = Layout(SearchConfig, None, SearchResult)


class SearchStore(Store[SearchResult]):
    """The searches' summaries under ``root`` (the ``search/`` folder of a store): the engine's
    store, with no tensor file; the trials themselves stay in the Optuna trial store."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, LAYOUT)

    def migrate_flat_summaries(self) -> list[Path]:
        """Migration (once): a summary stored as ``<key>.json`` (before searches used this
        store) becomes the result folder ``<key>/``, with its checksums; returns them."""
        moved = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            old = load_json(path)
            config = SearchConfig.from_dict(old["config"])
            if config.key != path.stem:
                raise ValueError(f"{path} holds the summary of {config.key}, not {path.stem}")
            moved.append(
                self.save(config, {"studies": old["studies"]}, old["provenance"], None).path
            )
            path.unlink()
        return moved


def _store(config: SearchConfig) -> SearchStore:
    return SearchStore(results_dir(config.profile) / FOLDER)


def summary_path(config: SearchConfig) -> Path:
    """The search's result folder (``config.json``, ``metrics.json``, ``provenance.json``)."""
    return _store(config).path(config)


def load_summary(
    config: SearchConfig,
    *,
    workers: int = 1,
    progress: bool = False,
    deadline: float | None = None,
    compute: bool = True,
) -> dict | None:
    """The stored summary of ``config``'s search, or run the search (resuming) and store it;
    None when ``deadline`` (a :func:`time.monotonic` time) passed first. ``compute=False``
    only reads (a :class:`FileNotFoundError` when there is none). A summary that is not the
    whole record of this search is a :class:`ValueError` naming the file."""
    path = summary_path(config)
    if not path.is_dir():
        if not compute:
            raise FileNotFoundError(f"no stored search summary {path}")
        if os.environ.get("LEARNTOLEARN_NO_TRAIN"):
            raise MissingResultError(
                f"no stored search summary {path}, and LEARNTOLEARN_NO_TRAIN is set; run "
                f"`python -m learntolearn search --profile {config.profile}`"
            )
        if run_search(config, workers=workers, progress=progress, deadline=deadline) is None:
            return None
    remedy = "delete it to recompute it from the trial store, or restore it from git"
    stored = _store(config).get(config)  # every file verified against its checksum
    assert stored is not None
    summary = stored.summary
    found = summary.get("studies")
    for study in studies(config):
        record = found.get(study.name) if isinstance(found, dict) else None
        values = record.get("values") if isinstance(record, dict) else None
        if not isinstance(values, list) or len(values) != study.trials:
            raise ValueError(
                f"{path} lacks the {study.trials} trials of study {study.name}; {remedy}"
            )
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ValueError(
                f"{path}: study {study.name} has a value that is not a finite number; {remedy}"
            )
    return summary


def efficiency(summary: dict, sampler: str) -> np.ndarray:
    """Best value so far ``[repeats, trials]`` of every seeded search with ``sampler``."""
    runs = sorted(
        (int(name.rsplit("-", 1)[1]), s["values"])
        for name, s in summary["studies"].items()
        if name.rsplit("-", 1)[0] == sampler
    )
    return np.stack([best_so_far(v) for _, v in runs])


def grid_best(summary: dict) -> dict[int, float]:
    """The best value of each full grid, by its number of points."""
    grids = {
        int(name.rsplit("-", 1)[1]): min(s["values"])
        for name, s in summary["studies"].items()
        if name.startswith("grid-")
    }
    return dict(sorted(grids.items()))
