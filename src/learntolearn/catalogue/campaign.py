"""The standing queue: the missing paper-protocol runs, cheapest published numbers first, on
every idle core (issue 22).

A *job* is one training run and the experiments evaluated from it (a model that serves several
settings, e.g. one Siamese network for the four Omniglot settings, counts for each). Jobs are
ordered by numbers per CPU-hour of remaining training, from the plan's measured costs; runs of
unknown length come last. :func:`schedule` hands each job, in that order, to the worker that
frees up first (list scheduling), which is what the campaign's worker processes do as they
run; it gives the plan's ETA of every job. Each job runs as ``reproduce --only …`` with the
budget left, so it advances in sittings from its checkpoint like any reproduce run. A run whose
checkpoint is over the store's limit for git (:attr:`~.plan.Step.local`) cannot advance over
sittings on other machines: it is skipped unless it completes in the time left.
"""

from __future__ import annotations

import heapq
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from learntolearn.catalogue.entries import experiment, store_for
from learntolearn.catalogue.plan import Step
from learntolearn.experiments.clock import duration
from learntolearn.fewshot.stored_analyses import ANALYSES as STORED_ANALYSES

__all__ = [
    "ABLATIONS",
    "BOOK_ANALYSES",
    "HELD",
    "Job",
    "book_analyses",
    "held",
    "jobs",
    "print_campaign",
    "run_jobs",
    "schedule",
]

# Runs the campaign holds back until what they wait for exists (issue 22), by name prefix.
HELD: dict[str, str] = {
    "omniglot/reptile-": "its inner Adam restarts its second moments for every task, where the "
    "reference code keeps them across tasks; the paper run's first milestones fall far short, "
    "so the difference is to be measured before more CPU goes to it (issue 22)",
}
# (Matching networks were held until the cosine attention's slow learning was understood:
# chapter 6 traces it to the cosines' range, and the paper profile now scales them by 10.)
# The book's own ablations (no published number): queued after the papers' runs.
ABLATIONS = (
    *("-cosine", "-train5way", "-trainval", "-euclidean", "-fce", "-scale10", "-k1", "-q15"),
    *("-steps2", "-steps5", "-halve", "-nontransductive", "-one-sided", "-long"),
)

# The stored analyses chapter 6 reads of a finished run, by name prefix: the campaign computes
# them once a job's run is stored (minutes of evaluation), so that no chapter waits for a hand
# (population_bn: batch norm with training images' statistics; splits: training and validation
# characters)
BOOK_ANALYSES: dict[str, tuple[str, ...]] = {
    "omniglot/matching-": ("population_bn", "splits"),
    "omniglot/protonet-": ("population_bn", "splits"),
    "omniglot/siamese-": ("splits",),
}


def book_analyses(name: str, profile: str) -> list[str]:
    """The :data:`BOOK_ANALYSES` that apply to experiment ``name`` at ``profile``, once its
    result is stored (none before: an analysis of a missing result would train it)."""
    wanted = next((a for prefix, a in BOOK_ANALYSES.items() if name.startswith(prefix)), ())
    if not wanted:
        return []
    cfg = experiment(name, profile)
    if store_for(cfg).get(cfg) is None:
        return []
    return [a for a in wanted if STORED_ANALYSES[a].applies(cfg) is None]


@dataclass(frozen=True)
class Job:
    """A training step and the names it serves (itself first, then its evaluate-only twins)."""

    step: Step
    serves: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def hours(self) -> float | None:
        return None if self.step.seconds is None else self.step.seconds / 3600

    @property
    def published(self) -> int:
        """How many of the settings it serves have a paper's number (the ablations do not)."""
        return sum(1 for n in self.serves if not n.endswith(ABLATIONS))

    @property
    def value(self) -> float:
        """Published numbers per CPU-hour of remaining training (0 when the length is unknown)."""
        if self.hours is None:
            return 0.0
        return self.published / max(self.hours, 1e-6)


def _trained_as(step: Step) -> str:
    """What identifies the training a step needs (a learned optimizer's or the search's: its
    key; a few-shot run's: its training key, shared by the runs evaluated from one model)."""
    return str(getattr(step.config, "training_key", step.config.key))


def held(name: str) -> str | None:
    """Why the campaign holds ``name`` back, or None."""
    return next((why for prefix, why in HELD.items() if name.startswith(prefix)), None)


def jobs(steps: list[Step]) -> list[Job]:
    """The plan's training steps as jobs (those :data:`HELD` left out), each with the
    evaluate-only steps trained by it, the most published numbers per CPU-hour first (ties: the
    shorter first, then by name)."""
    steps = [s for s in steps if held(s.name) is None]
    by_training = {_trained_as(s): s for s in steps if s.trains}
    twins: dict[str, list[str]] = {s.name: [] for s in by_training.values()}
    for s in steps:
        if not s.trains and _trained_as(s) in by_training:
            twins[by_training[_trained_as(s)].name].append(s.name)
    out = [Job(s, (s.name, *twins[s.name])) for s in by_training.values()]
    return sorted(
        out, key=lambda j: (-j.value, j.hours if j.hours is not None else float("inf"), j.name)
    )


