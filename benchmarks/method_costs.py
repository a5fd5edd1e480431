"""Seconds per meta-iteration of every Omniglot method of the book, interleaved in one run.

What is timed is one **training step** exactly as the training loop takes it:
:class:`learntolearn.fewshot.training.MetaStep` built from the registered experiment (the
method's own network, meta-batch, inner loop and outer optimiser, at the ``paper`` profile by
default): sampling the meta-batch, the method's training loss, its backward pass and the outer
optimiser's update. Sampling is timed on its own too (it is part of the step).

Protocol (as ``maml_step.py``): one thread with denormals flushed
(:func:`~learntolearn.experiments.device.cpu_numerics`); a warm-up round, dropped, then
``--rounds`` rounds; each round runs every (method, setting) once, in an order rotated from round
to round, so that load changes on a shared machine hit every entry alike. An entry whose warm-up
step takes longer than ``--max-seconds`` twice in a row is left out (and listed as such). After
the timed rounds, one untimed step of each entry under
:func:`~learntolearn.analysis.meta_gradients.step_cost` records the bytes autograd saves for its
backward pass.

**Equal footing** (``--equal``): Reptile against MAML and first-order MAML on the same tasks (5
support + 5 query images per class, 5-way), the same meta-batch (5 tasks), the same number of
inner steps (5) and the same examples per inner step (25: MAML's support set, a Reptile minibatch
of 25 of the task's 50 pooled images), all with plain SGD inner steps (Nichol et al. 2018 compare
compute and memory at fixed inner steps, Sec. 1 and 5).

The result is one checksummed JSON file (default ``results/benchmarks/method-costs.json`` and
its ``.sha256``) holding every per-round time and the provenance: machine, cores, torch,
threads, date, commit, the 1-minute load average before, during and after. The book reads it
through :mod:`learntolearn.reporting.costs`.

Run (pause the background training jobs, and always resume them)::

    trap 'pkill -CONT -f "learntolearn reproduce"' EXIT
    pkill -STOP -f "learntolearn reproduce"
    .venv/bin/python benchmarks/method_costs.py --rounds 10 --equal \\
        --note "background training jobs paused"
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from learntolearn.analysis.meta_gradients import step_cost
from learntolearn.catalogue import experiment
from learntolearn.catalogue.fewshot import fewshot_names, omniglot_name
from learntolearn.experiments.device import cpu_numerics, resolve_device
from learntolearn.experiments.provenance import cpu_capability, device_name, git_state
from learntolearn.experiments.training import RunSettings
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.runs import build
from learntolearn.fewshot.training import MetaStep
from learntolearn.reporting.costs import EQUAL, FORMAT, default_path, save, summary_table
from learntolearn.tasks import TaskBatch

# Every Omniglot method the book reports, in the order of its chapters (3-8).
METHODS = (
    "maml",
    "fomaml",
    "reptile",
    "anil",
    "siamese",
    "matching",
    "protonet",
    "relation",
    "meta-lstm",
    "episode-lstm",
    "mann",
    "snail",
    "maml-fc",
)
SETTINGS = ("5w1s", "5w5s", "20w1s", "20w5s")


def equal_footing(method: str, profile: str) -> ExperimentConfig:
    """``method`` (maml, fomaml or reptile) on the equal-footing protocol described above."""
    if method == "reptile":
        base = experiment("omniglot/reptile-5w1s", profile)
        return base.with_(
            name="omniglot/reptile-5w-equal",
            inner_optimizer="sgd",
            inner_lr=0.1,
            inner_batch=25,
            inner_steps=5,
            meta_batch=5,
        )
    base = experiment(f"omniglot/{method}-5w5s", profile)
    return base.with_(name=f"omniglot/{method}-5w-equal", inner_lr=0.1, inner_steps=5, meta_batch=5)


@dataclass
class Entry:
    """One (method, setting): its training step, and what was measured of it."""

    method: str
    setting: str
    config: ExperimentConfig
    step: MetaStep
    last_batch: list[TaskBatch] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    sample_seconds: list[float] = field(default_factory=list)
    saved_bytes: float | None = None
    iteration: int = 0
    sample_time: float = 0.0  # of the last step, set by its sampler

    def run(self) -> tuple[float, float]:
        """One training step (the loop's): its seconds, and the seconds spent sampling."""
        gc.collect()
        self.last_batch.clear()
        start = time.perf_counter()
        self.step.step(self.iteration)
        elapsed = time.perf_counter() - start
        self.iteration += 1
        return elapsed, self.sample_time

    def record(self) -> dict[str, Any]:
        c = self.config
        return {
            "method": self.method,
            "setting": self.setting,
            "experiment": c.name,
            "key": c.key,
            "meta_batch": c.meta_batch,
            "n_way": c.n_way,
            "k_shot": c.k_shot,
            "k_query": c.k_query,
            "inner_steps": c.inner_steps,
            "seconds": self.seconds,
            "sample_seconds": self.sample_seconds,
            "saved_bytes": self.saved_bytes,
        }


def make_entry(method: str, setting: str, config: ExperimentConfig, dev: torch.device) -> Entry:
    """The training step the loop would take for ``config`` (``fewshot.runs``' own pieces)."""
    setup = build(config, dev)
    holder: list[Entry] = []

    def sample(gen: torch.Generator) -> TaskBatch:
        start = time.perf_counter()
        batch = setup.prepare(setup.tasks.sample(config.meta_batch, gen))
        holder[0].sample_time = time.perf_counter() - start
        holder[0].last_batch.append(batch)
        return batch

    settings = RunSettings(
        key=config.key, iterations=config.iterations, seed=config.seed, device=dev, progress=False
    )
    step = MetaStep(setup.method, setup.params, sample, setup.entry.outer(config), settings)
    entry = Entry(method, setting, config, step)
    holder.append(entry)
    return entry


def entries_for(
    methods: list[str], settings: list[str], profile: str, dev: torch.device, equal: bool
) -> list[Entry]:
    known = set(fewshot_names())
    out = []
    for setting in settings:
        n, k = int(setting.split("w")[0]), int(setting.split("w")[1].rstrip("s"))
        for m in methods:
            name = omniglot_name(m, n, k)
            if name in known:
                out.append(make_entry(m, setting, experiment(name, profile), dev))
    if equal:
        for m in ("maml", "fomaml", "reptile"):
            out.append(make_entry(m, EQUAL, equal_footing(m, profile), dev))
    return out


def rounds(
    entries: list[Entry], n_rounds: int, max_seconds: float, log: Callable[[str], None]
) -> tuple[list[Entry], list[dict[str, Any]], list[float]]:
    """A warm-up round (dropped; entries slower than ``max_seconds`` leave), then ``n_rounds``
    rounds, each in an order rotated by one entry from the last. Returns the entries kept, those
    left out, and the 1-minute load average after each round."""
    left_out: list[dict[str, Any]] = []
    kept = []
    for e in entries:
        elapsed, _ = e.run()
        if elapsed > max_seconds:  # a second try: the first step of a setting pays one-off costs
            elapsed, _ = e.run()
        if elapsed > max_seconds:
            left_out.append(
                {
                    "method": e.method,
                    "setting": e.setting,
                    "reason": f"warm-up step {elapsed:.1f} s > {max_seconds:g} s",
                }
            )
            log(f"left out {e.method} {e.setting}: {elapsed:.1f} s per step")
        else:
            kept.append(e)
    load = []
    for r in range(n_rounds):
        k = r % len(kept)
        start = time.perf_counter()
        for e in kept[k:] + kept[:k]:
            elapsed, sampled = e.run()
            e.seconds.append(elapsed)
            e.sample_seconds.append(sampled)
        load.append(os.getloadavg()[0])
        log(f"round {r + 1}/{n_rounds}: {time.perf_counter() - start:.0f} s, load {load[-1]:.2f}")
    return kept, left_out, load


def machine() -> dict[str, Any]:
    return {
        "device": device_name(torch.device("cpu")),
        "cores": os.cpu_count(),
        "cpu_capability": cpu_capability(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--profile", default="paper", help="the experiments' profile")
    p.add_argument("--rounds", type=int, default=10, help="timed rounds")
    p.add_argument("--max-seconds", type=float, default=5.0, help="leave slower entries out")
    p.add_argument("--equal", action="store_true", help="add the equal-footing Reptile trio")
    p.add_argument("--no-memory", action="store_true", help="skip the saved-bytes step")
    p.add_argument("--output", type=Path, default=None, help="default: the results store's")
    p.add_argument("--note", default="", help="stored with the provenance (e.g. what was paused)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dev = resolve_device("cpu")
    cpu_numerics(dev)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    entries = entries_for(args.methods, args.settings, args.profile, dev, args.equal)
    log(f"{len(entries)} entries, {args.rounds} rounds after a warm-up")
    kept, left_out, load = rounds(entries, args.rounds, args.max_seconds, log)
    if not args.no_memory:
        for e in kept:
            params = {k: v.detach() for k, v in e.step.params.items()}
            e.saved_bytes = step_cost(e.step.learner.loss, params, e.last_batch[-1], 1)[
                "saved_bytes"
            ]
    git = git_state()
    record = {
        "format": FORMAT,
        "command": " ".join(["benchmarks/method_costs.py", *(argv or sys.argv[1:])]),
        "profile": args.profile,
        "rounds": args.rounds,
        "warmup_rounds": 1,
        "max_seconds": args.max_seconds,
        "machine": machine(),
        "commit": git["commit"],
        "dirty": git["dirty"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_1min": {"before": load_before, "during": load, "after": os.getloadavg()[0]},
        "note": args.note,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "entries": [e.record() for e in kept],
        "left_out": left_out,
    }
    path = args.output or default_path()
    costs = save(path, record)
    print(summary_table(costs))
    log(f"stored {path} ({record['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
