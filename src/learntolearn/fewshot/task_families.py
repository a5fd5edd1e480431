"""The task-family table: for each family of tasks, its network, loss, training sampler and
fixed test sets with their score. Adding a family is one entry here (and its data module).

* ``sinusoid``: regression of A·sin(x − φ) (MAML Sec. 5.1), MSE; two test sets, support points
  anywhere in [−5, 5] (``full``) or all in [−5, 0] (``half``, Fig. 2).
* ``omniglot``: N-way K-shot classification (MAML Sec. 5.2, the Vinyals split), accuracy; one
  test set per K, scored with transductive batch norm (the query batch's statistics, as MAML's
  code) and non-transductive (the support set's).
* ``miniimagenet``: N-way K-shot classification of 84x84 images with the Ravi split, read
  from a user's own image folder (the images cannot be downloaded here); like ``omniglot``.
* ``omniglot-lake``: Lake's 20 one-shot runs (20-way, within an evaluation alphabet; Koch et
  al. 2015, Sec. 4.3), trained on the 30 background alphabets, scored in the same two modes.
* ``omniglot-trainval``: ``omniglot`` trained on the 1,200 characters of the Vinyals training
  and validation splits (4,800 classes with rotations), as Snell et al. (2017, Sec. 3.1) train
  Prototypical networks (and Vinyals et al., Sung et al. the metric methods); the same test
  tasks, and no validation tasks (they are training classes here).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from learntolearn.data.augment import AffineDistortions
from learntolearn.data.miniimagenet import (
    MiniImagenet,
    MiniImagenetTasks,
    listed_images,
    load_miniimagenet,
)
from learntolearn.data.miniimagenet import fixed_tasks as fixed_miniimagenet
from learntolearn.data.omniglot import DRAWINGS, OmniglotTasks, load_omniglot, split_classes
from learntolearn.data.omniglot import fixed_tasks as fixed_omniglot
from learntolearn.data.omniglot_runs import check_lake_runs, lake_runs
from learntolearn.data.sinusoid import SinusoidTasks
from learntolearn.data.sinusoid import fixed_tasks as fixed_sinusoids
from learntolearn.data.verified import DataError
from learntolearn.models.metric_networks import METRIC_NETWORKS
from learntolearn.models.networks import MLP, ConvNet, FCNet
from learntolearn.models.optimizers import LearnerAndMetaLearner, MetaLearnerCell
from learntolearn.objective import MODES, TaskLoss, accuracy, cross_entropy, mse
from learntolearn.paths import data_dir
from learntolearn.tasks import TaskBatch, TaskDistribution

if TYPE_CHECKING:
    from learntolearn.fewshot.config import ExperimentConfig

__all__ = [
    "FAMILIES",
    "OMNIGLOT_NETWORKS",
    "SPLIT_SEEDS",
    "TaskFamily",
    "TestSet",
    "omniglot_split_tests",
]


@dataclass(frozen=True)
class TestSet:
    """Fixed test tasks with ``shots`` support examples (per class), fine-tuned with step size
    ``lr``; ``keys`` maps each metric key the results store uses to the batch-norm mode it
    scores. ``tasks()`` builds the tasks (seeded, on the CPU) in one or more parts."""

    shots: int
    lr: float
    tasks: Callable[[], Sequence[TaskBatch]]
    keys: Mapping[str, str]


@dataclass(frozen=True)
class TaskFamily:
    """One family of tasks, as every method meets it."""

    network: Callable[[ExperimentConfig, int], nn.Module]  # (config, extra input features)
    loss: TaskLoss
    score: TaskLoss  # one test task's score of the query predictions
    metric: str  # the score's name in the stored metrics
    sampler: Callable[[ExperimentConfig, torch.device], TaskDistribution]
    test_sets: Callable[[ExperimentConfig], list[TestSet]]
    check: Callable[[ExperimentConfig], str | None]  # what is wrong with its fields, or None
    chunk: int | None = None  # test tasks adapted at once (memory and speed; same results)
    networks: tuple[str, ...] = ()  # the config.model values it builds (none: model unset)
    # what the config asks of the data (classes, examples per class, the test files), checked
    # before any training: a clear error now instead of one after hours
    check_data: Callable[[ExperimentConfig], None] = lambda c: None
    # fixed tasks of the validation classes, for a stopping rule (None: the family has none)
    validation_sets: Callable[[ExperimentConfig], list[TestSet]] | None = None


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _sinusoid_check(c: ExperimentConfig) -> str | None:
    if c.n_way is not None or c.model is not None or c.test_steps is not None:
        return "n_way, model and test_steps apply to classification tasks only"
    if not c.hidden or not all(_whole(h) and h >= 1 for h in c.hidden):
        return f"hidden must be positive layer widths, got {c.hidden!r}"
    return None


def _metric_network(name: str) -> Callable[[ExperimentConfig], nn.Module]:
    return lambda c: METRIC_NETWORKS[name]()


# Omniglot's networks by config.model: ConvNet (strided), ConvNet (max-pool), FCNet; the
# metric-based methods' networks; MAML's strided ConvNet with 32 filters (Ravi & Larochelle's
# width) as a Meta-Learner LSTM's learner. A method may bring its own (its table entry).
OMNIGLOT_NETWORKS: dict[str, Callable[[ExperimentConfig], nn.Module]] = {
    "conv": lambda c: ConvNet(c.n_way, pool=False),
    "conv-pool": lambda c: ConvNet(c.n_way, pool=True),
    "fc": lambda c: FCNet(c.n_way),
    **{name: _metric_network(name) for name in METRIC_NETWORKS},
    "meta-lstm": lambda c: LearnerAndMetaLearner(ConvNet(c.n_way, hidden=32), MetaLearnerCell()),
}


# The networks that read Omniglot at its drawings' own 105x105 pixels (the rest read 28x28).
IMAGE_SIZES = {"siamese-koch": 105}


def image_size(c: ExperimentConfig) -> int:
    """The height and width of the Omniglot images ``c``'s network reads."""
    return IMAGE_SIZES.get(c.model or "", 28)


