"""Evaluation of a trained method on its task family's fixed test sets.

For every test set of the family (:mod:`~learntolearn.fewshot.task_families`), the method's
own test-time adaptation (:meth:`~learntolearn.methods.protocol.Method.predictions`) predicts the
query sets after each step, the family's score rates them, and the curve over steps is summarised
with its 95% CI (:func:`~learntolearn.analysis.statistics.summarize_curve`). The same seeded test
tasks serve every method of a family.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from learntolearn.analysis.statistics import score_curve, summarize_curve
from learntolearn.experiments.device import cpu_numerics
from learntolearn.experiments.training import Observer
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

if TYPE_CHECKING:
    from learntolearn.fewshot.config import ExperimentConfig
    from learntolearn.fewshot.runs import Setup
    from learntolearn.fewshot.task_families import TestSet

__all__ = ["at_reported_step", "evaluate", "milestones", "test_chunks"]


def test_chunks(
    setup: Setup, parts: Sequence[TaskBatch], device: torch.device
) -> Iterator[TaskBatch]:
    """The family's test tasks, prepared for the method, on ``device``, ``chunk`` at a time."""
    chunk = setup.family.chunk
    for part in parts:
        step = chunk if chunk is not None and chunk < part.num_tasks else part.num_tasks
        for i in range(0, part.num_tasks, step):
            yield setup.prepare(part[i : i + step]).to(device)


def at_reported_step(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` evaluated up to the step its paper reports only (``test_steps``, else every
    step of ``eval_steps``): what milestones, stopping rules and analyses score."""
    return config.with_(eval_steps=config.test_steps or config.eval_steps)


def evaluate(
    config: ExperimentConfig,
    setup: Setup,
    params: Params,
    sets: Sequence[TestSet] | None = None,
) -> dict[str, Any]:
    """``{metric key: {K: curve summary}}`` on every test set of the config's task family (or
    on ``sets``, e.g. its validation sets)."""
    device = next(iter(params.values())).device
    cpu_numerics(device)
    family, out = setup.family, {}
    for test in family.test_sets(config) if sets is None else sets:
        modes = tuple(dict.fromkeys(test.keys.values()))
        curves: dict[str, list[torch.Tensor]] = {key: [] for key in test.keys}
        for batch in test_chunks(setup, test.tasks(), device):
            predictions = setup.method.predictions(
                params, batch, steps=config.eval_steps, lr=test.lr, modes=modes
            )
            for key, mode in test.keys.items():
                curves[key].append(score_curve(family.score, predictions[mode], batch.y_query))
        for key, parts in curves.items():
            summary = summarize_curve(torch.cat(parts, 1), family.metric)
            out.setdefault(key, {})[str(test.shots)] = {"lr": test.lr, **summary}
    return out


def milestones(config: ExperimentConfig, setup: Setup) -> list[Observer]:
    """The evaluation on the fixed test tasks every ``config.milestone_every`` iterations, at the
    reported step only: ``{"<metric key>/<K>": mean, "<metric key>/<K>/ci95": half-width}``.
    A learning curve for runs in progress; nothing is selected with it."""
    if config.milestone_every is None:
        return []
    at = at_reported_step(config)

    def measure(params: Params) -> dict[str, float]:
        out = {}
        for key, by_shots in evaluate(at, setup, params).items():
            for shots, curve in by_shots.items():
                out[f"{key}/{shots}"] = curve["mean"][-1]
                out[f"{key}/{shots}/ci95"] = curve["ci95"][-1]
        return out

    return [Observer("milestones", config.milestone_every, measure)]