def schedule(queue: list[Job], workers: int, budget: float) -> list[tuple[Job, int, float, str]]:
    """Each job with its worker, the time (seconds from now) it starts, and what it does within
    ``budget``: list scheduling in queue order, every worker taking the next job when it is
    free (an unknown length is taken as the rest of the budget)."""
    free = [(0.0, w) for w in range(workers)]
    heapq.heapify(free)
    out = []
    for job in queue:
        if job.step.local and not job.step.fits(budget - free[0][0]):
            out.append((job, free[0][1], free[0][0], f"skipped: {job.step.local_note}"))
            continue
        start, worker = heapq.heappop(free)
        if start >= budget:
            out.append((job, worker, start, "waits"))
            heapq.heappush(free, (start, worker))
            continue
        seconds = job.step.seconds if job.step.seconds is not None else budget - start
        end = start + seconds
        left = budget - start
        if end <= budget:
            fate = "completes"
        elif job.step.seconds is None:
            fate = "advances (length unknown)"
        else:
            rate = (job.step.total - job.step.done) / job.step.seconds
            fate = f"advances ~{int(rate * left):,} {job.step.unit}"
        out.append((job, worker, start, fate))
        heapq.heappush(free, (min(end, budget), worker))
    return out


def print_campaign(queue: list[Job], workers: int, budget: float) -> None:
    """The campaign's plan: per job, the numbers it serves, its length and cost, its worker,
    when it starts and what it does within the budget; then what remains after it."""
    print(
        f"campaign: {len(queue)} training runs serving {sum(j.published for j in queue)} "
        f"published numbers, on {workers} worker(s), budget {duration(budget)}"
    )
    for prefix, why in HELD.items():
        print(f"  held back: {prefix}* ({why})")
    planned = schedule(queue, workers, budget)
    for job, worker, start, fate in planned:
        s = job.step
        cost = "unknown" if s.seconds is None else f"~ {duration(s.seconds)}"
        done = f" ({s.done:,} done)" if s.done else ""
        when = (
            f"worker {worker} at +{duration(start)}"
            if fate.startswith(("completes", "advances"))
            else ""
        )
        length = f"{s.total:,} {s.unit}{done}"
        print(
            f"  {s.name:32s} {job.published} number(s)  {length:32s} {cost:14s} {when:24s} {fate}"
        )
    left = sum(
        s if fate.startswith(("skipped", "waits")) else max(0.0, s - (budget - start))
        for j, _, start, fate in planned
        if (s := j.step.seconds) is not None
    )
    unknown = sum(1 for j, *_ in planned if j.step.seconds is None)
    print(
        f"after this budget: ~ {duration(left)} of training left in the queue"
        + (f", plus {unknown} run(s) of unknown length" if unknown else "")
    )


def run_jobs(queue: list[Job], workers: int, budget: float, profile: str, device: str) -> int:
    """Run ``queue`` on ``workers`` processes until ``budget`` seconds have passed: each job is
    ``reproduce --only`` its names with the budget left, at the lowest priority and one thread;
    a worker takes the next job when its last one ends, after computing the
    :func:`book_analyses` of the runs it finished. The exit status: 0, or the first job's
    that failed."""
    deadline = time.monotonic() + budget
    pending = list(queue)
    lock = threading.Lock()
    failures: list[int] = []

    def nice() -> None:
        os.nice(19)

    def worker() -> None:
        while True:
            with lock:
                if not pending or time.monotonic() >= deadline:
                    return
                job = pending.pop(0)
            left = max(1, int(deadline - time.monotonic()))
            if job.step.local and not job.step.fits(left):
                print(f"campaign: {job.name} skipped ({job.step.local_note})", flush=True)
                continue
            only = [a for name in job.serves for a in ("--only", name)]
            argv = [sys.executable, "-m", "learntolearn", "reproduce", "--profile", profile]
            argv += ["--allow-cpu", "--quiet", "--device", device, "--budget", f"{left}s", *only]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
            print(f"campaign: {job.name} starts ({left // 60} min of budget left)", flush=True)
            done = subprocess.run(argv, env=env, preexec_fn=nice, check=False)
            print(f"campaign: {job.name} ended (exit {done.returncode})", flush=True)
            if done.returncode:
                failures.append(done.returncode)
                continue
            for name in job.serves:  # what the chapters read of a finished run
                for analysis in book_analyses(name, profile):
                    argv = [sys.executable, "-m", "learntolearn", "analyse", analysis, name]
                    argv += ["--profile", profile, "--quiet", "--device", device]
                    found = subprocess.run(argv, env=env, preexec_fn=nice, check=False)
                    if found.returncode:
                        failures.append(found.returncode)

    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures[0] if failures else 0
