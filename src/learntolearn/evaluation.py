"""Evaluation shared by every chapter: fine-tuning curves on fixed test tasks, and 95% CIs.

The protocol of MAML (Finn et al. 2017, Sec. 5.1 and Fig. 3): start from the learned
initialisation, take 0, 1, …, n plain gradient steps on each test task's K support points and
score the query points after each step. The same seeded test tasks serve every method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

import torch
from torch import Tensor
from torch.func import vmap

from .functional import Params, expand_params
from .inner_loop import SGD, UpdateRule, adapt, inner_sgd
from .objective import Objective, TaskLoss
from .tasks import TaskBatch

__all__ = [
    "accuracy",
    "adapted_predictions",
    "finetune_curve",
    "finetune_curves",
    "mean_ci95",
    "summarize_curve",
]

Score = Callable[[Params, TaskBatch], Tensor]
"""``score(adapted_params, batch)``: one value per task of ``batch``."""

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def mean_ci95(values: Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval over tasks.

    ``values`` holds one number per test task; the half-width is 1.96·s/√n with the sample
    standard deviation s, the convention of the few-shot literature (e.g. MAML's Table 1).
    """
    v = values.detach().double().flatten()
    if v.numel() < 2:
        raise ValueError("a confidence interval needs at least two tasks")
    return v.mean().item(), Z_95 * v.std(unbiased=True).item() / math.sqrt(v.numel())


def _median(values: Tensor) -> float:
    """The median, counting a non-finite value (a diverged task) as +inf."""
    v = values.double()
    v = torch.where(torch.isfinite(v), v, torch.inf).sort().values
    n = v.numel()
    return ((v[(n - 1) // 2] + v[n // 2]) / 2).item()


def summarize_curve(curve: Tensor, metric: str = "mse") -> dict[str, object]:
    """Per step: mean and 95% CI over tasks and the median; for a loss, how many tasks diverged.

    ``curve`` is ``[steps+1, tasks]`` (from :func:`finetune_curve`). Plain gradient descent
    from a meta-learned initialisation can blow up on a few ill-conditioned tasks when run for
    more steps than it was meta-trained for; such a task counts as *diverged* at a step when its
    loss is non-finite or at least ten times its loss before adaptation. The mean keeps every
    task (as the papers do), so divergence shows in it; the median and the count say how much.
    """
    stats = [mean_ci95(c) for c in curve]
    out: dict[str, object] = {
        "metric": metric,
        "mean": [m for m, _ in stats],
        "ci95": [h for _, h in stats],
        "median": [_median(c) for c in curve],
    }
    if metric != "accuracy":
        out["diverged"] = (~torch.isfinite(curve) | (curve >= 10 * curve[0])).sum(1).tolist()
    return out


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correctly classified examples of one task."""
    return (logits.argmax(-1) == labels).float().mean()


def finetune_curves(
    objective: Objective,
    params: Params,
    batch: TaskBatch,
    *,
    steps: int,
    lr: float,
    scores: Mapping[str, Score],
    chunk: int | None = None,
    rule: UpdateRule | None = None,
    only: Collection[str] | None = None,
) -> dict[str, Tensor]:
    """Scores of each task after 0..``steps`` SGD steps on its support set: ``[steps+1, B]`` each.

    Every ``scores[name](adapted_params, batch)`` returns one value per task; all of them see
    the same adaptation trajectory, which is computed once. ``chunk`` adapts that many tasks at
    a time (memory and speed only). ``rule`` replaces SGD with step size ``lr`` (Reptile adapts
    with Adam); ``only`` adapts those parameters alone (ANIL, or a frozen body).
    """
    if chunk is not None and chunk < batch.num_tasks:
        parts = [
            finetune_curves(
                objective,
                params,
                batch[i : i + chunk],
                steps=steps,
                lr=lr,
                scores=scores,
                rule=rule,
                only=only,
            )
            for i in range(0, batch.num_tasks, chunk)
        ]
        return {k: torch.cat([p[k] for p in parts], dim=1) for k in scores}
    out: dict[str, list[Tensor]] = {k: [] for k in scores}

    def record(_: int, p: Params) -> None:
        with torch.no_grad():
            for name, score in scores.items():
                out[name].append(score(p, batch))

    theta = expand_params({k: v.detach() for k, v in params.items()}, batch.num_tasks)
    adapt(
        theta,
        lambda p, _: objective.batched(p, batch.x_support, batch.y_support),
        steps=steps,
        rule=rule or SGD(lr),
        only=only,
        differentiable=False,
        trace=record,
    )
    return {k: torch.stack(v) for k, v in out.items()}


def query_score(objective: Objective, score: TaskLoss | None = None) -> Score:
    """``(params, batch) ↦`` per-task ``score`` (default: the loss) of the query predictions."""
    metric = vmap(score or objective.loss)

    def query(p: Params, batch: TaskBatch) -> Tensor:
        return metric(objective.predict(p, batch.x_query, batch.x_support), batch.y_query)

    return query


def finetune_curve(
    objective: Objective,
    params: Params,
    batch: TaskBatch,
    *,
    steps: int,
    lr: float,
    score: TaskLoss | None = None,
    rule: UpdateRule | None = None,
) -> Tensor:
    """Query score of each task after 0..``steps`` SGD steps on its support set: ``[steps+1, B]``.

    ``score(prediction, target)`` of one task defaults to the objective's loss (e.g.
    :func:`accuracy` for classification); ``rule`` as in :func:`finetune_curves`.
    """
    scores = {"query": query_score(objective, score)}
    curves = finetune_curves(objective, params, batch, steps=steps, lr=lr, scores=scores, rule=rule)
    return curves["query"]


def adapted_predictions(
    objective: Objective,
    params: Params,
    batch: TaskBatch,
    x: Tensor,
    *,
    steps: tuple[int, ...],
    lr: float,
) -> dict[int, Tensor]:
    """Predictions on inputs ``x [B, G, ...]`` after each of ``steps`` fine-tuning steps."""
    keep: dict[int, Tensor] = {}

    def record(step: int, p: Params) -> None:
        if step in steps:
            with torch.no_grad():
                keep[step] = objective.predict(p, x, batch.x_support)

    theta = expand_params({k: v.detach() for k, v in params.items()}, batch.num_tasks)
    inner_sgd(
        theta,
        lambda p: objective.batched(p, batch.x_support, batch.y_support),
        steps=max(steps),
        lr=lr,
        differentiable=False,
        trace=record,
    )
    return keep
