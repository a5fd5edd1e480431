"""One test episode through a trained metric-based method, drawn for the reader.

:func:`test_episode` rebuilds a stored run's method and parameters and takes one of its fixed
test tasks; :func:`show_scores` draws queries next to the support images with the number the
method gives each pair (Siamese p, Matching attention, a relation score);
:func:`plot_embedding` projects an episode's embeddings and prototypes to two dimensions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.runs import build
from learntolearn.fewshot.store import Result
from learntolearn.methods.metric import MetricLearner
from learntolearn.methods.prototypical import prototypes
from learntolearn.objective import Params
from learntolearn.reporting.plotting import COLUMN_INCHES
from learntolearn.tasks import TaskBatch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_embedding", "show_scores", "test_episode"]


def test_episode(
    config: ExperimentConfig, result: Result, task: int = 0
) -> tuple[MetricLearner, Params, TaskBatch]:
    """The run's method, its trained parameters and fixed test task ``task`` (on the CPU)."""
    setup = build(config, torch.device("cpu"))
    assert isinstance(setup.method, MetricLearner), f"{config.name} is not metric-based"
    first = next(iter(setup.family.test_sets(config)[0].tasks()))
    return setup.method, result.params(), first[task]


def show_scores(
    batch: TaskBatch, values: Tensor, queries: list[int], *, label: str, fmt: str = "{:.2f}"
) -> Figure:
    """One row per query of task 0: the query image, then every support image with
    ``values[q, s]`` below it (``label`` names the value). The largest value of a row is the
    prediction (the class of that support image): it is printed in bold, green when it is the
    query's class and red with a cross, its image framed in red, when it is not, so that a wrong
    prediction never reads as a right one."""
    import matplotlib.pyplot as plt

    support = batch.x_support[0]
    s = support.shape[0]
    assert values.shape[-1] == s, f"one value per support image, got {values.shape[-1]} for {s}"
    fig, axes = plt.subplots(
        len(queries),
        s + 1,
        figsize=(min(max(0.62 * (s + 1) + 0.4, 4.8), COLUMN_INCHES), 0.95 * len(queries) + 0.55),
        squeeze=False,
        layout="constrained",
    )
    for row, q in zip(axes, queries, strict=True):
        best = int(values[q].argmax())
        right = int(batch.y_support[0, best]) == int(batch.y_query[0, q])
        row[0].imshow(batch.x_query[0, q, 0], cmap="gray", vmin=0, vmax=1)
        row[0].set_xlabel(f"query ({int(batch.y_query[0, q])})", fontsize=8, color="tab:orange")
        for j in range(s):
            row[j + 1].imshow(support[j, 0], cmap="gray", vmin=0, vmax=1)
            text = fmt.format(float(values[q, j]))
            if j != best:
                row[j + 1].set_xlabel(text, fontsize=8)
                continue
            color = "tab:green" if right else "tab:red"
            row[j + 1].set_xlabel(
                text if right else f"{text} \u2717", fontsize=8, fontweight="bold", color=color
            )
            if not right:
                for spine in row[j + 1].spines.values():
                    spine.set_edgecolor("tab:red")
                    spine.set_linewidth(2)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    labels = ", ".join(str(int(v)) for v in batch.y_support[0])
    fig.suptitle(
        f"query (left), support classes {labels}: {label}\n"
        "bold: the prediction, green if right, red \u2717 if wrong",
        fontsize=9,
    )
    for row in axes:
        for spine in row[0].spines.values():
            spine.set_edgecolor("tab:orange")
            spine.set_linewidth(2)
    return fig


def plot_embedding(support: Tensor, query: Tensor, y_support: Tensor, y_query: Tensor) -> Figure:
    """One task's support and query embeddings ``[S, F]``, ``[Q, F]`` and its class prototypes,
    projected onto the two principal directions of the support and query embeddings."""
    import matplotlib.pyplot as plt

    n = int(y_support.max()) + 1
    one_hot = torch.nn.functional.one_hot(y_support, n).to(support.dtype)
    centres = prototypes(support[None], one_hot[None])[0]  # the method's own Eq. 1
    both = torch.cat([support, query])
    mean = both.mean(0)
    _, _, v = torch.linalg.svd(both - mean, full_matrices=False)

    def project(x: Tensor) -> Any:
        return ((x - mean) @ v[:2].T).numpy()

    fig, ax = plt.subplots(figsize=(4.6, 3.6), layout="constrained")
    colors = plt.get_cmap("tab10")
    for k in range(n):
        s, q, c = (
            project(support[y_support == k]),
            project(query[y_query == k]),
            project(centres[k]),
        )
        ax.scatter(s[:, 0], s[:, 1], color=colors(k), marker="o", s=28, alpha=0.8)
        ax.scatter(q[:, 0], q[:, 1], color=colors(k), marker="x", s=30)
        ax.scatter([c[0]], [c[1]], color=colors(k), marker="*", s=220, edgecolor="black")
    ax.scatter([], [], color="gray", marker="o", label="support")
    ax.scatter([], [], color="gray", marker="x", label="query")
    ax.scatter([], [], color="gray", marker="*", s=120, edgecolor="black", label="prototype")
    ax.set_xlabel("first principal direction")
    ax.set_ylabel("second principal direction")
    ax.legend(fontsize=8, loc="best")
    return fig
