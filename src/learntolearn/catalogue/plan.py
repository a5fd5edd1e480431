"""What ``reproduce`` would compute, and how long it would take: the plan it prints first.

For each experiment (of any kind) the chosen chapters need and the store lacks: compute it
(resuming a checkpoint) or, for a few-shot run when a run trained the same way is stored or
planned, evaluate it only. The training time of a few-shot run is estimated from a stored run of
the same experiment (its measured cost per meta-iteration, else its wall time per iteration,
scaled to the meta-batch), on the same kind of device; a learned optimizer's from a stored run
of it at another profile. A few-shot run's checkpoint size is estimated from its network's
parameter count (:func:`~learntolearn.fewshot.runs.checkpoint_bytes`): one over the store's
limit for git stays on the machine that wrote it, so such a run is only worth starting where it
completes in one sitting (the plan says so, and the campaign skips it otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from learntolearn.catalogue.entries import experiment, store_for, stored
from learntolearn.experiments.clock import duration
from learntolearn.experiments.spec import PROFILES
from learntolearn.experiments.store import (
    checkpoint_file,
    checkpoint_iteration,
    committed,
    mebibytes,
)
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.runs import checkpoint_bytes
from learntolearn.fewshot.store import Result, ResultStore
from learntolearn.learned_optimizers.config import OptimizerConfig
from learntolearn.learned_optimizers.runs import FOLDER, OptimizerStore
from learntolearn.paths import results_dir, runs_dir
from learntolearn.search.studies import studies

__all__ = ["Step", "fit_budget", "plan", "print_plan"]


@dataclass(frozen=True)
class Step:
    """One experiment ``reproduce`` would compute: train it (``done`` of ``total`` ``unit``
    already in a checkpoint) or, when ``twin`` names a run trained the same way, only evaluate
    it."""

    name: str
    config: Any
    done: int = 0
    twin: str | None = None
    seconds: float | None = None  # estimated training time; None: unknown
    basis: str = ""
    total: int = 0
    unit: str = "it."
    checkpoint_bytes: int | None = None  # estimated size of its checkpoint; None: not estimated

    @property
    def trains(self) -> bool:
        return self.twin is None

    @property
    def local(self) -> bool:
        """Its checkpoint is over the store's limit for git: it resumes only where written."""
        return self.checkpoint_bytes is not None and not committed(self.checkpoint_bytes)

    def fits(self, seconds: float) -> bool:
        """Whether its training is known to complete within ``seconds``."""
        return self.seconds is not None and self.seconds <= seconds

    @property
    def local_note(self) -> str:
        """What a run with a local checkpoint needs, e.g. 'checkpoint ~97 MiB stays local:
        needs one sitting of ~3 h'."""
        needs = "unknown length" if self.seconds is None else f"~{duration(self.seconds)}"
        size = mebibytes(self.checkpoint_bytes or 0)
        return f"checkpoint ~{size} stays local: needs one sitting of {needs}"


def _examples(c: ExperimentConfig) -> int:
    """Training examples per iteration: what an iteration's cost scales with."""
    return c.meta_batch * (c.train_way or c.n_way or 1) * (c.k_shot + c.k_query)


