"""Paper-protocol runs that advance over several sittings, as the book shows them.

A paper-protocol Omniglot run takes hours to days on a CPU, so ``reproduce --budget`` advances
it a sitting at a time (:mod:`learntolearn.catalogue.plan`); between sittings its checkpoint
and progress record stay in the store's ``in-progress/`` folder. Along the way the run evaluates
the fixed test tasks every ``milestone_every`` iterations (``milestones``), at the step the
paper reports: a learning curve only, never used to pick a model. :func:`progress_runs` reads
what the store has, finished or not; :func:`progress_table` and :func:`plot_milestones` show it
next to the paper's number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from learntolearn.catalogue import experiment, store_for
from learntolearn.experiments.clock import duration
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.store import Result
from learntolearn.reporting.tables import Table, fmt_ci

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from learntolearn.reporting.published import Published

__all__ = ["POPULATION", "ProgressRun", "plot_milestones", "progress_runs", "progress_table"]

# The third batch-norm mode a run can be scored in: the statistics of training images
# (the stored analysis ``population_bn``, learntolearn.analysis.population_batchnorm)
POPULATION = "population"


@dataclass(frozen=True)
class ProgressRun:
    """What the store holds of one run: ``iteration`` of ``config.iterations`` done (0: not
    started), its milestone evaluations, the wall time and devices of its sittings, and the
    stored result once it is finished."""

    name: str
    config: ExperimentConfig
    iteration: int = 0
    milestones: list[dict[str, float]] = field(default_factory=list)
    sittings: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    checkpoint_bytes: int = 0  # the in-progress checkpoint (0 once the result is stored)
    result: Result | None = None  # the stored result, once finished

    @property
    def stopping(self) -> dict[str, Any] | None:
        """What the run's stopping rule recorded (a finished run's), or None."""
        if self.result is None:
            return None
        found = self.result.metrics["train"].get("stopping")
        return found if isinstance(found, dict) else None

    @property
    def status(self) -> str:
        rule = self.stopping
        if self.finished and rule is not None and rule["ended_at"] < self.config.iterations:
            return (
                f"stopped at {rule['ended_at']:,} of {self.config.iterations:,} iterations "
                f"({rule['reason']}; kept iteration {rule['best_iteration']:,})"
            )
        if self.finished:
            return f"finished, {self.config.iterations:,} iterations"
        if not self.iteration:
            return "not started"
        return f"{self.iteration:,} of {self.config.iterations:,} iterations"

    @property
    def done(self) -> int:
        """Iterations trained: where its stopping rule ended a finished run, else
        ``iteration``."""
        rule = self.stopping
        return int(rule["ended_at"]) if rule is not None else self.iteration

    @property
    def wall_time_s(self) -> float:
        return max((float(s.get("total_wall_time_s", 0.0)) for s in self.sittings), default=0.0)

    def analysis(self, name: str) -> dict[str, Any] | None:
        """The finished run's stored analysis ``name``, or None where it was not computed."""
        if self.result is None:
            return None
        found = self.result.metrics.get("analyses", {}).get(name)
        return found if isinstance(found, dict) else None

    @property
    def population(self) -> dict[str, Any] | None:
        """The ``population_bn`` analysis (batch norm with the statistics of training images)."""
        return self.analysis("population_bn")

    def latest(self, key: str) -> tuple[int, float, float] | None:
        """(iteration, mean, 95% CI half-width) of the last milestone with metric ``key``."""
        for m in reversed(self.milestones):
            if key in m and m[key] is not None:
                return int(m["iteration"]), float(m[key]), float(m[f"{key}/ci95"])
        return None

    def accuracy(
        self, mode: str, shots: int | None = None, split: str = "test"
    ) -> tuple[float, float, int | None]:
        """(mean, 95% CI half-width, iteration) of the run's test accuracy in ``mode`` (a
        fraction): the final evaluation at its reported step once the run is finished
        (iteration None), else its last milestone at ``shots`` (default: the first evaluated
        number of shots) and the iteration it was made at; NaNs where there is neither.
        :data:`POPULATION` reads the finished run's :attr:`population` analysis instead, and
        ``split`` "train" or "val" its ``splits`` analysis (tasks of those characters)."""
        at = str(shots or self.config.eval_shots[0])
        if mode == POPULATION or split != "test":  # a stored analysis, where it was computed
            found = self.population if mode == POPULATION else self.analysis("splits")
            if found is None:
                return math.nan, math.nan, None
            curve = found["shots"][at] if mode == POPULATION else found[split][mode][at]
            return float(curve["mean"][-1]), float(curve["ci95"][-1]), None
        if self.result is not None:
            curve, step = self.result.curve(mode, shots), self.result.reported_step
            return float(curve["mean"][step]), float(curve["ci95"][step]), None
        last = self.latest(f"{mode}/{shots or self.config.eval_shots[0]}")
        return (math.nan, math.nan, None) if last is None else (last[1], last[2], last[0])

    def accuracy_cell(self, mode: str, shots: int | None = None, split: str = "test") -> str:
        """:meth:`accuracy` as a table prints it: ``98.0 ± 0.6`` in percent, ``(it. 30,000)``
        after a milestone's, ``—`` where the run has neither."""
        mean, half, iteration = self.accuracy(mode, shots, split)
        if math.isnan(mean):
            return "—"
        at = "" if iteration is None else f" (it. {iteration:,})"
        return fmt_ci(100 * mean, 100 * half, 1) + at


