"""Hyperparameter search (chapter 8): the grid design, the hit-probability formula, the
objective's determinism, and a search that is killed and resumed."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from learntolearn.analysis.random_search import hit_probability, simulated_hits, trials_needed
from learntolearn.catalogue.search import search_config
from learntolearn.experiments.runner import MissingResultError
from learntolearn.fewshot.config import ConfigError
from learntolearn.search import space as search_space
from learntolearn.search import studies as search_runs
from learntolearn.search.space import SPACE, SearchConfig, grid, grid_levels, score

TINY = SearchConfig(
    profile="smoke",
    steps=3,
    train_images=200,
    validation_images=100,
    trials=4,
    repeats=1,
    population=3,
    tpe_startup=2,
)
GOOD = {"lr": 0.5, "momentum": 0.5, "init_std": 0.05, "hidden": 8, "weight_decay": 1e-5}


@pytest.fixture
def digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small synthetic 'MNIST' (random images and labels): the search's code paths without
    the data set."""
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(300, 784, generator=g), torch.randint(10, (300,), generator=g)
    monkeypatch.setattr(search_space, "flat_digits", lambda train: (images, labels))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LEARNTOLEARN_SEARCH", raising=False)
    monkeypatch.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
    return tmp_path


def test_grid_levels_double_in_turn_and_sit_at_cell_centres() -> None:
    assert grid_levels(1) == [1, 1, 1, 1, 1]
    assert grid_levels(8) == [2, 2, 2, 1, 1]
    assert grid_levels(32) == [2, 2, 2, 2, 2]
    assert grid_levels(128) == [4, 4, 2, 2, 2]
    g = grid(8)
    assert g["lr"] == pytest.approx([1e-3 * 10 ** (4 * 0.25), 1e-3 * 10 ** (4 * 0.75)])
    assert g["momentum"] == pytest.approx([0.2475, 0.7425])
    assert g["hidden"] == [round((8 * 64) ** 0.5)]  # one level: the centre, in log scale
    with pytest.raises(ConfigError, match="power of two"):
        grid_levels(12)


def test_bad_search_configs_are_refused_with_one_line() -> None:
    with pytest.raises(ConfigError, match="power of two"):
        replace(TINY, trials=6)
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        replace(TINY, steps=0)
    with pytest.raises(ConfigError, match="profile 'fast' is unknown"):
        search_config("fast")
    # no paper protocol: the paper profile is the cpu search, one key
    assert search_config("paper") == search_config("cpu")


def test_hit_probability_gives_the_lecture_numbers() -> None:
    assert trials_needed(10, 1000, 0.9) == 230
    assert trials_needed(100, 1000, 0.9) == 22
    assert hit_probability(10, 1000, 230) > 0.9 > hit_probability(10, 1000, 229)
    assert hit_probability(100, 1000, 22) > 0.9 > hit_probability(100, 1000, 21)
    assert trials_needed(5, 5, 0.99) == 1
    with pytest.raises(ValueError, match="0 < k <= n"):
        hit_probability(0, 10, 3)


def test_simulated_hits_agree_with_the_formula() -> None:
    values = np.random.default_rng(1).normal(size=1000)
    xs = [1, 5, 22, 100, 230]
    for k in (10, 100):
        sim = simulated_hits(values, k, xs, repeats=20_000, seed=0)
        # binomial standard error of 20,000 searches is at most 0.0036: 5 of them
        assert np.max(np.abs(sim - hit_probability(k, 1000, np.array(xs)))) < 0.018
    again = simulated_hits(values, 10, xs, repeats=20_000, seed=0)
    assert np.array_equal(again, simulated_hits(values, 10, xs, repeats=20_000, seed=0))


def test_score_is_deterministic_and_a_diverged_run_scores_chance(digits: None) -> None:
    torch.set_num_threads(1)
    a, b = score(TINY, GOOD), score(TINY, GOOD)
    assert a == b and not a.diverged and 0 <= a.error <= 1
    blown = score(TINY, {**GOOD, "lr": 1e30, "init_std": 1.0})
    assert blown.diverged and blown.error == search_space.CHANCE_ERROR


def _trials(path: Path) -> dict:
    studies = json.loads((path / "metrics.json").read_text())["studies"]
    return {k: (v["values"], v["params"]) for k, v in studies.items()}