def _omniglot_at(size: int) -> Callable[[], object]:
    return functools.partial(load_omniglot, size=size)


def _classification_check(c: ExperimentConfig) -> str | None:
    if not (_whole(c.n_way) and c.n_way >= 2):
        return f"n_way must be an integer >= 2, got {c.n_way!r}"
    if c.model is None:
        return "model must name a network for classification tasks"
    if c.hidden is not None:
        return "hidden applies to sinusoid tasks; use model instead"
    if not (_whole(c.test_steps) and 0 <= c.test_steps <= c.eval_steps):
        return (
            f"test_steps must be an integer between 0 and eval_steps ({c.eval_steps}), "
            f"got {c.test_steps!r}"
        )
    return None


def _mlp(c: ExperimentConfig, extra_inputs: int) -> nn.Module:
    assert c.hidden is not None
    return MLP((1 + extra_inputs, *c.hidden, 1))


def _sinusoid_tests(c: ExperimentConfig) -> list[TestSet]:
    def tasks(k: int, half: bool) -> Callable[[], Sequence[TaskBatch]]:
        return lambda: [
            fixed_sinusoids(
                k, num_tasks=c.eval_tasks, k_query=c.eval_query, seed=c.eval_seed, half=half
            )
        ]

    return [
        TestSet(k, lr, tasks(k, half), {region: "transductive"})
        for region, half in (("full", False), ("half", True))
        for k, lr in zip(c.eval_shots, c.eval_lrs, strict=True)
    ]


def _classifier(c: ExperimentConfig, extra_inputs: int) -> nn.Module:
    assert c.n_way is not None and extra_inputs == 0 and c.model is not None
    return OMNIGLOT_NETWORKS[c.model](c)


