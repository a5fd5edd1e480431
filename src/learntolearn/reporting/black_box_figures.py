"""The black-box chapter's pictures: what MANN's memory and SNAIL's attention do on one fixed
test episode, and accuracy by instance number against Santoro et al.'s table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from learntolearn.methods.black_box import BlackBox, SequenceInputs
from learntolearn.methods.mann import MANNCore
from learntolearn.methods.metric import embed
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "parameter_count",
    "plot_instances",
    "plot_memory",
    "plot_snail_attention",
    "read_episode",
]


def parameter_count(params: Params) -> int:
    return sum(v.numel() for v in params.values())


def read_episode(
    method: BlackBox, params: Params, batch: TaskBatch, mode: str = "non-transductive"
) -> SequenceInputs:
    """The steps the sequence model reads for ``batch`` (one task), with the trained
    ``params`` loaded into the method's network (for the cores' own inspection methods)."""
    method.objective.model.load_state_dict(params, strict=False)
    with torch.no_grad():
        return method.sequence(batch, *embed(method.objective, params, batch, mode))


def plot_memory(core: MANNCore, steps: SequenceInputs) -> Figure:
    """MANN over one episode: the read weights (summed over heads) on each memory slot at each
    step, with the class of the example read, and each slot's usage."""
    import matplotlib.pyplot as plt

    with torch.no_grad():
        h = core.history(steps.support)
    reads = h["read_weights"][0].sum(1)  # [T, slots]
    usage = h["usage"][0]
    labels = steps.labels[0].tolist()
    used = (usage.amax(0) > 0.05 * usage.max()).nonzero().flatten()
    slots = slice(0, int(used.max()) + 2) if used.numel() else slice(0, core.slots)
    fig, axes = plt.subplots(1, 2, figsize=(6.8, 3.2), layout="constrained", sharey=True)
    for ax, values, title in ((axes[0], reads, "read weights"), (axes[1], usage, "usage")):
        image = ax.imshow(
            values[:, slots].numpy(), aspect="auto", cmap="viridis", interpolation="nearest"
        )
        ax.set_xlabel("memory slot")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8)
    axes[0].set_ylabel("step (class of the example read)")
    axes[0].set_yticks(range(len(labels)), [str(c) for c in labels], fontsize=6)
    return fig


def plot_snail_attention(attention: Mapping[str, Any]) -> Figure:
    """Each of SNAIL's attention blocks: how a query's step spreads its attention over the
    support steps (red: the query's class) and itself (q), from the stored ``attention``
    analysis (:mod:`learntolearn.analysis.snail_attention`)."""
    import matplotlib.pyplot as plt

    rows, labels = attention["blocks"], attention["support_classes"]
    fig, axes = plt.subplots(1, len(rows), figsize=(6.8, 2.4), sharey=True, layout="constrained")
    colors = ["tab:red" if c == attention["query_class"] else "tab:gray" for c in labels]
    colors.append("black")
    ticks = [*(str(c) for c in labels), "q"]
    for i, (ax, p) in enumerate(zip(axes, rows, strict=True)):
        ax.bar(range(len(ticks)), p, color=colors)
        ax.set_title(f"attention block {i + 1}")
        ax.set_xlabel("step read (its class)")
        ax.set_xticks(range(len(ticks)), ticks, fontsize=6)
    axes[0].set_ylabel("attention of the query")
    return fig


def plot_instances(
    ours: Mapping[str, Sequence[tuple[float, float]]],
    paper: Mapping[str, Mapping[int, float]],
    colors: Mapping[str, str],
) -> Figure:
    """Accuracy (%) by instance number: ``ours`` (label → (mean, ci95) per instance 1..K, as
    fractions) as lines with intervals, ``paper`` (label → {instance: accuracy %}) as dashed
    markers."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 2.9), layout="constrained")
    for label, values in ours.items():
        x = range(1, len(values) + 1)
        mean = [100 * m for m, _ in values]
        ci = [100 * c for _, c in values]
        ax.errorbar(
            x, mean, yerr=ci, marker="o", markersize=3, capsize=2, label=label, color=colors[label]
        )
    for label, values in paper.items():
        ax.plot(
            list(values),
            list(values.values()),
            "s--",
            markersize=3,
            label=label,
            color=colors[label],
            alpha=0.7,
        )
    ax.set_xlabel("instance (n-th presentation of the class in the episode)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    return fig
