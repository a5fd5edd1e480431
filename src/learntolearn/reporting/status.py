"""How far the book reproduces each published number, computed from the store (issue 22).

For every Omniglot number of :data:`~learntolearn.reporting.results.PAPERS`, in the paper's
batch-norm mode, the best evidence the store has:

* **reproduced**: a finished paper-protocol run inside the paper's 95% interval (±0.5 points
  where the paper prints none);
* **finished, short of it** / **finished, above it**: a finished paper-protocol run outside it,
  below or above the paper's number, with the gap;
* **in progress**: a paper-protocol run that advances in sittings: iterations done and its
  latest milestone;
* **short run**: only a shorter run of another profile, with its iterations and gap;
* **not run**: nothing stored, with the reason a profile leaves it out or the plan's estimate
  of its CPU-hours at the paper protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from learntolearn.experiments.clock import duration
from learntolearn.fewshot.store import Result
from learntolearn.reporting.progress import ProgressRun
from learntolearn.reporting.published import Published
from learntolearn.reporting.tables import Table, fmt_ci

__all__ = ["NO_INTERVAL", "Status", "omniglot_status", "reproduction_status", "status_table"]

NO_INTERVAL = 0.5  # points: the interval where a paper prints no CI
STATES = (
    "reproduced",
    "finished, above it",
    "finished, short of it",
    "in progress",
    "short run",
    "not run",
)


@dataclass(frozen=True)
class Status:
    """One published number and where the book stands on it."""

    name: str
    paper: Published
    state: str
    detail: str
    ours: float | None = None  # accuracy (%) the detail quotes, if any


def _inside(ours: float, paper: Published) -> bool:
    half = paper.ci95 if paper.ci95 is not None else NO_INTERVAL
    return abs(ours - paper.mean) <= half


def _accuracy(result: Result, mode: str) -> tuple[float, float]:
    curve, step = result.curve(mode), result.reported_step
    return 100 * curve["mean"][step], 100 * curve["ci95"][step]


def reproduction_status(
    published: Mapping[str, Published],
    modes: Mapping[str, str],
    paper_runs: Mapping[str, ProgressRun],
    short_runs: Mapping[str, Result],
    not_run: Mapping[str, str],
) -> list[Status]:
    """The status of every number of ``published`` (by experiment name), in the paper's mode
    (``modes``, by name): from the paper-protocol runs the store has (``paper_runs``, finished
    or in progress), else a shorter run (``short_runs``), else why it is not run (``not_run``:
    a reason, or the plan's estimate)."""
    out = []
    for name, paper in published.items():
        mode, run = modes[name], paper_runs.get(name)
        if run is not None and run.finished and run.result is not None:
            ours, ci = _accuracy(run.result, mode)
            inside = _inside(ours, paper)
            state = (
                "reproduced"
                if inside
                else "finished, above it"
                if ours > paper.mean
                else "finished, short of it"
            )
            gap = "" if inside else f"; {ours - paper.mean:+.1f} points"
            detail = f"{fmt_ci(ours, ci, 1)} ({run.status}, paper protocol{gap})"
            out.append(Status(name, paper, state, detail, ours))
            continue
        if run is not None and run.iteration:
            last = run.latest(f"{mode}/{run.config.eval_shots[0]}")
            where = f"{run.iteration:,} of {run.config.iterations:,} it."
            if last is None:
                out.append(Status(name, paper, "in progress", f"{where}, no milestone yet"))
            else:
                it, mean, ci = last
                milestone = f"{fmt_ci(100 * mean, 100 * ci, 1)} at it. {it:,}"
                out.append(Status(name, paper, "in progress", f"{where}; {milestone}", 100 * mean))
            continue
        short = short_runs.get(name)
        if short is not None:
            ours, ci = _accuracy(short, mode)
            gap = ours - paper.mean
            detail = (
                f"{fmt_ci(ours, ci, 1)} ({short.config.profile} profile, "
                f"{short.config.iterations:,} it.; {gap:+.1f} points)"
            )
            out.append(Status(name, paper, "short run", detail, ours))
            continue
        out.append(Status(name, paper, "not run", not_run.get(name, "not run yet")))
    return out


def status_table(
    statuses: Sequence[Status], labels: Mapping[str, str], caption: str, name: str = ""
) -> Table:
    """One row per published number: the experiment, the paper's number, the state, the
    evidence; and a count per state in the caption."""
    counts = {s: sum(1 for x in statuses if x.state == s) for s in STATES}
    summary = "; ".join(f"{n} {state}" for state, n in counts.items() if n)  # states have commas
    rows = [[labels.get(s.name, s.name), s.paper.number, s.state, s.detail] for s in statuses]
    return Table(
        ["experiment", "paper", "status", "evidence"], rows, f"{caption} ({summary})", name
    )


def _has_rule(config: object) -> bool:
    return getattr(config, "stop_every", None) is not None


def _benchmark_estimate(name: str, config: Any) -> str:
    """What the stored benchmark of every method's step (:mod:`.costs`) says a run that has no
    cost of its own would take at the paper protocol, or why it cannot say."""
    from learntolearn.reporting.costs import load, method_setting, step_estimate

    found = step_estimate(name, config)
    if found is not None:
        seconds = found[0] * config.iterations
        return f"~ {duration(seconds)} of CPU at the paper protocol (the benchmark's step time)"
    key = method_setting(name)
    if key is None:
        return "no measured cost to estimate it"
    left_out = load().record.get("left_out", [])
    left = [x["reason"] for x in left_out if (x["method"], x["setting"]) == key]
    return f"the benchmark left its step out ({left[0]})" if left else "no measured cost"


def omniglot_status(short_profile: str = "cpu") -> list[Status]:
    """:func:`reproduction_status` of every Omniglot number of the results chapter (and Koch
    et al.'s on Lake's runs), from the store: nothing is trained."""
    from learntolearn.catalogue import chapter_experiments, experiment, not_run, store_for
    from learntolearn.catalogue.fewshot import omniglot_name
    from learntolearn.catalogue.plan import plan
    from learntolearn.reporting.progress import progress_runs
    from learntolearn.reporting.published import LAKE_SIAMESE
    from learntolearn.reporting.results import PAPERS

    published = {
        omniglot_name(m, n, k): number
        for m, paper in PAPERS.items()
        for (n, k), number in paper.numbers.items()
    }
    modes = {omniglot_name(m, n, k): p.mode for m, p in PAPERS.items() for n, k in p.numbers}
    published["omniglot/siamese-lake"] = LAKE_SIAMESE
    modes["omniglot/siamese-lake"] = PAPERS["siamese"].mode
    names = list(published)
    paper_runs = progress_runs(names, "paper")
    shown = set(chapter_experiments("10_results", short_profile)) | {"omniglot/siamese-lake"}
    short = {}
    for name in names:
        cfg = experiment(name, short_profile)
        found = store_for(cfg).get(cfg) if name in shown else None
        if found is not None:
            short[name] = found
    reasons = {**not_run("10_results", short_profile)}
    missing = [n for n in names if n not in short and not paper_runs[n].iteration]
    steps, _ = plan(missing, "paper", "cpu")
    for s in steps:
        why = reasons.get(s.name, "")
        cost = (
            f"evaluated from {s.twin}"
            if not s.trains
            else _benchmark_estimate(s.name, s.config)
            if s.seconds is None
            else f"~ {duration(s.seconds)} of CPU at the paper protocol"
            + (", at most: it stops on a validation plateau" if _has_rule(s.config) else "")
        )
        reasons[s.name] = f"{why}; {cost}" if why else cost
    return reproduction_status(published, modes, paper_runs, short, reasons)
