"""The stopping rule (issue 22): on a planted validation plateau it stops, keeps the best
validation parameters, resumes to the same result, and never looks at the test classes."""

from __future__ import annotations

import pytest
import torch

from learntolearn.catalogue import experiment, run
from learntolearn.experiments.spec import ConfigError
from learntolearn.fewshot import stopping
from learntolearn.fewshot.store import ResultStore

PLANTED = [0.5, 0.6, 0.7, 0.7, 0.69, 0.71, 0.9]  # by evaluation: best at the 3rd, then flat


@pytest.fixture
def planted(real_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    seen_splits = []
    real_sets = stopping.ValidationPlateau.__init__

    def init(self, config, setup):
        real_sets(self, config, setup)
        seen_splits.append(self.sets)

    monkeypatch.setattr(stopping.ValidationPlateau, "__init__", init)
    monkeypatch.setattr(
        stopping.ValidationPlateau, "score", lambda self, p: (PLANTED[len(self.records)], 0.01)
    )
    return seen_splits


def rule_config(**changes):
    base = experiment("omniglot/protonet-5w1s", "smoke").with_(
        iterations=30, milestone_every=None, eval_tasks=4
    )
    return base.with_(stop_every=2, stop_patience=2, stop_delta=0.0, **changes)


def test_a_planted_plateau_stops_the_run_and_keeps_the_best(planted, tmp_path):
    cfg = rule_config()
    result = run(cfg, ResultStore(tmp_path / "a"), device="cpu", progress=False)
    rule = result.metrics["train"]["stopping"]
    assert rule["ended_at"] == 10 and rule["best_iteration"] == 6
    assert rule["reason"] == "validation plateau"
    assert [r["accuracy"] for r in rule["curve"]] == PLANTED[:5]
    # the stored parameters are those of iteration 6: a plain run of 6 iterations, bit for bit
    plain = cfg.with_(iterations=6, stop_every=None, stop_patience=None, stop_delta=None)
    six = run(plain, ResultStore(tmp_path / "b"), device="cpu", progress=False)
    a, b = result.params(), six.params()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_with_a_rule_resumes_to_the_same_result(planted, tmp_path):
    cfg = rule_config()
    whole = run(cfg, ResultStore(tmp_path / "whole"), device="cpu", progress=False)
    store = ResultStore(tmp_path / "parts")
    with pytest.raises(InterruptedError):
        run(cfg, store, device="cpu", progress=False, checkpoint_every=100, stop_after=7)
    resumed = run(cfg, store, device="cpu", progress=False)
    assert resumed.metrics["train"]["stopping"] == whole.metrics["train"]["stopping"]
    a, b = whole.params(), resumed.params()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_rule_scores_validation_tasks_not_test_tasks(planted, tmp_path):
    run(rule_config(), ResultStore(tmp_path / "a"), device="cpu", progress=False)
    (sets,) = planted[:1]
    validation = next(iter(sets[0].tasks()))
    test_sets = experiment("omniglot/protonet-5w1s", "smoke")
    from learntolearn.fewshot.task_families import FAMILIES

    test = next(iter(FAMILIES["omniglot"].test_sets(test_sets)[0].tasks()))
    # different classes: no validation image is a test image
    flat = lambda b: {tuple(x.flatten().tolist()) for x in b.x_support[0]}  # noqa: E731
    assert not flat(validation) & flat(test)


def test_a_rule_needs_all_its_fields_and_validation_classes():
    with pytest.raises(ConfigError, match="set all or none"):
        experiment("omniglot/protonet-5w1s", "smoke").with_(stop_every=2)
    with pytest.raises(ConfigError, match="no validation classes"):
        experiment("sinusoid/maml-k5", "smoke").with_(stop_every=2, stop_patience=2, stop_delta=0.0)
    paper = experiment("omniglot/relation-5w1s", "paper")
    assert (paper.stop_every, paper.stop_patience, paper.stop_delta) == (5_000, 5, 0.001)


@pytest.mark.parametrize(("bn_mode", "expected"), [(None, 0.25), ("non-transductive", 0.75)])
def test_the_rule_scores_in_the_batch_norm_mode_the_run_trains_in(
    real_env, monkeypatch, bn_mode, expected
):
    from learntolearn.fewshot.runs import build

    cfg = rule_config(train_bn_mode=bn_mode)
    by_mode = {"transductive": 0.25, "non-transductive": 0.75}
    found = {m: {"1": {"mean": [0.0, v], "ci95": [0.0, 0.01]}} for m, v in by_mode.items()}
    monkeypatch.setattr(stopping, "evaluate", lambda *args: found)
    rule = stopping.ValidationPlateau(cfg, build(cfg, torch.device("cpu")))
    assert rule.score({}) == (expected, 0.01)
