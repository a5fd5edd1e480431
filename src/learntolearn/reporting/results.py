"""The results chapter (chapter 10): every classification method of the book on the same fixed
test tasks, beside its paper's number and protocol, and its accuracy against training compute.

Training compute is counted in CPU-seconds of meta-training: a stored run's iterations times
its measured seconds per meta-iteration (``train.cost``: one CPU thread, the evaluation left
out); for a paper-protocol run still in progress, its wall time so far per iteration done
(milestone evaluations included, so an over-estimate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from learntolearn.catalogue.fewshot import BLACK_BOX_METHODS, GRADIENT_METHODS, METRIC_METHODS
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.store import Result
from learntolearn.reporting.progress import ProgressRun
from learntolearn.reporting.published import (
    ANIL_ANIL,
    OMNIGLOT_FOMAML,
    OMNIGLOT_MAML,
    OMNIGLOT_MAML_FC,
    OMNIGLOT_MANN_NO_CONV,
    OMNIGLOT_MATCHING,
    OMNIGLOT_PROTONET,
    OMNIGLOT_RELATION,
    OMNIGLOT_REPTILE,
    OMNIGLOT_SIAMESE,
    OMNIGLOT_SNAIL,
    Published,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "CLASSIFICATION_METHODS",
    "LABELS",
    "PAPERS",
    "Paper",
    "compute_points",
    "plot_compute",
]

CLASSIFICATION_METHODS = (
    *GRADIENT_METHODS,
    "maml-fc",
    *METRIC_METHODS,
    "meta-lstm",
    *BLACK_BOX_METHODS,
)
LABELS = {
    "maml": "MAML",
    "fomaml": "first-order MAML",
    "reptile": "Reptile",
    "anil": "ANIL",
    "siamese": "Siamese",
    "matching": "Matching",
    "protonet": "Prototypical",
    "relation": "Relation",
    "meta-lstm": "Meta-Learner LSTM",
    "maml-fc": "MAML, fully connected",
    "episode-lstm": "LSTM (episode)",
    "mann": "MANN",
    "snail": "SNAIL",
}


@dataclass(frozen=True)
class Paper:
    """A paper's numbers per setting, in a few words the protocol behind them, and the
    batch-norm mode its numbers are compared in (its code's, where it has batch norm)."""

    numbers: Mapping[tuple[int, int], Published]
    protocol: str
    mode: str = "transductive"


PAPERS: dict[str, Paper] = {
    "maml": Paper(OMNIGLOT_MAML, "60k it., meta-batch 32 / 16, transductive BN"),
    "fomaml": Paper(OMNIGLOT_FOMAML, "the Reptile paper's run, transductive BN"),
    "reptile": Paper(
        OMNIGLOT_REPTILE, "100k / 200k it., 50 test steps, non-transductive", "non-transductive"
    ),
    "anil": Paper(ANIL_ANIL, "MAML's protocol, three seeds, 20-way only"),
    # Koch et al.'s network has no batch norm; Snell et al.'s code tests in eval mode; Vinyals
    # et al. published no code: the support set's statistics (non-transductive) for all three
    # the four numbers are Vinyals et al.'s (2016, Tab. 1: Koch et al.'s network trained and
    # fine-tuned on their split), as the MAML paper's Tab. 1 quotes them ("Siamese nets (Koch,
    # 2015)"); Koch et al.'s own number is on Lake's 20-way runs (published.LAKE_SIAMESE)
    "siamese": Paper(
        OMNIGLOT_SIAMESE,
        "Vinyals et al.'s run of Koch et al.'s net, fine-tuned (via the MAML paper's Tab. 1)",
        "non-transductive",
    ),
    "matching": Paper(
        OMNIGLOT_MATCHING,
        "no fine-tuning, test split of Vinyals et al. (the book's paper profile: cosine x 10)",
        "non-transductive",
    ),
    "protonet": Paper(
        OMNIGLOT_PROTONET, "60-way training, 1,000 tasks of 15 queries", "non-transductive"
    ),
    "relation": Paper(OMNIGLOT_RELATION, "1,000 test episodes"),
    "maml-fc": Paper(OMNIGLOT_MAML_FC, "MAML's protocol, fully connected network"),
    # no batch norm in Santoro et al.'s MANN; SNAIL published no code: the support statistics
    "mann": Paper(
        OMNIGLOT_MANN_NO_CONV,
        "2nd / 5th instance in 50-step episodes, no conv",
        "non-transductive",
    ),
    "snail": Paper(OMNIGLOT_SNAIL, "SNAIL's own test protocol", "non-transductive"),
}
"""The Meta-Learner LSTM has no Omniglot number: Ravi & Larochelle report miniImageNet only."""


@dataclass(frozen=True)
class Point:
    """Test accuracy (fraction) after ``seconds`` CPU-seconds of meta-training."""

    seconds: float
    accuracy: float
    ci95: float


def compute_points(
    config: ExperimentConfig, result: Result | None, mode: str, progress: ProgressRun | None = None
) -> list[Point]:
    """The run's accuracy at its milestones (on the fixed test tasks) and at its end, against
    CPU-seconds of meta-training; from a run in progress, its milestones so far (a finished
    ``progress`` run brings its own result)."""
    if result is None and progress is not None:
        result = progress.result
    key = f"{mode}/{config.eval_shots[0]}"
    if result is not None:
        per_iteration = result.cost["seconds"]
        milestones = result.metrics["train"].get("milestones", [])
    elif progress is not None and progress.iteration:
        per_iteration = progress.wall_time_s / progress.iteration
        milestones = progress.milestones
    else:
        return []
    points = [
        Point(m["iteration"] * per_iteration, m[key], m[f"{key}/ci95"])
        for m in milestones
        if m.get(key) is not None and m["iteration"] > 0
    ]
    if result is not None:
        curve, step = result.curve(mode), result.reported_step
        end = Point(config.iterations * per_iteration, curve["mean"][step], curve["ci95"][step])
        points = [p for p in points if p.seconds < end.seconds] + [end]
    return points


def plot_compute(ax: Axes, points: list[Point], label: str, color: str, **style: object) -> None:
    """Accuracy (%) against CPU-hours: a line through the milestones, a marker at each."""
    if not points:
        return
    hours = [p.seconds / 3600 for p in points]
    style = {"linestyle": "-", **style}
    y = [100 * p.accuracy for p in points]
    ax.plot(hours, y, marker="o", color=color, label=label, markersize=3.5, **style)
