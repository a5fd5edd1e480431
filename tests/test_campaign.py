"""The standing queue (issue 22): its order, its schedule, and a smoke-size campaign on two
workers that is stopped by its budget and resumes to the results of one uninterrupted run."""

from __future__ import annotations

import pytest
import torch

from learntolearn.catalogue import campaign, experiment, run, store_for
from learntolearn.catalogue.campaign import jobs, schedule
from learntolearn.catalogue.plan import Step
from learntolearn.cli import main
from learntolearn.fewshot.store import ResultStore


def step(name: str, hours: float | None, profile: str = "paper", twin: str | None = None) -> Step:
    cfg = experiment(name, profile)
    seconds = None if hours is None else 3600 * hours
    return Step(name, cfg, 0, twin, seconds, "", cfg.iterations)


def test_jobs_put_the_most_published_numbers_per_hour_first(monkeypatch):
    monkeypatch.setattr(campaign, "HELD", {"omniglot/matching-": "waits for a reason"})
    queue = jobs(
        [
            step("omniglot/reptile-5w1s", 5.0),
            step("omniglot/reptile-5w5s", None, twin="omniglot/reptile-5w1s"),  # served by it
            step("omniglot/siamese-5w1s", 2.0),
            *(step(f"omniglot/siamese-{s}", None, twin="x") for s in ("5w5s", "20w1s", "20w5s")),
            step("omniglot/protonet-5w1s-cosine", 0.5),  # an ablation: no paper's number
            step("omniglot/maml-20w5s", None),  # unknown length: last of the papers' runs
            step("omniglot/matching-5w1s", 0.1),  # held back, with its reason
        ]
    )
    assert [j.name for j in queue] == [
        "omniglot/siamese-5w1s",  # 4 numbers in 2 h
        "omniglot/reptile-5w1s",  # 2 in 5 h
        "omniglot/protonet-5w1s-cosine",
        "omniglot/maml-20w5s",
    ]
    assert queue[0].serves == (
        "omniglot/siamese-5w1s",
        "omniglot/siamese-5w5s",
        "omniglot/siamese-20w1s",
        "omniglot/siamese-20w5s",
    )
    assert queue[0].published == 4 and queue[2].published == 0


def test_each_job_goes_to_the_worker_that_frees_first(monkeypatch):
    monkeypatch.setattr(campaign, "HELD", {})  # whatever the catalogue holds back today
    queue = jobs(
        [
            step("omniglot/siamese-5w1s", 1.0),
            step("omniglot/siamese-lake", 3.0),
            step("omniglot/reptile-5w1s", 4.0),
            step("omniglot/protonet-5w1s", 8.0),
        ]
    )
    planned = {
        j.name: (w, start / 3600, fate) for j, w, start, fate in schedule(queue, 2, 5 * 3600)
    }
    assert planned["omniglot/siamese-5w1s"] == (0, 0.0, "completes")
    assert planned["omniglot/siamese-lake"] == (1, 0.0, "completes")
    assert planned["omniglot/reptile-5w1s"][:2] == (0, 1.0)  # worker 0 frees first, at 1 h
    assert planned["omniglot/reptile-5w1s"][2] == "completes"
    assert planned["omniglot/protonet-5w1s"][:2] == (1, 3.0)
    assert planned["omniglot/protonet-5w1s"][2].startswith("advances ~5,000 it.")


@pytest.mark.slow
def test_a_two_worker_campaign_stopped_and_resumed_equals_one_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    argv = ["campaign", "--profile", "smoke", "--chapter", "01_meta_learning", "--device", "cpu"]
    argv += ["--workers", "2"]
    assert main([*argv, "--budget", "1h", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "sinusoid/maml-k5" in out and "worker 1 at +0 s" in out
    assert main([*argv, "--budget", "4s"]) == 0  # stops whatever runs when 4 s have passed
    assert main([*argv, "--budget", "1h"]) == 0  # and the next sitting resumes it
    assert main([*argv, "--budget", "1h"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    for name in ("sinusoid/maml-k5", "sinusoid/maml-k10", "sinusoid/oracle"):
        cfg = experiment(name, "smoke")
        resumed = store_for(cfg).get(cfg)
        assert resumed is not None, name
        straight = run(cfg, ResultStore(tmp_path / "straight"), device="cpu", progress=False)
        a, b = resumed.params(), straight.params()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert resumed.metrics["eval"] == straight.metrics["eval"]


@pytest.mark.slow
@pytest.mark.usefixtures("real_env")
def test_the_campaign_computes_the_analyses_a_chapter_reads_once_a_run_is_stored(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    names = ("omniglot/matching-5w1s", "omniglot/protonet-5w1s-trainval")
    assert campaign.book_analyses(names[0], "smoke") == []  # not stored yet
    queue = jobs([step(n, 0.01, "smoke") for n in names])
    assert campaign.run_jobs(queue, 1, 3600, "smoke", "cpu") == 0
    assert campaign.book_analyses("omniglot/maml-5w1s", "smoke") == []  # none wanted
    matching = experiment(names[0], "smoke")
    stored = store_for(matching).get(matching)
    assert stored is not None and set(stored.metrics["analyses"]) == {"population_bn", "splits"}
    # the pool ablation trains on the validation characters too: no splits analysis
    assert campaign.book_analyses(names[1], "smoke") == ["population_bn"]
    pool = experiment(names[1], "smoke")
    assert set(store_for(pool).get(pool).metrics["analyses"]) == {"population_bn"}
