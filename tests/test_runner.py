"""The experiment runner: stable keys, the store, exact resumption, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from learntolearn.catalogue import experiment, names, run, store_for
from learntolearn.cli import main
from learntolearn.experiments.runner import MissingResultError
from learntolearn.fewshot.config import ConfigError, ExperimentConfig
from learntolearn.fewshot.store import ResultStore

pytestmark = pytest.mark.usefixtures("isolated_store")


def tiny(**changes) -> ExperimentConfig:
    base = experiment("sinusoid/maml-k5", "smoke").with_(
        iterations=30, eval_tasks=20, monitor_every=10
    )
    return base.with_(**changes)


def same_params(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_keys_are_stable_and_sensitive():
    a = experiment("sinusoid/maml-k10", "paper")
    assert a.key == experiment("sinusoid/maml-k10", "paper").key
    assert a.key == ExperimentConfig.from_dict(json.loads(json.dumps(a.to_dict()))).key
    assert a.key != a.with_(inner_lr=0.02).key != a.with_(seed=1).key
    every = [experiment(n, p) for n in names() for p in ("smoke", "cpu", "paper")]
    distinct = {(type(c).__name__, json.dumps(c.to_dict(), sort_keys=True)) for c in every}
    assert len({c.key for c in every}) == len(distinct)  # (the search's paper is its cpu)
    for c in every:  # what the store writes reads back as the same experiment
        assert type(c).from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_paper_profile_is_the_papers_protocol():
    c = experiment("sinusoid/maml-k10", "paper")
    assert (c.iterations, c.meta_batch, c.inner_lr, c.meta_lr, c.inner_steps) == (
        70_000,
        25,
        0.01,
        1e-3,
        1,
    )
    assert c.hidden == (40, 40) and c.first_order is False and c.eval_tasks >= 600


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "nope"}, "method 'nope' is unknown"),
        ({"method": "reptile", "first_order": None}, "reptile needs inner_batch"),
        ({"inner_params": "head"}, "applies to classifiers only"),
        ({"meta_lr_final": 0.0}, "meta_lr_final do\\(es\\) not apply to 'maml'"),
        ({"inner_optimizer": "rmsprop"}, "inner_optimizer do"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"inner_lr": None}, "maml needs inner_lr"),
        ({"eval_lrs": (0.1,)}, "equal length"),
        ({"profile": "huge"}, "profile 'huge' is unknown"),
        ({"k_shot": 2.5}, "k_shot must be a positive integer"),
    ],
)
def test_bad_configs_name_the_problem(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**changes)


def test_unknown_field_and_bad_file(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['lr'\]"):
        ExperimentConfig.from_dict({**tiny().to_dict(), "lr": 1.0})
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "method": "maml"')  # truncated JSON
    assert main(["train", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_run_stores_then_loads_without_training(monkeypatch):
    cfg = tiny()
    first = run(cfg, progress=False)
    assert (first.path / "model.pt").is_file() and first.provenance["wall_time_s"] >= 0
    assert set(first.provenance) >= {"commit", "device", "torch", "date", "wall_time_s"}
    monkeypatch.setenv("LEARNTOLEARN_NO_TRAIN", "1")  # a second run must not train
    again = run(cfg, progress=False)
    assert again.metrics == first.metrics and same_params(again.params(), first.params())
    assert first.metrics["train"]["cost"]["saved_bytes"] > 0
    with pytest.raises(MissingResultError, match="LEARNTOLEARN_NO_TRAIN"):
        run(cfg.with_(seed=5), progress=False)


def test_a_new_evaluation_protocol_reuses_the_trained_parameters(monkeypatch):
    """Configs that differ in evaluation fields alone train identically: train once."""
    cfg = tiny()
    first = run(cfg, progress=False)
    other = cfg.with_(eval_tasks=12, eval_steps=3)
    assert other.key != cfg.key and other.training_key == cfg.training_key
    assert cfg.with_(seed=3).training_key != cfg.training_key
    import learntolearn.fewshot.runs as runner

    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("trained again"))
    second = run(other, progress=False)
    assert same_params(second.params(), first.params())
    assert second.provenance["trained_as"] == first.key
    assert second.metrics["train"] == first.metrics["train"]
    assert len(second.metrics["eval"]["full"]["5"]["mean"]) == 4


def test_training_is_deterministic(tmp_path):
    cfg = tiny()
    a = run(cfg, progress=False, store=ResultStore(tmp_path / "a"))
    b = run(cfg, progress=False, store=ResultStore(tmp_path / "b"))
    assert same_params(a.params(), b.params())
    assert (
        a.metrics["eval"] == b.metrics["eval"]
        and a.metrics["train"]["monitor"] == b.metrics["train"]["monitor"]
    )


@pytest.mark.parametrize("stop", [7, 20])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, stop):
    cfg = tiny()
    whole = run(cfg, progress=False, store=ResultStore(tmp_path / "whole"), checkpoint_every=10)
    store = ResultStore(tmp_path / "resumed")
    with pytest.raises(InterruptedError, match="resume"):
        run(cfg, progress=False, store=store, checkpoint_every=10, stop_after=stop)
    assert store.get(cfg) is None
    resumed = run(cfg, progress=False, store=store, checkpoint_every=10)
    assert same_params(resumed.params(), whole.params())
    drop_timing = lambda m: {**m, "train": {**m["train"], "cost": None}}  # noqa: E731
    assert drop_timing(resumed.metrics) == drop_timing(whole.metrics)
    assert [m["iteration"] for m in whole.metrics["train"]["monitor"]] == [0, 10, 20, 30]


def test_truncated_checkpoint_is_reported(tmp_path):
    cfg = tiny()
    store = ResultStore(tmp_path / "s")
    with pytest.raises(InterruptedError):
        run(cfg, progress=False, store=store, checkpoint_every=10, stop_after=15)
    ckpt = store.checkpoint_path(cfg)
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated, damaged"):
        run(cfg, progress=False, store=store)
    assert ckpt.stat().st_size == 100  # the evidence is kept, nothing is deleted behind the user


def test_damaged_result_folder_is_reported(tmp_path):
    cfg = tiny()
    store = ResultStore(tmp_path / "s")
    result = run(cfg, progress=False, store=store)
    (result.path / "metrics.json").write_text("{")
    with pytest.raises(ValueError, match=r"metrics\.json has SHA-256"):
        store.get(cfg)
    (result.path / "model.pt").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        store.get(cfg)


def test_store_never_overwrites(tmp_path):
    cfg = tiny()
    store = ResultStore(tmp_path / "s")
    result = run(cfg, progress=False, store=store)
    with pytest.raises(FileExistsError):
        store.save(cfg, result.metrics, result.provenance, result.params())


def test_cli_train_list_evaluate(capsys):
    assert main(["train", "sinusoid/oracle", "--profile", "smoke", "--quiet"]) == 0
    assert "full K= 5 mse after steps 0: " in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "sinusoid-oracle-smoke" in capsys.readouterr().out
    assert main(["evaluate", "sinusoid/oracle", "--profile", "smoke", "--device", "cpu"]) == 0
    assert "identical to the store" in capsys.readouterr().out
    assert main(["evaluate", "sinusoid/oracle", "--profile", "smoke", "--write"]) == 0
    stored = ResultStore().get(experiment("sinusoid/oracle", "smoke"))
    assert stored.provenance["evaluation"]["commit"] == stored.provenance["commit"]
    assert main(["train", "sinusoid/nope"]) == 2


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_result(tmp_path):
    """SIGKILL a real training process mid-run; the rerun finishes bit-for-bit identical."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tiny(iterations=600)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))
    cmd = [
        sys.executable,
        "-m",
        "learntolearn",
        "train",
        str(path),
        "--quiet",
        "--checkpoint-every",
        "100",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt = store_for(cfg).checkpoint_path(cfg)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert ckpt.exists() and ResultStore().get(cfg) is None
    assert torch.load(ckpt, weights_only=True)["iteration"] < cfg.iterations
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = ResultStore().get(cfg)
    whole = run(cfg, progress=False, store=ResultStore(tmp_path / "whole"))
    assert same_params(resumed.params(), whole.params())
    assert resumed.metrics["eval"] == whole.metrics["eval"]


def test_omniglot_experiment_end_to_end(real_env):
    """A smoke-size MAML run on real Omniglot tasks: trains, evaluates both BN modes, stores."""
    cfg = experiment("omniglot/maml-5w1s", "smoke")
    assert (cfg.inner_lr, cfg.inner_steps, cfg.test_steps, cfg.model) == (0.4, 1, 3, "conv")
    result = run(cfg, progress=False, device="cpu")
    ev = result.metrics["eval"]
    assert set(ev) == {"transductive", "non-transductive"}
    curve = ev["non-transductive"]["1"]
    assert curve["metric"] == "accuracy" and len(curve["mean"]) == cfg.eval_steps + 1
    assert all(0 <= a <= 1 for a in curve["mean"]) and "diverged" not in curve
    assert ev["transductive"]["1"]["mean"] != curve["mean"]
    paper = experiment("omniglot/fomaml-20w5s", "paper")
    assert (paper.iterations, paper.meta_batch, paper.inner_lr, paper.inner_steps) == (
        60_000,
        16,
        0.1,
        5,
    )
    assert paper.first_order and paper.test_steps == 5 and paper.eval_tasks == 600


def test_profiles_can_leave_out_experiments_with_a_reason():
    from learntolearn.catalogue.chapters import NOT_RUN, chapter_experiments

    assert "omniglot/maml-20w5s" in chapter_experiments("03_first_order", "paper")
    assert "omniglot/maml-20w5s" not in chapter_experiments("03_first_order", "cpu")
    assert all(len(why) > 20 for why in NOT_RUN["cpu"].values())
    with pytest.raises(ConfigError, match="unknown chapter"):
        chapter_experiments("99_nope", "cpu")


def test_chapter_helper_and_result_accessors():
    from learntolearn.reporting.chapter import Chapter

    chapter = Chapter.load("01_meta_learning", "smoke", device="cpu")
    oracle = chapter.results["sinusoid/oracle"]
    assert oracle.curve("full") is oracle.metrics["eval"]["full"]["5"]
    assert oracle.curve("half", 20) is oracle.metrics["eval"]["half"]["20"]
    assert oracle.reported_step == 0 and "saved_bytes" in chapter.results["sinusoid/maml-k5"].cost
    table = chapter.runs_table({"iterations": lambda c, r: c.iterations}, caption="runs")
    assert list(table.headers) == [
        "experiment",
        "iterations",
        "device",
        "wall time of the run (shared machine)",
    ]
    assert chapter.not_run() == "every setting was run"
    third = Chapter("03_first_order", "cpu", {}, {})
    assert "not run at this profile: omniglot/maml-20w5s" in third.not_run()


def test_run_in_progress_is_kept_in_the_store_and_resumes_bit_for_bit(tmp_path):
    """A sitting cut short leaves its checkpoint and progress record in ``in-progress/``; the
    next sitting resumes to the uninterrupted result and records both sittings."""
    cfg = tiny(milestone_every=10)
    whole = run(cfg, progress=False, store=ResultStore(tmp_path / "whole"), checkpoint_every=10)
    store = ResultStore(tmp_path / "sittings")
    with pytest.raises(InterruptedError):
        run(cfg, progress=False, store=store, checkpoint_every=100, stop_after=13)
    record = store.progress(cfg)
    assert store.checkpoint_path(cfg).is_file()
    assert store.checkpoint_path(cfg).parent == store.root / "in-progress"
    assert record["iteration"] == 13 and record["iterations"] == 30  # saved where it stopped
    assert record["checkpoint_bytes"] == store.checkpoint_path(cfg).stat().st_size
    assert [m["iteration"] for m in record["milestones"]] == [0, 10]
    assert [(s["from"], s["to"]) for s in record["sittings"]] == [(0, 13)]
    assert store.scan() == ([], {})  # in-progress/ is not a damaged result folder
    resumed = run(cfg, progress=False, store=store)
    assert same_params(resumed.params(), whole.params())
    assert resumed.metrics["train"]["milestones"] == whole.metrics["train"]["milestones"]
    assert [(s["from"], s["to"]) for s in resumed.provenance["sittings"]] == [(0, 13), (13, 30)]
    assert store.progress(cfg) is None and not store.checkpoint_path(cfg).exists()
    first = whole.metrics["train"]["milestones"][-1]
    final = whole.metrics["eval"]["full"]["5"]
    assert first["iteration"] == 30 and first["full/5"] == final["mean"][whole.reported_step]


def test_reproduce_stops_at_its_budget_and_resumes(monkeypatch, capsys):
    """``reproduce --budget`` on a clock that advances 1 s per reading: the plan says what fits,
    the run stops cleanly when the budget is spent, and the same command finishes it."""
    import itertools
    import time

    clock = itertools.count(start=1000.0, step=1.0)
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    argv = ["reproduce", "--profile", "smoke", "--chapter", "01_meta_learning"]
    argv += ["--only", "sinusoid/maml-k5", "--quiet", "--budget", "12s"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "advances (length unknown)" in out and "budget: 12 s of training" in out
    cfg = experiment("sinusoid/maml-k5", "smoke")
    store = store_for(cfg)
    done = store.progress(cfg)["iteration"]
    assert 0 < done < cfg.iterations and store.get(cfg) is None
    assert f"{done:,} of {cfg.iterations:,} iterations when the budget ran out" in out
    assert main([*argv[:-1], "1h"]) == 0
    assert store.get(cfg) is not None and store.progress(cfg) is None
    whole = run(cfg, progress=False, store=ResultStore(store.root.parent / "whole"))
    assert same_params(store.get(cfg).params(), whole.params())
    with pytest.raises(SystemExit):
        main([*argv[:-1], "soon"])
    assert "a time budget looks like" in capsys.readouterr().err


def test_task_chunks_give_the_same_run_up_to_rounding(tmp_path):
    """Backpropagating the meta-batch two tasks at a time (three chunks of a 5-task batch, the
    last one smaller) follows the run that backpropagates it whole, to float32 rounding."""
    cfg = tiny()
    whole = run(cfg, progress=False, store=ResultStore(tmp_path / "whole"))
    chunked = run(cfg, progress=False, store=ResultStore(tmp_path / "chunks"), task_chunk=2)
    a, b = whole.params(), chunked.params()
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    assert torch.allclose(
        torch.tensor(whole.metrics["train"]["history"]),
        torch.tensor(chunked.metrics["train"]["history"]),
        rtol=1e-5,
    )


@pytest.mark.slow
def test_sitting_script_advances_and_copies_out(tmp_path):
    """The prepared command for a lent machine (scripts/sitting.sh), at smoke size on the CPU:
    it trains within its budget and copies the new result folder to $OUT."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "sitting.sh"
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "LEARNTOLEARN_RESULTS": str(tmp_path / "store")}
    args = ["--profile", "smoke", "--chapter", "01_meta_learning", "--only", "sinusoid/oracle"]
    done = subprocess.run(
        [str(script), "5m", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    key = experiment("sinusoid/oracle", "smoke").key
    assert (out / "results" / key / "metrics.json").is_file()
    bad = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage: scripts/sitting.sh BUDGET" in bad.stderr


def test_progress_of_a_run_in_sittings_for_the_book(real_env):
    """What the book shows of a paper-protocol run, at smoke size: how far it is, its last
    milestone next to the paper's number, and the milestone curve; then the finished run."""
    import matplotlib

    matplotlib.use("Agg")
    from learntolearn.reporting.progress import plot_milestones, progress_runs, progress_table
    from learntolearn.reporting.published import OMNIGLOT_MAML

    name = "omniglot/maml-5w1s"
    cfg = experiment(name, "smoke")
    assert progress_runs([name], "smoke")[name].status == "not started"
    with pytest.raises(InterruptedError):
        run(cfg, progress=False, stop_after=2)
    r = progress_runs([name], "smoke")[name]
    assert r.status == "2 of 3 iterations" and r.checkpoint_bytes > 0
    it, mean, half = r.latest("transductive/1")
    assert it == 2 and 0 <= mean <= 1 and half > 0
    table = progress_table({name: r}, {name: OMNIGLOT_MAML[(5, 1)]}, ("transductive",), "t")
    assert table.rows[0][1] == "2 of 3 iterations" and "(it. 2)" in table.rows[0][2]
    assert table.rows[0][3] == "98.7 ± 0.4"
    fig = plot_milestones({name: r}, {name: OMNIGLOT_MAML[(5, 1)]}, "transductive", {name: "M"})
    assert len(fig.axes[0].lines) == 2  # the milestone curve and the paper's line
    run(cfg, progress=False)
    done = progress_runs([name], "smoke")[name]
    assert done.finished and done.status == "finished, 3 iterations"
    assert [m["iteration"] for m in done.milestones] == [0, 2]


def test_a_second_process_cannot_train_the_same_run(tmp_path):
    """The training lock refuses a second holder at once, with the remedy, and is released."""
    cfg = tiny()
    store = ResultStore(tmp_path / "s")
    other = ResultStore(tmp_path / "s")
    refused = pytest.raises(RuntimeError, match=r"another process is training .* wait for it")
    with store.training_lock(cfg), refused, other.training_lock(cfg):
        pass
    with other.training_lock(cfg):  # released: the next one may train
        pass
    assert not store.checkpoint_path(cfg).with_suffix(".lock").exists()
