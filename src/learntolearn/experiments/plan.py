"""What ``reproduce`` would compute, and how long it would take: the plan it prints first.

For each experiment a chapter needs and the store lacks: train it (resuming a checkpoint) or,
when a run trained the same way is stored or planned, evaluate it only; the training time is
estimated from a stored run of the same experiment (its measured cost per meta-iteration, else
its wall time per iteration, scaled to the meta-batch), on the same kind of device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from learntolearn.experiments.config import PROFILES, ConfigError, ExperimentConfig
from learntolearn.experiments.registry import experiment
from learntolearn.experiments.store import Result, ResultStore, checkpoint_iteration
from learntolearn.paths import results_dir, runs_dir

__all__ = [
    "Step",
    "budget_seconds",
    "duration",
    "fit_budget",
    "plan",
    "print_plan",
    "registered",
    "store_for",
]


def registered(cfg: ExperimentConfig) -> bool:
    """Whether ``cfg`` is exactly a registered experiment at its profile."""
    try:
        return experiment(cfg.name, cfg.profile) == cfg
    except ConfigError:
        return False


def store_for(cfg: ExperimentConfig) -> ResultStore:
    """Where ``cfg``'s result lives: the committed store for a registered experiment at a
    committed profile, else the scratch store (see :func:`learntolearn.paths.results_dir`)."""
    return ResultStore(results_dir(cfg.profile, scratch=not registered(cfg)))


def duration(seconds: float) -> str:
    """``seconds`` as a person reads a duration: '40 s', '12 min', '7 h 43 min', '5 d 8 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    hours = round(minutes / 60)
    return f"{hours // 24} d {hours % 24} h"


_NUMBER = r"(\d+(?:\.\d+)?)"
_BUDGET = re.compile(rf"\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}(s?))?\s*")


def budget_seconds(text: str) -> float:
    """A time budget as written on the command line: '90s', '45m', '2h', '1h30m', or seconds."""
    found = _BUDGET.fullmatch(text)
    usage = f"a time budget looks like '90s', '45m', '2h' or '1h30m', got {text!r}"
    if not text.strip() or found is None or not any(found.groups()[:3]):
        raise ValueError(usage)
    hours, minutes, seconds_, unit = found.groups()
    if seconds_ and not unit and (hours or minutes):  # '1h30': 30 what?
        raise ValueError(usage)
    h, m, sec = (float(g) if g else 0.0 for g in (hours, minutes, seconds_))
    seconds = 3600 * h + 60 * m + sec
    if seconds <= 0:
        raise ValueError(f"the time budget must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Step:
    """One experiment ``reproduce`` would compute: train it (``done`` iterations already in a
    checkpoint) or, when ``twin`` names a run trained the same way, only evaluate it."""

    name: str
    config: ExperimentConfig
    done: int = 0
    twin: str | None = None
    seconds: float | None = None  # estimated training time; None: unknown
    basis: str = ""

    @property
    def trains(self) -> bool:
        return self.twin is None


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
    return checkpoint_iteration(path if path.is_file() or not legacy.is_file() else legacy)


def plan(todo: list[str], profile: str, kind: str) -> tuple[list[Step], int]:
    """The experiments of ``todo`` at ``profile`` missing from their store, with estimates on a
    ``kind`` device, and how many are stored already."""
    configs = {n: experiment(n, profile) for n in todo}
    roots = dict.fromkeys(
        [results_dir(p) for p in (profile, *PROFILES)] + [results_dir(scratch=True)]
    )
    stored = [r for root in roots for r in ResultStore(root).scan()[0]]
    steps: list[Step] = []
    scheduled: dict[str, str] = {}
    for name, cfg in configs.items():
        store = store_for(cfg)
        if store.get(cfg) is not None:
            continue
        twin = store.trained_like(cfg)
        if twin is not None or cfg.training_key in scheduled:
            trained_as = twin.key if twin is not None else scheduled[cfg.training_key]
            steps.append(Step(name, cfg, twin=trained_as, basis="evaluation only"))
            continue
        scheduled[cfg.training_key] = name
        done = min(_checkpointed(cfg), cfg.iterations)
        per_iteration, basis = _measured(cfg, stored, kind)
        record = store.progress(cfg)
        if record and record.get("sittings") and done:  # this run's own sittings so far
            last = record["sittings"][-1]
            if str(last.get("device", "")).startswith("cpu (") == (kind == "cpu"):
                per_iteration = float(last.get("total_wall_time_s", 0.0)) / done
                basis = f"{per_iteration:.3g} s/it: measured in this run's sittings so far"
        seconds = None if per_iteration is None else per_iteration * (cfg.iterations - done)
        steps.append(Step(name, cfg, done, None, seconds, basis))
    return steps, len(configs) - len(steps)


def fit_budget(steps: list[Step], budget: float) -> dict[str, str]:
    """What each training step does within ``budget`` seconds, in plan order: 'completes'
    while the estimates fit, then 'advances ~N it.' (the run the budget ends in), then 'waits'.
    A run of unknown length is advanced with whatever budget is left."""
    left, out = budget, {}
    for s in steps:
        if not s.trains:
            continue
        if left <= 0:
            out[s.name] = "waits"
        elif s.seconds is not None and s.seconds <= left:
            out[s.name], left = "completes", left - s.seconds
        else:
            if s.seconds is None:
                out[s.name] = "advances (length unknown)"
            else:
                rate = (s.config.iterations - s.done) / s.seconds
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
        its = f"{s.config.iterations:,} it." + (f" ({s.done:,} done)" if s.done else "")
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