def _enough(what: str, n_way: int, classes: int, examples: int, per_class: int) -> None:
    """Refuse an N-way task with ``examples`` per class from ``classes`` classes of
    ``per_class`` examples, naming ``what``."""
    if n_way > classes:
        raise DataError(f"{what}: {n_way}-way tasks need {n_way} classes; it has {classes}")
    if examples > per_class:
        raise DataError(
            f"{what}: {examples} examples per class (support + query) are more than its {per_class}"
        )


def _omniglot_data(split: str) -> Callable[[ExperimentConfig], None]:
    """The training classes of ``split`` and the test split: enough classes and drawings for
    the training and test tasks (Lake's runs: every file of the archive read and checked)."""

    def check(c: ExperimentConfig) -> None:
        assert c.n_way is not None
        way = c.train_way or c.n_way
        train = len(split_classes(split))
        _enough(f"Omniglot split {split!r}", way, train, c.k_shot + c.k_query, DRAWINGS)
        if split == "background":  # Lake's runs are the test tasks
            check_lake_runs()
            return
        test = len(split_classes("test"))
        for k in c.eval_shots:
            _enough("the Omniglot test split", c.n_way, test, k + c.eval_query, DRAWINGS)

    return check


def _miniimagenet_data(c: ExperimentConfig) -> None:
    """Every image the training and test splits list is there (none is decoded yet)."""
    assert c.n_way is not None
    for split in ("train", "test"):
        _, by_class = listed_images(split)
        per_class = min(len(files) for files in by_class.values())
        queries = c.k_query if split == "train" else c.eval_query
        for k in (c.k_shot,) if split == "train" else c.eval_shots:
            _enough(f"miniImageNet split {split!r}", c.n_way, len(by_class), k + queries, per_class)


def _omniglot_train(split: str) -> Callable[[ExperimentConfig, torch.device], TaskDistribution]:
    """Training tasks from the classes of ``split`` (N-way, or ``train_way``-way when set),
    with Koch's affine distortions when the config asks for them."""

    def sampler(c: ExperimentConfig, device: torch.device) -> TaskDistribution:
        way = c.train_way or c.n_way
        assert way is not None
        tasks = OmniglotTasks(
            load_omniglot(size=image_size(c)),
            split,
            n_way=way,
            k_shot=c.k_shot,
            k_query=c.k_query,
            device=device,
        )
        return AffineDistortions(tasks) if c.augment == "affine" else tasks

    return sampler


def _classification_tests(
    c: ExperimentConfig, fixed: Callable[..., Iterator[TaskBatch]], data: Callable[[], object]
) -> list[TestSet]:
    """One test set per K of ``eval_shots``: ``fixed(data(), ...)``'s seeded N-way K-shot
    tasks, drawn lazily, scored in both batch-norm modes."""
    assert c.n_way is not None
    n_way = c.n_way

    def tasks(k: int) -> Callable[[], Sequence[TaskBatch]]:
        return lambda: fixed(
            data(),
            n_way=n_way,
            k_shot=k,
            k_query=c.eval_query,
            num_tasks=c.eval_tasks,
            seed=c.eval_seed,
        )

    modes = {m: m for m in MODES}
    return [TestSet(k, lr, tasks(k), modes) for k, lr in zip(c.eval_shots, c.eval_lrs, strict=True)]


def _omniglot_tests(c: ExperimentConfig) -> list[TestSet]:
    return _classification_tests(c, fixed_omniglot, _omniglot_at(image_size(c)))


# The seed offsets from eval_seed of the fixed tasks of the other splits' characters
SPLIT_SEEDS = {"val": 1, "train": 3}