@pytest.fixture
def whole(digits: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny search run without interruption, in a store of its own."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("LEARNTOLEARN_RESULTS", str(tmp_path_factory.mktemp("whole") / "results"))
        m.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
        return _trials(search_runs.run_search(TINY, progress=False))


def test_every_grid_point_is_run_once(whole: dict) -> None:
    assert set(whole) == {s.name for s in search_runs.studies(TINY)}
    for b in TINY.budgets:
        values, params = whole[f"grid-{b}"]
        points = {tuple(params[h.name][i] for h in SPACE) for i in range(b)}
        assert len(values) == len(points) == b
        assert points == {tuple(p.values()) for p in search_runs.grid_points(TINY, b)}
    assert len(whole["tpe-0"][0]) == TINY.trials


# the 3rd call is inside the 4-point grid, the 6th inside a random search, the 11th inside TPE
@pytest.mark.parametrize("killed_at", [3, 6, 11])
def test_a_killed_search_resumes_to_the_same_trials(
    whole: dict, store: Path, monkeypatch: pytest.MonkeyPatch, killed_at: int
) -> None:
    calls, real = [0], search_space.score

    def dies(config: SearchConfig, setting: dict) -> search_space.Outcome:
        calls[0] += 1
        if calls[0] == killed_at:
            raise KeyboardInterrupt
        return real(config, setting)

    monkeypatch.setattr(search_runs, "score", dies)
    with pytest.raises(KeyboardInterrupt):
        search_runs.run_search(TINY, progress=False)
    # and a trial left running, as by a process killed outright
    storage = search_runs._storage(TINY)
    for name in ("random-0", "grid-2"):
        optuna.create_study(
            study_name=name, storage=storage, direction="minimize", load_if_exists=True
        ).ask()
    monkeypatch.setattr(search_runs, "score", real)
    assert not search_runs.summary_path(TINY).exists()
    assert _trials(search_runs.run_search(TINY, progress=False)) == whole


def test_no_train_refuses_a_missing_summary(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNTOLEARN_NO_TRAIN", "1")
    with pytest.raises(MissingResultError, match="learntolearn search --profile smoke"):
        search_runs.load_summary(TINY)


@pytest.mark.slow
def test_parallel_processes_give_the_serial_trials(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes sharing the SQLite store (real MNIST: the spawned workers read it)."""
    from tests.test_mnist import shared_data

    data = shared_data()
    if not (data / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("no MNIST copy")
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(data))
    config = replace(TINY, trials=2, population=2)
    parallel = _trials(search_runs.run_search(config, workers=2, progress=False))
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(store / "serial" / "results"))
    assert _trials(search_runs.run_search(config, workers=1, progress=False)) == parallel


def test_a_search_past_its_deadline_stops_and_the_command_continues_it(
    digits: None, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from learntolearn.cli import main

    assert search_runs.run_search(TINY, progress=False, deadline=time.monotonic() - 1) is None
    assert not search_runs.summary_path(TINY).exists()
    monkeypatch.setattr("learntolearn.catalogue.search.search_config", lambda profile: TINY)
    assert main(["search", "--profile", "smoke", "--quiet"]) == 0
    assert f"summary: {search_runs.summary_path(TINY)}" in capsys.readouterr().out
    summary = search_runs.load_summary(TINY, compute=False)
    assert [s["workers"] for s in summary["provenance"]["sittings"]] == [1, 1]


def test_reproduce_plans_and_runs_the_search(
    digits: None, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from learntolearn.cli import main

    monkeypatch.setattr("learntolearn.catalogue.entries.search_config", lambda profile: TINY)
    args = ["reproduce", "--profile", "smoke", "--chapter", "09_hyperparameter_search"]
    assert main([*args, "--plan"]) == 0
    assert "search/mnist-mlp             18 trials" in capsys.readouterr().out
    assert not search_runs.summary_path(TINY).exists()
    assert main([*args, "--quiet"]) == 0
    assert search_runs.summary_path(TINY).is_dir()
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out


# --- bad input (issue 21) ----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "folder"])
def test_a_damaged_trial_store_is_named_in_one_line(
    digits: None, store: Path, damage: str, capsys: pytest.CaptureFixture
) -> None:
    config = replace(TINY, trials=1, repeats=1, population=1)
    path = search_runs._folder(config) / "trials.db"
    if damage == "truncated":
        search_runs.run_search(config, progress=False, deadline=time.monotonic() + 60)
        shutil.rmtree(search_runs.summary_path(config))
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(b"not a database" * 100)
    else:
        path.mkdir(parents=True)
    with pytest.raises(search_runs.StudyStoreError, match="not a readable Optuna trial store"):
        search_runs.run_search(config, progress=False)


def test_a_truncated_summary_is_planned_again_not_called_stored(
    digits: None, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from learntolearn.cli import main

    path = search_runs.run_search(TINY, progress=False) / "metrics.json"
    path.write_text(path.read_text()[:200])
    monkeypatch.setattr("learntolearn.catalogue.entries.search_config", lambda profile: TINY)
    args = ["reproduce", "--profile", "smoke", "--chapter", "09_hyperparameter_search", "--plan"]
    assert main(args) == 0
    assert "nothing to do" not in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"metrics\.json has SHA-256"):
        search_runs.load_summary(TINY, compute=False)


def test_a_finished_search_is_not_rewritten(digits: None, store: Path) -> None:
    path = search_runs.run_search(TINY, progress=False) / "provenance.json"
    before = path.read_bytes()
    time.sleep(1.1)  # a rewrite would record another date
    assert search_runs.run_search(TINY, progress=False) == path.parent
    assert path.read_bytes() == before


def test_a_flat_summary_moves_into_a_result_folder(digits: None, store: Path) -> None:
    """The one-time migration of a summary stored as <key>.json, as before the engine's store."""
    folder = search_runs.run_search(TINY, progress=False)
    summary = search_runs.load_summary(TINY, compute=False)
    shutil.rmtree(folder)
    flat = folder.parent / f"{TINY.key}.json"
    flat.write_text(json.dumps(summary))
    assert search_runs.SearchStore(folder.parent).migrate_flat_summaries() == [folder]
    assert not flat.exists()
    assert search_runs.load_summary(TINY, compute=False) == summary


def test_a_study_another_process_holds_is_refused_at_once(digits: None, store: Path) -> None:
    from learntolearn.io import training_lock

    study = search_runs.studies(TINY)[0]
    lock = search_runs._folder(TINY) / f"{study.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with training_lock(lock, "another process"):
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="search study"):
            search_runs.run_search(TINY, workers=2, progress=False)
        assert time.monotonic() - start < 5
