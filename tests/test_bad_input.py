"""Defects found when the project was tried with bad input (issue 9), one test each."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from learntolearn.analysis.meta_gradients import step_cost
from learntolearn.catalogue import experiment, run
from learntolearn.cli import main
from learntolearn.experiments.compare import compare_evaluations
from learntolearn.experiments.store import DamagedResultError
from learntolearn.experiments.training import DivergedError, RunSettings
from learntolearn.fewshot.config import ConfigError
from learntolearn.fewshot.store import ResultStore
from learntolearn.io import save_json
from learntolearn.methods.inner_loop import Adam
from learntolearn.methods.maml import MAML
from learntolearn.methods.reptile import Reptile
from learntolearn.models.networks import ConvNet
from learntolearn.objective import Objective, cross_entropy, init_params
from learntolearn.tasks import TaskBatch

pytestmark = pytest.mark.usefixtures("isolated_store")


def tiny(**changes):
    base = experiment("sinusoid/maml-k5", "smoke").with_(iterations=30, eval_tasks=20)
    return base.with_(**changes)


def image_tasks(num_tasks: int, n_way: int = 5, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(num_tasks, 2 * n_way, 1, 28, 28, generator=g)
    y = torch.arange(n_way).repeat(num_tasks, 2)
    return TaskBatch(x[:, :n_way], y[:, :n_way], x[:, n_way:], y[:, n_way:])


# 1. the stored per-step memory is counted the same every time, and counts every storage
def every_saved_storage(loss, params, batch) -> float:
    """An independent count: keep every packed tensor alive, then add up distinct storages."""
    kept = []
    leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        loss(leaf, batch).backward()
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in kept}
    return float(sum(storages.values()))


@pytest.mark.parametrize("method", ["fomaml", "reptile"])
def test_saved_bytes_is_deterministic(method):
    torch.manual_seed(0)
    net = ConvNet(5)
    objective = Objective(net, cross_entropy)
    params, batch = init_params(net), image_tasks(8)
    learner = (
        MAML(objective, 0.4, 1, True)
        if method == "fomaml"
        else Reptile(objective, Adam(1e-3), 5, 10)
    )
    counts = {step_cost(learner.loss, params, batch, repeats=1)["saved_bytes"] for _ in range(4)}
    assert counts == {every_saved_storage(learner.loss, params, batch)}


# 2. diverged training is refused, and nothing invalid is written
def test_diverged_training_is_refused_and_not_stored():
    cfg = tiny(meta_lr=1e6)
    with pytest.raises(DivergedError, match=r"diverged: .* nothing was stored"):
        run(cfg, progress=False, device="cpu", checkpoint_every=10)
    assert ResultStore().get(cfg) is None


def test_diverged_cli_run_exits_with_a_clear_error(capsys):
    path = ResultStore().root.parent / "big.json"
    path.write_text(json.dumps(tiny(inner_lr=1e6).to_dict()))
    assert main(["train", str(path), "--quiet"]) == 2
    assert "diverged" in capsys.readouterr().err


def test_json_is_always_valid(tmp_path):
    save_json(tmp_path / "m.json", {"mean": [1.0, float("nan"), float("inf")]})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"mean": [1.0, None, None]}


# 3. provenance names the CPU kernels; evaluate tells bitwise from meaningful differences
def test_provenance_records_cpu_capability_and_versions():
    result = run(tiny(), progress=False, device="cpu")
    assert {"cpu_capability", "numpy", "pillow"} <= set(result.provenance)


def test_compare_tells_bitwise_tolerable_and_real_differences():
    curve = {"metric": "accuracy", "mean": [0.5, 0.8], "ci95": [0.02, 0.01], "median": [0.5, 0.8]}
    stored = {"transductive": {"1": curve}}
    assert compare_evaluations(stored, stored).bitwise
    near = {"transductive": {"1": {**curve, "mean": [0.5, 0.8 + 1 / 3000]}}}
    verdict = compare_evaluations(near, stored)
    assert not verdict.bitwise and verdict.ok and "within tolerance" in str(verdict)
    far = {"transductive": {"1": {**curve, "mean": [0.5, 0.81]}}}
    assert not compare_evaluations(far, stored).ok
    # an accuracy median moves in whole steps of 1/queries: not a meaningful difference
    step = {"transductive": {"1": {**near["transductive"]["1"], "median": [0.5, 0.825]}}}
    assert compare_evaluations(step, stored).ok
    # a step whose mean diverged (stored null): the median decides, with a relative tolerance
    loss = {"metric": "mse", "mean": [1.0, None], "ci95": [0.1, None], "median": [1.0, 0.2]}
    loss["diverged"] = [0, 2]
    stored = {"full": {"5": loss}}
    nearly = {"full": {"5": {**loss, "mean": [1.0, float("nan")], "median": [1.0, 0.20001]}}}
    assert compare_evaluations(nearly, stored).ok
    moved = {"full": {"5": {**loss, "median": [1.0, 0.3]}}}
    assert not compare_evaluations(moved, stored).ok
    finite = {"full": {"5": {**loss, "mean": [1.0, 5.0], "ci95": [0.1, 1.0]}}}
    assert not compare_evaluations(finite, stored).ok


# 4. model.pt is byte-reproducible
def test_model_file_is_byte_reproducible(tmp_path):
    a = run(tiny(), progress=False, device="cpu", store=ResultStore(tmp_path / "a"))
    b = run(tiny(), progress=False, device="cpu", store=ResultStore(tmp_path / "b"))
    digest = [hashlib.sha256((r.path / "model.pt").read_bytes()).hexdigest() for r in (a, b)]
    assert digest[0] == digest[1] == a.metrics["model_sha256"]


# 5. one damaged result does not block the others
def test_a_damaged_result_blocks_nothing_else(capsys):
    broken = run(tiny(seed=1), progress=False, device="cpu")
    (broken.path / "metrics.json").write_text("{")
    other = run(tiny(seed=2), progress=False, device="cpu")  # scans the store for twins
    assert other.metrics["train"]["iterations"] == 30
    assert main(["list"]) == 1
    out = capsys.readouterr()
    assert other.key in out.out and f"damaged: {broken.key}" in out.err


# 6. checkpoint intervals must be positive
@pytest.mark.parametrize("every", ["0", "-3", "x"])
def test_checkpoint_every_must_be_positive(every, capsys):
    with pytest.raises(SystemExit):
        main(["train", "sinusoid/oracle", "--profile", "smoke", "--checkpoint-every", every])
    assert "must be a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer"):
        RunSettings(
            "k", 10, 0, torch.device("cpu"), checkpoint_every=int(every) if every != "x" else 0
        )


# 7. what can be checked before training is checked before training
def test_an_unusable_store_fails_before_training(tmp_path, monkeypatch):
    import learntolearn.fewshot.runs as runner

    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("trained"))
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        run(tiny(), progress=False, device="cpu", store=ResultStore(afile))
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(afile))
    with pytest.raises(NotADirectoryError, match="LEARNTOLEARN_RESULTS"):
        run(tiny(), progress=False, device="cpu")
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("learntolearn.experiments.store.tempfile.TemporaryFile", refuse)
    with pytest.raises(PermissionError, match=r"cannot write to .* make it writable"):
        run(tiny(), progress=False, device="cpu")
    with pytest.raises(ConfigError, match=r"eval_seed must be an integer in \[0, 2\*\*53\)"):
        tiny(eval_seed=2**70)


# 8. model.pt is verified on every load
def test_a_replaced_model_file_is_refused(capsys):
    result = run(tiny(), progress=False, device="cpu")
    (result.path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(DamagedResultError, match="SHA-256"):
        ResultStore().get(tiny())
    path = ResultStore().root.parent / "cfg.json"
    path.write_text(json.dumps(tiny().to_dict()))
    assert main(["train", str(path), "--quiet"]) == 2
    assert "damaged or replaced" in capsys.readouterr().err


# 9. messages name the real problem
def test_messages_name_the_real_problem(tmp_path, capsys):
    bad = tmp_path / "mine.json"
    bad.write_text('{"name": "x"')
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "fix the file" in err and "delete it" not in err
    omniglot = experiment("omniglot/maml-5w1s", "smoke")
    with pytest.raises(ConfigError, match="eval_steps must be an integer >= 0, got -1"):
        omniglot.with_(eval_steps=-1)
    with pytest.raises(ConfigError, match="inner_lr must be a positive number, got 'fast'"):
        tiny(inner_lr="fast")


# 10. the stored history does not depend on the checkpoint interval
def test_history_does_not_depend_on_checkpoint_interval(tmp_path):
    cfg = tiny(iterations=250)
    a = run(
        cfg, progress=False, device="cpu", store=ResultStore(tmp_path / "a"), checkpoint_every=7
    )
    b = run(cfg, progress=False, device="cpu", store=ResultStore(tmp_path / "b"))
    assert a.metrics["train"]["history"] == b.metrics["train"]["history"]
    assert [h[0] for h in a.metrics["train"]["history"]] == [100, 200]