def omniglot_split_tests(c: ExperimentConfig, split: str) -> list[TestSet]:
    """Tasks of the ``split`` characters of the Vinyals split ("val" or "train"), drawn like
    the test tasks but from a seed of their own (:data:`SPLIT_SEEDS`)."""
    tasks = functools.partial(fixed_omniglot, split=split)
    at = c.with_(eval_seed=c.eval_seed + SPLIT_SEEDS[split])
    return _classification_tests(at, tasks, _omniglot_at(image_size(c)))


def _omniglot_validation(c: ExperimentConfig) -> list[TestSet]:
    """Tasks of the validation characters (never the test characters), for stopping rules."""
    return omniglot_split_tests(c, "val")


def _lake_tests(c: ExperimentConfig) -> list[TestSet]:
    """Lake's 20 one-shot runs (20-way, one query per class: 400 trials); they are fixed, so
    ``eval_tasks``, ``eval_query`` and ``eval_seed`` do not apply."""
    size = image_size(c)
    return [TestSet(1, c.eval_lrs[0], lambda: [lake_runs(size=size)], {m: m for m in MODES})]


def _miniimagenet_split(split: str) -> MiniImagenet:
    """A decoded split, decoded once per process and image folder."""
    return _decoded(split, os.environ.get("LEARNTOLEARN_MINIIMAGENET", ""), str(data_dir()))


@functools.lru_cache(maxsize=3)
def _decoded(split: str, images: str, data: str) -> MiniImagenet:
    return load_miniimagenet(split)


def _miniimagenet_network(c: ExperimentConfig, extra_inputs: int) -> nn.Module:
    """The 4-block max-pool ConvNet with 32 filters on 84x84 RGB images (MAML Sec. 5.2; Ravi
    & Larochelle's learner), alone or with a meta-learner."""
    assert c.n_way is not None and extra_inputs == 0
    net = ConvNet(c.n_way, in_channels=3, hidden=32, image_size=84, pool=True)
    return LearnerAndMetaLearner(net, MetaLearnerCell()) if c.model == "meta-lstm" else net


def _miniimagenet_train(c: ExperimentConfig, device: torch.device) -> TaskDistribution:
    assert c.n_way is not None
    data = _miniimagenet_split("train")
    return MiniImagenetTasks(data, n_way=c.n_way, k_shot=c.k_shot, k_query=c.k_query, device=device)


def _miniimagenet_tests(c: ExperimentConfig) -> list[TestSet]:
    return _classification_tests(c, fixed_miniimagenet, lambda: _miniimagenet_split("test"))


FAMILIES: dict[str, TaskFamily] = {
    "sinusoid": TaskFamily(
        network=_mlp,
        loss=mse,
        score=mse,
        metric="mse",
        sampler=lambda c, _: SinusoidTasks(c.k_shot, c.k_query),
        test_sets=_sinusoid_tests,
        check=_sinusoid_check,
    ),
    "omniglot": TaskFamily(
        network=_classifier,
        loss=cross_entropy,
        score=accuracy,
        metric="accuracy",
        sampler=_omniglot_train("train"),
        test_sets=_omniglot_tests,
        check=_classification_check,
        chunk=25,
        networks=tuple(OMNIGLOT_NETWORKS),
        check_data=_omniglot_data("train"),
        validation_sets=_omniglot_validation,
    ),
}
FAMILIES["miniimagenet"] = replace(
    FAMILIES["omniglot"],
    network=_miniimagenet_network,
    sampler=_miniimagenet_train,
    test_sets=_miniimagenet_tests,
    networks=("conv-pool", "meta-lstm"),
    check_data=_miniimagenet_data,
    validation_sets=None,
)
FAMILIES["omniglot-trainval"] = replace(
    FAMILIES["omniglot"],
    sampler=_omniglot_train("trainval"),
    check_data=_omniglot_data("trainval"),
    validation_sets=None,
)
FAMILIES["omniglot-lake"] = replace(
    FAMILIES["omniglot"],
    sampler=_omniglot_train("background"),
    test_sets=_lake_tests,
    chunk=None,
    check_data=_omniglot_data("background"),
    validation_sets=None,
)
