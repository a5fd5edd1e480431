"""The store's size limit for tensor files in git (``TENSOR_LIMIT``): results and checkpoints
over it under their git-ignored local names, a result that loads without its parameters, the
migration of folders stored before the limit, the plan that will not start a run whose
checkpoint stays local unless it completes, and SNAIL's attention stored as an analysis so
that the book needs no local file. The limit is made tiny here so that tiny runs cross it."""

from __future__ import annotations

import subprocess

import pytest
import torch

from learntolearn.catalogue import experiment, run
from learntolearn.catalogue.campaign import jobs, schedule
from learntolearn.catalogue.plan import Step, fit_budget
from learntolearn.cli import main
from learntolearn.experiments import store as results_store
from learntolearn.experiments.store import CHECKSUMS, DamagedResultError, LocalTensorsMissingError
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.runs import checkpoint_bytes
from learntolearn.fewshot.store import ResultStore

TINY = 1000  # bytes: the sinusoid MLP's parameters (about 7 kB) are over it


pytestmark = pytest.mark.usefixtures("isolated_store")


def tiny(**changes) -> ExperimentConfig:
    base = experiment("sinusoid/maml-k5", "smoke").with_(iterations=30, eval_tasks=20)
    return base.with_(**changes)


def same_params(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_result_under_the_limit_is_committed_as_before(tmp_path):
    result = run(tiny(), progress=False, store=ResultStore(tmp_path / "s"))
    assert (result.path / "model.pt").is_file()
    assert not (result.path / "model.local.pt").exists()
    assert "#" not in (result.path / CHECKSUMS).read_text()


def test_a_result_over_the_limit_is_local_and_loads_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr(results_store, "TENSOR_LIMIT", TINY)
    cfg = tiny()
    store = ResultStore(tmp_path / "s")
    result = run(cfg, progress=False, store=store)
    local = result.path / "model.local.pt"
    assert local.is_file() and not (result.path / "model.pt").exists()
    sums = (result.path / CHECKSUMS).read_text()
    assert (
        "  model.local.pt\n" in sums and f"# model.local.pt: {local.stat().st_size} bytes" in sums
    )
    trained = result.params()
    # where git has it: a fresh clone
    held = local.rename(tmp_path / "elsewhere.pt")
    fresh = store.get(cfg)
    assert fresh is not None and fresh.metrics == result.metrics and fresh.key == cfg.key
    with pytest.raises(LocalTensorsMissingError) as err:
        fresh.params()
    message = str(err.value)
    assert (
        "\n" not in message and cfg.key in message and "MiB" in message and "not in git" in message
    )
    assert f"python -m learntolearn train {cfg.name} --profile {cfg.profile}" in message
    # an analysis or a new evaluation stored meanwhile keeps the record of the absent file
    store.update(fresh, {"note": 1}, {})
    assert "  model.local.pt\n" in (result.path / CHECKSUMS).read_text()
    held.rename(local)
    assert same_params(store.get(cfg).params(), trained)  # verified again, and the same
    local.write_bytes(b"damaged")  # present, hence verified
    with pytest.raises(DamagedResultError, match=r"model\.local\.pt has SHA-256"):
        store.get(cfg)


def test_sha256sum_checks_a_folder_with_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setattr(results_store, "TENSOR_LIMIT", TINY)
    result = run(tiny(), progress=False, store=ResultStore(tmp_path / "s"))
    done = subprocess.run(["sha256sum", "-c", CHECKSUMS], cwd=result.path, capture_output=True)
    assert done.returncode == 0 and b"model.local.pt: OK" in done.stdout


def test_a_checkpoint_over_the_limit_is_local_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(results_store, "TENSOR_LIMIT", TINY)
    cfg = tiny()
    whole = run(cfg, progress=False, store=ResultStore(tmp_path / "whole"), checkpoint_every=10)
    store = ResultStore(tmp_path / "sittings")
    with pytest.raises(InterruptedError):
        run(cfg, progress=False, store=store, checkpoint_every=10, stop_after=13)
    committed = store.checkpoint_path(cfg)
    assert not committed.exists()
    assert store.checkpoint_file(cfg) == committed.with_name(f"{cfg.key}.local.pt")
    record = store.progress(cfg)
    assert record is not None and record["iteration"] == 13
    assert record["checkpoint_file"] == f"{cfg.key}.local.pt"
    assert store.resumable_iteration(cfg) == 13
    resumed = run(cfg, progress=False, store=store)
    assert same_params(resumed.params(), whole.params())
    assert not any((store.root / "in-progress").glob(f"{cfg.key}*.pt"))


def test_the_migration_renames_rechecksums_and_keeps_keys(tmp_path, monkeypatch):
    cfg = tiny()
    store = ResultStore(tmp_path / "s")
    result = run(cfg, progress=False, store=store)
    other = tiny(seed=1)
    with pytest.raises(InterruptedError):
        run(other, progress=False, store=store, checkpoint_every=10, stop_after=10)
    before = {n: (result.path / n).read_bytes() for n in ("config.json", "metrics.json")}
    sums = dict(
        reversed(line.split("  ")) for line in (result.path / CHECKSUMS).read_text().splitlines()
    )
    params = result.params()
    assert store.localise_tensors() == []  # nothing over the real limit
    monkeypatch.setattr(results_store, "TENSOR_LIMIT", TINY)
    checkpoint = store.checkpoint_path(other)
    assert store.localise_tensors() == [
        result.path / "model.local.pt",
        checkpoint.with_name(f"{other.key}.local.pt"),
    ]
    assert not (result.path / "model.pt").exists() and not checkpoint.exists()
    assert all((result.path / n).read_bytes() == b for n, b in before.items())
    text = (result.path / CHECKSUMS).read_text()
    assert f"{sums['model.pt']}  model.local.pt\n" in text
    moved = store.get(cfg)
    assert moved is not None and moved.key == cfg.key and same_params(moved.params(), params)
    assert store.resumable_iteration(other) == 10
    assert store.localise_tensors() == []  # once


def test_the_checkpoint_estimate_matches_a_real_checkpoint(tmp_path):
    cfg = tiny(hidden=(300, 300))  # about 92k parameters: a checkpoint of about 1.1 MiB
    store = ResultStore(tmp_path / "s")
    with pytest.raises(InterruptedError):
        run(cfg, progress=False, store=store, checkpoint_every=10, stop_after=2)
    real = store.checkpoint_file(cfg).stat().st_size
    assert real > 10**6 and abs(checkpoint_bytes(cfg) - real) < 0.1 * real


def step(hours: float | None, size: int) -> Step:
    cfg = experiment("omniglot/snail-5w1s", "paper")
    seconds = None if hours is None else 3600 * hours
    return Step(cfg.name, cfg, 0, None, seconds, "", cfg.iterations, checkpoint_bytes=size)


def test_the_plan_skips_a_run_whose_checkpoint_stays_local_unless_it_completes():
    big = 50 * 2**20
    assert checkpoint_bytes(experiment("omniglot/snail-5w1s", "paper")) > 8 * 2**20
    long, short = step(3.0, big), step(1.0, big)
    assert long.local and not step(3.0, 2**20).local
    assert "checkpoint ~50.0 MiB stays local: needs one sitting of ~3 h" in long.local_note
    assert fit_budget([long], 2 * 3600) == {long.name: "skipped (see basis)"}
    assert fit_budget([short], 2 * 3600) == {short.name: "completes"}
    assert fit_budget([step(3.0, 2**20)], 2 * 3600)[long.name].startswith("advances")
    (planned,) = schedule(jobs([long]), 2, 2 * 3600)
    assert planned[3].startswith("skipped: checkpoint ~50.0 MiB stays local")
    (planned,) = schedule(jobs([step(None, big)]), 2, 2 * 3600)  # unknown length: skipped
    assert planned[3].startswith("skipped")
    (planned,) = schedule(jobs([short]), 2, 2 * 3600)
    assert planned[3] == "completes"


# --- SNAIL's attention, stored for the book --------------------------------------------------


def test_attention_of_a_query_on_a_fake_episode():
    from learntolearn.analysis.snail_attention import query_attention
    from tests.test_snail import episode, snail

    method, params = snail()
    batch = episode()[0:1]
    values = query_attention(method, params, batch)
    s = batch.x_support.shape[1]
    assert values["query_class"] == int(batch.y_query[0, 0])
    assert sorted(values["support_classes"]) == sorted(batch.y_support[0].tolist())
    assert len(values["blocks"]) == 3  # the 5-way 1-shot / 3-way architecture's blocks
    for row in values["blocks"]:
        assert len(row) == s + 1 and abs(sum(row) - 1) < 1e-5


def test_the_attention_analysis_is_stored_and_read_without_the_parameters(real_env, monkeypatch):
    from learntolearn.catalogue import analyse, store_for
    from learntolearn.reporting.black_box_figures import plot_snail_attention

    name = "omniglot/snail-5w1s"
    assert main(["analyse", "attention", name, "--profile", "smoke", "--quiet"]) == 0
    cfg = experiment(name, "smoke")
    result = store_for(cfg).get(cfg)
    values = result.metrics["analyses"]["attention"]
    assert result.provenance["analyses"]["attention"]["commit"]
    assert len(values["support_classes"]) == cfg.n_way * cfg.k_shot
    assert all(len(row) == cfg.n_way * cfg.k_shot + 1 for row in values["blocks"])
    assert main(["analyse", "attention", "omniglot/maml-5w1s", "--profile", "smoke"]) == 2
    # SNAIL's parameters (12 MiB) are over the limit: the book's figure from a fresh clone,
    # without them and without training
    (result.path / "model.local.pt").unlink()
    monkeypatch.setenv("LEARNTOLEARN_NO_TRAIN", "1")
    assert analyse(cfg, "attention") == values
    fig = plot_snail_attention(values)
    assert len(fig.axes) == len(values["blocks"])
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights == pytest.approx(values["blocks"][0])
