"""Figures shared by the chapters (matplotlib is a book-only dependency, imported lazily)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from learntolearn.tasks import TaskBatch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BOOK_STYLE",
    "COLUMN_INCHES",
    "MIN_FONT_PT",
    "curve_with_band",
    "legend_below",
    "plain_log_scale",
    "show_tasks",
    "use_book_style",
]

COLUMN_INCHES = 6.8
"""Width of the book's text column at a 1280-pixel window (about 690 px), at :data:`BOOK_STYLE`'s
100 dpi: a figure this wide is shown at its own size, never scaled down."""
MIN_FONT_PT = 9  # the smallest text in any figure

BOOK_STYLE: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (COLUMN_INCHES, 3.0),
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
}
"""The figures' style in every chapter: column-wide at 100 dpi, text of at least 9 pt."""


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib (each chapter's first cell calls it)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(BOOK_STYLE)


def legend_below(fig: Figure, ax: Axes, ncol: int | None = None) -> None:
    """One legend for the whole figure, below its panels, where it covers no data (the figure
    uses constrained layout, as :data:`BOOK_STYLE` sets)."""
    handles, labels = ax.get_legend_handles_labels()
    ncol = ncol or min(len(labels), 3)
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)


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


def plain_log_scale(ax: Axes) -> None:
    """A log-scaled y-axis labelled with plain numbers (0.3, 2, 100) instead of powers of ten;
    where it spans less than two decades, the minor ticks at 2, 3 and 5 times a power of ten
    are labelled too."""
    from matplotlib.ticker import FuncFormatter

    def minor(value: float, _: int) -> str:
        low, high = ax.get_ylim()
        if value <= 0 or low <= 0 or math.log10(high / low) > 2:
            return ""
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        return f"{value:g}" if mantissa in (2, 3, 5) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def show_tasks(batch: TaskBatch, *, n_way: int, k_shot: int, query_per_class: int = 1) -> Figure:
    """One row per task: its N·K support images, then ``query_per_class`` query images per
    class, each tiled with ``torchvision.utils.make_grid`` and labelled with its class."""
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    b, pad = batch.num_tasks, 2
    q_total = batch.x_query.shape[1] // n_way
    q_index = [c * q_total + j for c in range(n_way) for j in range(query_per_class)]
    n_support, n_query = n_way * k_shot, len(q_index)
    fig, axes = plt.subplots(
        b,
        2,
        figsize=(min(0.62 * (n_support + n_query) + 0.6, COLUMN_INCHES), 0.85 * b + 0.3),
        squeeze=False,
        gridspec_kw={"width_ratios": [n_support, n_query]},
        layout="constrained",
    )
    for t in range(b):
        parts = (
            (batch.x_support[t], batch.y_support[t], "tab:blue"),
            (batch.x_query[t, q_index], batch.y_query[t, q_index], "tab:orange"),
        )
        for ax, (images, labels, color) in zip(axes[t], parts, strict=True):
            grid = make_grid(images.cpu(), nrow=len(images), padding=pad, pad_value=1.0)
            ax.imshow(grid[0], cmap="gray", vmin=0, vmax=1)
            size = images.shape[-1] + pad
            ax.set_xticks([pad + size * i + size / 2 - pad / 2 for i in range(len(images))])
            ax.set_xticklabels([str(v) for v in labels.tolist()], fontsize=9)
            ax.tick_params(length=0, pad=1)
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2)
        axes[t, 0].set_ylabel(f"task {t + 1}", fontsize=9)
    axes[0, 0].set_title("support set (class labels below)", fontsize=10, loc="left")
    axes[0, 1].set_title("query set", fontsize=10, loc="left")
    return fig