def progress_runs(names: Sequence[str], profile: str = "paper") -> dict[str, ProgressRun]:
    """Every run of ``names`` at ``profile`` as the store has it: stored, in progress, or not
    started. Nothing is trained."""
    runs = {}
    for name in names:
        cfg = experiment(name, profile)
        store = store_for(cfg)
        result = store.get(cfg)
        if result is not None:
            train = result.metrics["train"]
            sittings = result.provenance.get("sittings") or [
                {"total_wall_time_s": result.provenance.get("wall_time_s", 0.0)}
            ]
            runs[name] = ProgressRun(
                name, cfg, cfg.iterations, train.get("milestones", []), sittings, True, 0, result
            )
            continue
        record = store.progress(cfg) or {}
        runs[name] = ProgressRun(
            name,
            cfg,
            int(record.get("iteration", 0)),
            list(record.get("milestones", [])),
            list(record.get("sittings", [])),
            checkpoint_bytes=int(record.get("checkpoint_bytes", 0)),
        )
    return runs


def _metric(cfg: ExperimentConfig, mode: str) -> str:
    return f"{mode}/{cfg.eval_shots[0]}"


def progress_table(
    runs: Mapping[str, ProgressRun],
    published: Mapping[str, Published],
    modes: Sequence[str],
    caption: str,
    name: str = "",
) -> Table:
    """A row per run: how far it is, the last milestone's accuracy (%) in each batch-norm mode,
    the paper's number, and the training time so far."""
    rows = []
    for run_name, r in runs.items():
        cells = []
        for mode in modes:
            last = r.latest(_metric(r.config, mode))
            cells.append(
                "—"
                if last is None
                else f"{fmt_ci(100 * last[1], 100 * last[2], 1)} (it. {last[0]:,})"
            )
        paper = published.get(run_name)
        rows.append(
            [
                run_name,
                r.status,
                *cells,
                "—" if paper is None else paper.number,
                duration(r.wall_time_s) if r.wall_time_s else "—",
                f"{r.checkpoint_bytes / 2**20:.1f} MiB" if r.checkpoint_bytes else "—",
            ]
        )
    headers = ["experiment", "progress", *(f"{m} (last milestone)" for m in modes), "paper"]
    return Table([*headers, "training time", "checkpoint"], rows, caption, name)


def plot_milestones(
    runs: Mapping[str, ProgressRun],
    published: Mapping[str, Published],
    mode: str,
    labels: Mapping[str, str],
) -> Figure:
    """Milestone accuracy (%) against meta-training iterations, one line per run (with its 95%
    CI band), and the paper's final number as a dashed line in the same colour."""
    import matplotlib.pyplot as plt

    from learntolearn.reporting.plotting import COLUMN_INCHES, legend_below

    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 3.0))
    for i, (name, r) in enumerate(runs.items()):
        key = _metric(r.config, mode)
        points = [m for m in r.milestones if m.get(key) is not None]
        colour = f"C{i}"
        if points:
            its = [m["iteration"] for m in points]
            mean = [100 * m[key] for m in points]
            half = [100 * m[f"{key}/ci95"] for m in points]
            ax.plot(its, mean, "o-", color=colour, label=f"{labels[name]} ({r.status})")
            lo = [a - b for a, b in zip(mean, half, strict=True)]
            hi = [a + b for a, b in zip(mean, half, strict=True)]
            ax.fill_between(its, lo, hi, color=colour, alpha=0.2, linewidth=0)
        paper = published.get(name)
        if paper is not None:
            ax.axhline(paper.mean, color=colour, linestyle="--", linewidth=1)
    ax.set_xlim(0, max(r.config.iterations for r in runs.values()))
    ax.set_xlabel("meta-training iterations")
    ax.set_ylabel(f"test accuracy, {mode} (%)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        legend_below(fig, ax, ncol=1)
    return fig
