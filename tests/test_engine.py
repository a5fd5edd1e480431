"""The engine every kind shares (issue 21): one spec base, one store with every file
checksummed, one entry point, one clock; and the bad inputs the engine's side refuses."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from learntolearn.catalogue import experiment, names, run, store_for
from learntolearn.catalogue.learned_optimizers import optimizer_experiment
from learntolearn.cli import main
from learntolearn.data.verified import DataError
from learntolearn.experiments.spec import PROFILES, ConfigError
from learntolearn.experiments.store import CHECKSUMS, DamagedResultError
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.store import ResultStore
from learntolearn.learned_optimizers.config import OptimizerConfig
from learntolearn.search.space import SearchConfig

pytestmark = pytest.mark.usefixtures("isolated_store")


def oracle() -> ExperimentConfig:
    return experiment("sinusoid/oracle", "smoke").with_(iterations=5, eval_tasks=10)


def quadratic() -> OptimizerConfig:
    return replace(optimizer_experiment("l2l/quadratic", "smoke"), iterations=1, eval_problems=2)


# --- one spec base -----------------------------------------------------------------------


def test_every_kind_is_a_spec_with_a_key_and_a_json_round_trip():
    for profile in PROFILES:
        for name in names():
            spec = experiment(name, profile)
            again = type(spec).from_dict(json.loads(json.dumps(spec.to_dict())))
            assert again == spec and again.key == spec.key
            assert spec.key.startswith(f"{name.replace('/', '-')}-{spec.profile}-")


@pytest.mark.parametrize(
    ("make", "field", "value"),
    [
        (oracle, "iterations", True),  # a bool is not the number of iterations 1
        (quadratic, "iterations", True),
        (quadratic, "lr_grid", (0.1, math.nan)),
        (quadratic, "meta_lr", math.inf),
        (quadratic, "second_order", 1),
        (oracle, "meta_lr", math.nan),
        (oracle, "eval_lrs", (math.nan,)),
    ],
)
def test_a_bad_field_is_named_in_one_line(make, field, value):
    with pytest.raises(ConfigError, match=field) as err:
        replace(make(), **{field: value})
    assert "\n" not in str(err.value)


def test_a_method_field_is_checked_by_its_table_entry():
    maml = experiment("omniglot/maml-5w1s", "smoke")
    with pytest.raises(ConfigError, match="inner_lr must be a positive number"):
        maml.with_(inner_lr=-1.0)
    with pytest.raises(ConfigError, match="distance do"):
        maml.with_(distance="cosine")  # a field another method owns
    with pytest.raises(ConfigError, match="distance must be 'euclidean' or 'cosine'"):
        experiment("omniglot/protonet-5w1s", "smoke").with_(distance="manhattan")


def test_from_dict_names_what_is_missing_or_unknown():
    with pytest.raises(ConfigError, match="missing required field"):
        OptimizerConfig.from_dict({"name": "l2l/x", "profile": "smoke"})
    with pytest.raises(ConfigError, match="unknown search config field"):
        SearchConfig.from_dict({"nope": 1})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        ExperimentConfig.from_dict([1, 2])


# --- one store, every file checksummed ------------------------------------------------------


def test_a_nan_planted_in_stored_metrics_is_refused(tmp_path, capsys):
    cfg = oracle()
    result = run(cfg, device="cpu", progress=False)
    path = result.path / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["eval"]["full"]["5"]["mean"][0] = math.nan
    path.write_text(json.dumps(metrics))
    with pytest.raises(DamagedResultError, match=r"metrics\.json has SHA-256"):
        store_for(cfg).get(cfg)
    config_file = tmp_path / "oracle.json"
    config_file.write_text(json.dumps(cfg.to_dict()))
    assert main(["train", str(config_file), "--quiet"]) == 2
    assert main(["list", "-v"]) == 1
    assert "damaged" in capsys.readouterr().err


def test_a_learned_optimizers_metrics_are_checksummed_too():
    cfg = quadratic()
    result = run(cfg, device="cpu", progress=False)
    assert (result.path / CHECKSUMS).is_file()
    path = result.path / "metrics.json"
    path.write_text(path.read_text().replace('"problems": 2', '"problems": 3', 1))
    with pytest.raises(DamagedResultError, match=r"metrics\.json"):
        store_for(cfg).get(cfg)


def test_the_migration_checksums_old_folders_and_leaves_bad_ones(tmp_path):
    cfg = oracle()
    result = run(cfg, device="cpu", progress=False)
    store = ResultStore(result.path.parent)
    other = result.path.parent / cfg.with_(seed=1).key
    shutil.copytree(result.path, other)
    (other / "config.json").write_text(json.dumps(cfg.with_(seed=1).to_dict()))
    for folder in (result.path, other):
        (folder / CHECKSUMS).unlink()
    (other / "model.pt").write_bytes(b"damaged")  # no longer the recorded model
    assert store.add_checksums() == [result.path]
    assert store.get(cfg) is not None
    assert not (other / CHECKSUMS).exists()


def test_a_users_own_folder_in_the_store_is_left_alone(capsys):
    run(oracle(), device="cpu", progress=False)
    own = store_for(oracle()).root / "my-notes"
    own.mkdir()
    (own / "todo.txt").write_text("read Finn et al.")
    assert main(["list"]) == 0
    assert "my-notes" not in capsys.readouterr().err


# --- one entry point and one clock ----------------------------------------------------------


def test_train_works_for_every_kind(capsys):
    assert main(["train", "l2l/quadratic", "--profile", "smoke", "--quiet"]) == 0
    assert "final loss" in capsys.readouterr().out
    assert main(["train-optimizer", "l2l/quadratic", "--profile", "smoke", "--quiet"]) == 0


def test_a_deadline_in_the_past_stops_a_learned_optimizer_and_stores_nothing():
    cfg = replace(quadratic(), iterations=3)
    with pytest.raises(InterruptedError, match="stopped at 0/3"):
        run(cfg, device="cpu", progress=False, deadline=time.monotonic() - 1)
    assert store_for(cfg).get(cfg) is None


@pytest.mark.parametrize("budget", ["-5m", "-1"])
def test_a_negative_budget_is_named(budget, capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--profile", "smoke", "--plan", "--budget", budget])
    assert "time budget" in capsys.readouterr().err


def test_an_analysis_that_does_not_apply_is_refused_before_training(capsys):
    assert main(["analyse", "feature_reuse", "sinusoid/maml-k5", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "feature_reuse analyses a MAML or ANIL classifier" in err
    assert not Path(store_for(experiment("sinusoid/maml-k5", "smoke")).root).exists()


@pytest.mark.parametrize("n_way", [2000, 10**12])
def test_a_way_the_test_split_cannot_give_is_refused_before_training(
    n_way, real_env_vars, monkeypatch
):
    for key, value in real_env_vars.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("learntolearn.fewshot.runs.train", lambda *a, **k: pytest.fail("trained"))
    cfg = experiment("omniglot/protonet-5w1s", "smoke").with_(n_way=n_way, train_way=5)
    with pytest.raises(DataError, match=f"{n_way}-way tasks need {n_way} classes; it has 1692"):
        run(cfg, device="cpu", progress=False)
    assert not store_for(cfg).checkpoint_path(cfg).exists()


def test_a_truncated_lake_archive_is_refused_before_training(real_env_vars, tmp_path, monkeypatch):
    data = tmp_path / "data" / "omniglot"
    shutil.copytree(Path(real_env_vars["LEARNTOLEARN_DATA"]) / "omniglot", data)
    runs = data / "one-shot-classification" / "all_runs.zip"
    runs.write_bytes(runs.read_bytes()[:5000])
    sums = runs.parent / "SHA256SUMS"
    if sums.exists():
        sums.unlink()
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", real_env_vars["LEARNTOLEARN_CACHE"])
    monkeypatch.setattr("learntolearn.fewshot.runs.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(DataError, match=r"all_runs\.zip"):
        run(experiment("omniglot/siamese-lake", "smoke"), device="cpu", progress=False)
