"""The reproduction status table (issue 22), computed from a small store of stand-ins."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from learntolearn.catalogue import experiment
from learntolearn.reporting.progress import POPULATION, ProgressRun
from learntolearn.reporting.published import Published
from learntolearn.reporting.status import reproduction_status, status_table


@dataclass
class Stored:
    """A stored result as the status reads it: its curve at the reported step."""

    accuracy: float
    config: object
    reported_step: int = 0
    metrics: dict = field(default_factory=lambda: {"train": {}})

    def curve(self, mode: str, shots: int | None = None) -> dict:
        return {"mean": [self.accuracy], "ci95": [0.004]}


def test_each_state_comes_from_the_evidence_the_store_has():
    paper = SimpleNamespace(iterations=60_000, eval_shots=(1,))
    cfg = experiment("omniglot/maml-5w1s", "paper")
    published = {n: Published(98.7, 0.4, "MAML") for n in "abcdef"}
    published["f"] = Published(97.3, None, "Koch")
    runs = {
        "a": ProgressRun("a", cfg, 60_000, finished=True, result=Stored(0.984, paper)),
        "b": ProgressRun("b", cfg, 60_000, finished=True, result=Stored(0.975, paper)),
        "c": ProgressRun(
            "c",
            cfg,
            25_000,
            [{"iteration": 25_000, "transductive/1": 0.982, "transductive/1/ci95": 0.006}],
        ),
        "d": ProgressRun("d", cfg),  # not started
        "f": ProgressRun("f", cfg, 60_000, finished=True, result=Stored(0.968, paper)),
    }
    short = {"d": Stored(0.881, SimpleNamespace(profile="cpu", iterations=2_000))}
    found = reproduction_status(
        published, dict.fromkeys(published, "transductive"), runs, short, {"e": "too slow"}
    )
    states = {s.name: s.state for s in found}
    assert states == {
        "a": "reproduced",  # 98.4 inside 98.7 ± 0.4
        "b": "finished, short of it",  # 97.5 outside it
        "c": "in progress",
        "d": "short run",
        "e": "not run",
        "f": "reproduced",  # no interval printed: within half a point (96.8 vs 97.3)
    }
    detail = {s.name: s.detail for s in found}
    assert "25,000 of 60,000 it." in detail["c"] and "98.2" in detail["c"]
    assert "-10.6 points" in detail["d"] and detail["e"] == "too slow"
    table = status_table(found, {}, "Status")
    assert "(2 reproduced; 1 finished, short of it; 1 in progress; 1 short run; 1 not run)" in (
        table.caption
    )


def test_a_finished_run_outside_the_interval_says_on_which_side():
    paper = SimpleNamespace(iterations=50_000, eval_shots=(1,))
    cfg = experiment("omniglot/siamese-5w1s", "paper")
    published = {"up": Published(97.3, None, "Koch"), "down": Published(97.3, None, "Koch")}
    runs = {
        "up": ProgressRun("up", cfg, 50_000, finished=True, result=Stored(0.979, paper)),
        "down": ProgressRun("down", cfg, 50_000, finished=True, result=Stored(0.966, paper)),
    }
    found = reproduction_status(published, dict.fromkeys(published, "transductive"), runs, {}, {})
    assert {s.name: s.state for s in found} == {
        "up": "finished, above it",  # 97.9 vs 97.3: above, outside half a point
        "down": "finished, short of it",  # 96.6
    }
    detail = {s.name: s.detail for s in found}
    assert detail["up"].endswith("+0.6 points)") and detail["down"].endswith("-0.7 points)")


def test_a_runs_accuracy_is_its_final_evaluation_else_its_last_milestone():
    cfg = experiment("omniglot/maml-5w1s", "paper")
    ms = [
        {"iteration": 0, "transductive/1": 0.2, "transductive/1/ci95": 0.01},
        {"iteration": 2_000, "transductive/1": 0.9, "transductive/1/ci95": 0.02},
        {"iteration": 4_000, "non-transductive/1": 0.8, "non-transductive/1/ci95": 0.03},
    ]
    running = ProgressRun("m", cfg, 4_000, ms)
    assert running.accuracy("transductive") == (0.9, 0.02, 2_000)
    assert running.accuracy_cell("transductive") == "90.0 ± 2.0 (it. 2,000)"
    assert running.accuracy_cell("non-transductive", shots=5) == "—"  # no such milestone
    assert ProgressRun("m", cfg, 0, ms[:1]).accuracy_cell("transductive") == "20.0 ± 1.0 (it. 0)"
    done = ProgressRun("m", cfg, 60_000, ms, finished=True, result=Stored(0.981, cfg))  # type: ignore[arg-type]
    assert done.accuracy("transductive") == (0.981, 0.004, None)
    assert done.accuracy_cell("non-transductive") == "98.1 ± 0.4"
    assert done.accuracy_cell(POPULATION) == "—" and running.accuracy_cell(POPULATION) == "—"
    analysed = Stored(0.981, cfg)
    curve = {"mean": [0.95], "ci95": [0.007]}
    analysed.metrics["analyses"] = {"population_bn": {"images": 1_000, "shots": {"1": curve}}}
    scored = ProgressRun("m", cfg, 60_000, ms, finished=True, result=analysed)  # type: ignore[arg-type]
    assert scored.accuracy(POPULATION) == (0.95, 0.007, None)
    assert scored.accuracy_cell(POPULATION) == "95.0 ± 0.7"
    assert scored.accuracy_cell("transductive", split="val") == "—"  # not computed
    analysed.metrics["analyses"]["splits"] = {"val": {"transductive": {"1": curve}}}
    assert scored.accuracy("transductive", split="val") == (0.95, 0.007, None)
    assert scored.accuracy_cell("transductive", split="val") == "95.0 ± 0.7"


def test_a_run_its_stopping_rule_ended_reports_where_it_ended():
    cfg = experiment("omniglot/relation-5w1s", "paper")
    rule = {"ended_at": 84_000, "best_iteration": 59_000, "reason": "validation plateau"}
    stored = Stored(0.99, cfg, metrics={"train": {"stopping": rule}})
    run = ProgressRun("r", cfg, cfg.iterations, finished=True, result=stored)  # type: ignore[arg-type]
    assert run.done == 84_000 and "stopped at 84,000 of 1,000,000" in run.status
    assert ProgressRun("r", cfg, 5_000).done == 5_000  # in progress: its checkpoint's iteration
