"""Figures shared by the chapters (matplotlib is a book-only dependency, imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from learntolearn.tasks import TaskBatch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["curve_with_band", "show_tasks"]


def curve_with_band(
    ax: Axes,
    mean: Sequence[float | None],
    ci95: Sequence[float | None],
    *,
    label: str,
    **style: object,
) -> None:
    """A line over steps 0..n with its 95% confidence band."""
    nan = float("nan")  # a stored null: the mean over tasks was not finite at that step
    mean = [nan if m is None else m for m in mean]
    ci95 = [nan if h is None else h for h in ci95]
    steps = range(len(mean))
    lo = [m - h for m, h in zip(mean, ci95, strict=True)]
    hi = [m + h for m, h in zip(mean, ci95, strict=True)]
    (line,) = ax.plot(steps, mean, label=label, **style)
    ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)


def show_tasks(batch: TaskBatch, *, n_way: int, k_shot: int, query_per_class: int = 1) -> Figure:
    """One row per task: the N·K support images, then one query image per class, labelled."""
    import matplotlib.pyplot as plt

    b = batch.num_tasks
    cols = n_way * k_shot + n_way * query_per_class
    fig, axes = plt.subplots(b, cols, figsize=(0.75 * cols, 0.95 * b), squeeze=False)
    q_total = batch.x_query.shape[1] // n_way
    for t in range(b):
        q_index = [c * q_total + j for c in range(n_way) for j in range(query_per_class)]
        images = [*batch.x_support[t], *batch.x_query[t, q_index]]
        labels = [*batch.y_support[t].tolist(), *batch.y_query[t, q_index].tolist()]
        for i, (ax, img, lab) in enumerate(zip(axes[t], images, labels, strict=True)):
            ax.imshow(img.squeeze(0).cpu(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(str(lab), fontsize=7, labelpad=1)
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:blue" if i < n_way * k_shot else "tab:orange")
                spine.set_linewidth(1.5)
        axes[t, 0].set_ylabel(f"task {t + 1}", fontsize=8)
    axes[0, 0].set_title("support set (blue)", fontsize=8, loc="left")
    axes[0, n_way * k_shot].set_title("query set (orange)", fontsize=8, loc="left")
    fig.tight_layout(pad=0.3)
    return fig