def _measured(cfg: ExperimentConfig, stored: list[Result], kind: str) -> tuple[float | None, str]:
    """Seconds per iteration of ``cfg`` on a ``kind`` device (cpu, cuda), and where that comes
    from: a stored run of the same experiment (any profile), its per-meta-iteration cost measured
    at the end of training, else its wall time per iteration, scaled to ``cfg``'s number of
    training examples per iteration (meta-batch x classes x examples per class).
    The paper and cpu profiles come before smoke, measured cost before wall time; a measurement
    on another kind of device gives no estimate (None), only a note."""
    found = []
    for r in stored:
        if r.config.name != cfg.name or r.config.method != cfg.method:
            continue
        device = str(r.provenance.get("device", "an unrecorded device"))
        rank = ((device.startswith("cpu (")) != (kind == "cpu"), r.config.profile == "smoke")
        cost = r.metrics.get("train", {}).get("cost", {}).get("seconds")
        if cost:
            found.append((*rank, 0, float(cost), "cost", r, device))
        wall = r.provenance.get("wall_time_s")
        if wall and r.config.iterations:
            found.append((*rank, 1, float(wall) / r.config.iterations, "wall time", r, device))
    if not found:
        return None, "no stored run of it to measure"
    other_kind, *_, per_iteration, what, r, device = min(found, key=lambda f: f[:3])
    scale = _examples(cfg) / _examples(r.config)
    batch = ""
    if scale != 1 and _examples(cfg) / cfg.meta_batch == _examples(r.config) / r.config.meta_batch:
        batch = f", meta-batch {r.config.meta_batch} -> {cfg.meta_batch}"
    elif scale != 1:  # e.g. a metric learner's 60-way episodes measured on 20-way ones
        batch = f", {_examples(r.config):,} -> {_examples(cfg):,} examples per iteration"
    per_iteration *= scale
    basis = f"{per_iteration:.3g} s/it: {what} of {r.key} on {device}{batch}"
    return (None, f"not measured on {kind}; {basis}") if other_kind else (per_iteration, basis)


def _checkpointed(cfg: ExperimentConfig) -> int:
    """Iterations already done in ``cfg``'s resumable checkpoint (0 when there is none)."""
    path = store_for(cfg).checkpoint_path(cfg)
    legacy = runs_dir() / f"{cfg.key}.pt"  # where checkpoints lived before in-progress/
    found = checkpoint_file(path).is_file() or not legacy.is_file()
    return checkpoint_iteration(path if found else legacy)


Fallback = Callable[[str, ExperimentConfig], tuple[float, str] | None]


def plan(
    todo: list[str], profile: str, kind: str, fallback: Fallback | None = None
) -> tuple[list[Step], int]:
    """The experiments of ``todo`` at ``profile`` missing from their store, with estimates on a
    ``kind`` device, and how many are stored already. A run that no stored run measures takes
    its seconds per iteration from ``fallback(name, config)`` where that knows them on a CPU
    (the CLI passes :func:`learntolearn.reporting.costs.step_estimate`, the stored benchmarks:
    the catalogue cannot import the reporting layer)."""
    configs = {n: experiment(n, profile) for n in todo}
    roots = dict.fromkeys(
        [results_dir(p) for p in (profile, *PROFILES)] + [results_dir(scratch=True)]
    )
    fewshot = [r for root in roots for r in ResultStore(root).scan()[0]]
    steps: list[Step] = []
    scheduled: dict[str, str] = {}
    for name, cfg in configs.items():
        if stored(cfg):
            continue
        if isinstance(cfg, OptimizerConfig):
            steps.append(_optimizer_step(name, cfg, roots, kind))
            continue
        if not isinstance(cfg, ExperimentConfig):  # the search: trials of about 0.3 s each
            trials = sum(s.trials for s in studies(cfg))
            basis = "hyperparameter search: Optuna studies, resumed trial by trial"
            steps.append(Step(name, cfg, 0, None, 0.3 * trials, basis, trials, "trials"))
            continue
        store = store_for(cfg)
        twin = store.trained_like(cfg)  # type: ignore[attr-defined]
        if twin is not None or cfg.training_key in scheduled:
            trained_as = twin.key if twin is not None else scheduled[cfg.training_key]
            steps.append(Step(name, cfg, twin=trained_as, basis="evaluation only"))
            continue
        scheduled[cfg.training_key] = name
        done = min(_checkpointed(cfg), cfg.iterations)
        per_iteration, basis = _measured(cfg, fewshot, kind)
        if fallback is not None and per_iteration is None and kind == "cpu":
            per_iteration, basis = fallback(name, cfg) or (None, basis)
        record = store.progress(cfg)
        if record and record.get("sittings") and done:  # this run's own sittings so far
            last = record["sittings"][-1]
            if str(last.get("device", "")).startswith("cpu (") == (kind == "cpu"):
                per_iteration = float(last.get("total_wall_time_s", 0.0)) / done
                basis = f"{per_iteration:.3g} s/it: measured in this run's sittings so far"
        seconds = None if per_iteration is None else per_iteration * (cfg.iterations - done)
        if cfg.stop_every is not None:
            basis += "; at most: a stopping rule on validation may end it sooner"
        size = checkpoint_bytes(cfg)
        step = Step(name, cfg, done, None, seconds, basis, cfg.iterations, checkpoint_bytes=size)
        steps.append(replace(step, basis=f"{basis}; {step.local_note}") if step.local else step)
    return steps, len(configs) - len(steps)


def _optimizer_step(name: str, cfg: OptimizerConfig, roots: Any, kind: str) -> Step:
    """A learned optimizer's step: its horizons done, and the time per horizon of a stored run
    of it (any profile, the same kind of device), scaled to the problems per horizon."""
    done = checkpoint_iteration(store_for(cfg).checkpoint_path(cfg))
    per_horizon, basis = None, "no stored run of it to measure"
    for root in roots:
        for r in OptimizerStore(root / FOLDER).results():
            device = str(r.provenance.get("device", ""))
            if r.config.name != name or device.startswith("cpu (") != (kind == "cpu"):
                continue
            scale = cfg.meta_batch * cfg.horizon / (r.config.meta_batch * r.config.horizon)
            per_horizon = float(r.metrics["train"]["wall_time_s"]) / r.config.iterations * scale
            basis = f"{per_horizon:.3g} s/horizon: wall time of {r.key} on {device}"
    seconds = None if per_horizon is None else per_horizon * (cfg.iterations - done)
    return Step(name, cfg, done, None, seconds, basis, cfg.iterations, "horizons")


def fit_budget(steps: list[Step], budget: float) -> dict[str, str]:
    """What each training step does within ``budget`` seconds, in plan order: 'completes'
    while the estimates fit, then 'advances ~N it.' (the run the budget ends in), then 'waits'.
    A run of unknown length is advanced with whatever budget is left; a run whose checkpoint
    stays local (:attr:`Step.local`) completes or is skipped, never advanced partway."""
    left, out = budget, {}
    for s in steps:
        if not s.trains:
            continue
        if s.local and not s.fits(left):
            out[s.name] = "skipped (see basis)"
        elif left <= 0:
            out[s.name] = "waits"
        elif s.seconds is not None and s.seconds <= left:
            out[s.name], left = "completes", left - s.seconds
        else:
            if s.seconds is None:
                out[s.name] = "advances (length unknown)"
            else:
                rate = (s.total - s.done) / s.seconds
                out[s.name] = f"advances ~{int(rate * left):,} it."
            left = 0
    return out


def print_plan(
    steps: list[Step], stored: int, profile: str, device: str, budget: float | None = None
) -> None:
    training = [s for s in steps if s.trains]
    print(
        f"reproduce at profile {profile} on {device}: {len(training)} to train, "
        f"{len(steps) - len(training)} to evaluate from a run trained the same way, "
        f"{stored} stored already"
    )
    fits = fit_budget(steps, budget) if budget is not None else {}
    for s in steps:
        if not s.trains:
            print(f"  {s.name:28s} evaluate only (trained as {s.twin})")
            continue
        its = f"{s.total:,} {s.unit}" + (f" ({s.done:,} done)" if s.done else "")
        when = "unknown" if s.seconds is None else f"~ {duration(s.seconds)}"
        within = f"{fits[s.name]:18s} " if fits else ""
        print(f"  {s.name:28s} {its:22s} {when:16s} {within}{s.basis}")
    known = [s.seconds for s in training if s.seconds is not None]
    unknown = len(training) - len(known)
    if training:
        print(
            f"total: ~ {duration(sum(known))} of training"
            + (f", plus {unknown} run(s) of unknown length" if unknown else "")
            + " (estimates count training iterations only; evaluation adds minutes per run)"
        )
    if budget is not None:
        print(
            f"budget: {duration(budget)} of training; runs stop cleanly when it is spent and "
            "resume from their checkpoints (in-progress/ beside the results) next time"
        )
