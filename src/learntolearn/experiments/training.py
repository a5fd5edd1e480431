"""The one resumable training loop every kind of experiment uses.

A kind hands the loop a :class:`TrainingStep`: one iteration of its training (a meta-batch and
an outer step for a few-shot method; a horizon of unrolls for a learned optimizer), the
parameters it trains, and the state to resume from. The loop owns what every kind shares: the
iterations, a checkpoint written atomically every ``checkpoint_every`` iterations (with the
step's state, the loss history and the observations), resuming from it bit for bit, the
deadline (on the one clock, :func:`time.monotonic`), the progress bar, the wall time, and the
refusal of a diverged run: a loss or parameter that stops being finite, or a mean loss beyond
:data:`LOSS_LIMIT`, ends the run with :class:`DivergedError`; the last good checkpoint is kept
and nothing is stored. In a distributed run every rank steps, and rank 0 alone observes and
writes checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from learntolearn.experiments import distributed
from learntolearn.experiments.store import checkpoint_file, save_checkpoint
from learntolearn.io import load_tensors
from learntolearn.objective import Params

__all__ = [
    "DivergedError",
    "Observer",
    "RunSettings",
    "Stopper",
    "TrainState",
    "TrainingStep",
    "loop",
]

CHECKPOINT_FORMAT = 2  # 1: before observers and the saved history window (still resumed)
LOG_EVERY = 100  # iterations per entry of the stored loss history (fewer if the run is shorter)
LOSS_LIMIT = 1e15  # a mean training loss beyond this has blown up (chance-level cross-entropy
# is log N, the sinusoids' MSE about 4); float32 overflows not far beyond (3e38)


class DivergedError(RuntimeError):
    """Training produced a non-finite loss or parameter; nothing was stored."""


class TrainingStep(Protocol):
    """A kind's side of the loop: ``params`` (what it trains, observed and checked for
    divergence), ``step(iteration)`` (one iteration; its training loss, detached, as a 0-d
    tensor on the run's device) and the state that resumes it (optimiser, random generators;
    the parameters are saved by the loop)."""

    params: Params

    def step(self, iteration: int) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stopper(Protocol):
    """A stopping rule fixed before the run: every ``every`` iterations, ``check(iteration,
    params)`` measures what it watches and says whether to stop now; its state (what it has
    seen, the parameters it keeps) is saved in every checkpoint and resumed with the run."""

    every: int

    def check(self, iteration: int, params: Params) -> bool: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class RunSettings:
    """What the run decides: its key and length, the seed of the task stream, the device, where
    and how often to checkpoint, and progress. ``stop_after`` ends the call early after that
    many iterations, ``deadline`` (a :func:`time.monotonic` time) at the first iteration that
    ends after it; either way a checkpoint of the iteration reached is written to resume from.
    ``checkpoint`` is the name git holds it under; one over the store's ``TENSOR_LIMIT`` is
    written under its git-ignored local name (:func:`~.store.save_checkpoint`).
    ``on_checkpoint(state)`` runs after every checkpoint is written (the runner records the
    run's progress beside it). ``task_chunk`` backpropagates the meta-batch that many tasks at
    a time (None: all at once): the same meta-gradient up to the order of floating-point sums,
    with one chunk's graph in memory instead of the whole batch's. ``history_every``:
    iterations per entry of the loss history (default: 100, fewer if the run is shorter)."""

    key: str
    iterations: int
    seed: int
    device: torch.device
    checkpoint: Path | None = None
    checkpoint_every: int = 1000
    progress: bool = True
    stop_after: int | None = None
    deadline: float | None = None
    task_chunk: int | None = None
    on_checkpoint: Callable[[TrainState], None] | None = None
    history_every: int | None = None
    unit: str = "it"

    def __post_init__(self) -> None:
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {every!r}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")

    @property
    def log_every(self) -> int:
        """Iterations per history entry: fixed by the run's length alone, never by checkpoints."""
        return self.history_every or min(LOG_EVERY, self.iterations)


@dataclass(frozen=True)
class Observer:
    """``measure(params)``, recorded before training and every ``every`` iterations under
    ``name`` in the training metrics; it must not draw from the training generator."""

    name: str
    every: int
    measure: Callable[[Params], dict[str, float]]


@dataclass
class TrainState:
    params: Params
    iteration: int = 0
    history: list[list[float]] = field(default_factory=list)  # [iteration, mean loss]
    observed: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    stopped: bool = False  # the stopping rule ended the run before its last iteration


def _finite(params: Params) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values())


def _resume(
    path: Path,
    key: str,
    step: TrainingStep,
    state: TrainState,
    window: Tensor,
    stopper: Stopper | None,
) -> None:
    """Load checkpoint ``path`` of run ``key`` into ``step``, ``state``, ``window`` and the
    stopping rule."""
    ck = load_tensors(path, map_location=window.device)
    if ck.get("format") == 1 and ck.get("key") == key:  # written on a history boundary
        ck = {**ck, "observed": {"monitor": ck["monitor"]}, "window": window.clone()}
        ck["format"] = CHECKPOINT_FORMAT
    if ck.get("format") != CHECKPOINT_FORMAT or ck.get("key") != key:
        raise ValueError(
            f"checkpoint {path} belongs to {ck.get('key')!r} (format {ck.get('format')}), not "
            f"{key!r}; delete it to start this run from scratch"
        )
    with torch.no_grad():
        for k, v in step.params.items():
            v.copy_(ck["params"][k])
    step.load_state_dict(ck)
    state.iteration, state.history = ck["iteration"], ck["history"]
    state.observed = {name: ck["observed"].get(name, []) for name in state.observed}
    state.wall_time_s = ck["wall_time_s"]
    state.stopped = bool(ck.get("stopped", False))
    window.copy_(ck["window"])
    if stopper is not None and "stopper" in ck:
        stopper.load_state_dict(ck["stopper"])


def loop(
    step: TrainingStep,
    run: RunSettings,
    observers: Sequence[Observer] = (),
    stopper: Stopper | None = None,
) -> TrainState:
    """Run ``step`` for ``run.iterations`` iterations, resuming from ``run.checkpoint`` when it
    exists; the state reached (fewer iterations when ``stop_after`` or ``deadline`` ended the
    call: a checkpoint of it was written; or when ``stopper`` stopped the run: ``stopped``)."""
    device, key = run.device, run.key
    rank, size = distributed.world()
    state = TrainState(params=step.params, observed={o.name: [] for o in observers})
    window = torch.zeros((), device=device)
    if run.checkpoint is not None and checkpoint_file(run.checkpoint).is_file():
        _resume(checkpoint_file(run.checkpoint), key, step, state, window, stopper)
    bar = tqdm(
        total=run.iterations,
        initial=state.iteration,
        disable=True if not run.progress or rank else None,
        desc=key,
        unit=run.unit,
        dynamic_ncols=True,
        leave=False,
    )
    start, done_now, log_every = time.perf_counter(), 0, run.log_every

    def observe() -> bool:
        """Record the observers due at this iteration; whether any was."""
        recorded = False
        for o in observers if rank == 0 else ():
            records = state.observed[o.name]
            fresh = not records or records[-1]["iteration"] < state.iteration
            if state.iteration % o.every == 0 and fresh:
                records.append({"iteration": state.iteration, **o.measure(state.params)})
                recorded = True
        return recorded

    def diverged(what: str) -> DivergedError:
        kept = (
            f"the last checkpoint ({checkpoint_file(run.checkpoint)}) is kept"
            if run.checkpoint is not None and checkpoint_file(run.checkpoint).is_file()
            else "no checkpoint was written"
        )
        return DivergedError(
            f"{key} diverged: {what} by iteration {state.iteration}; nothing was stored and "
            f"{kept}. Lower the step sizes (meta_lr, inner_lr) and run it again"
        )

    def save() -> None:
        nonlocal start
        assert run.checkpoint is not None
        if not (_finite(state.params) and bool(torch.isfinite(window))):
            raise diverged("a parameter or the training loss is not finite")
        state.wall_time_s += time.perf_counter() - start
        start = time.perf_counter()
        if rank != 0:
            return
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "key": key,
            **step.state_dict(),
            "iteration": state.iteration,
            "params": {k: v.detach().clone() for k, v in state.params.items()},
            "history": state.history,
            "observed": state.observed,
            "window": window.detach().clone(),  # the loss sum of the history entry in progress
            "wall_time_s": state.wall_time_s,
            "stopped": state.stopped,
            **({"stopper": stopper.state_dict()} if stopper is not None else {}),
        }
        save_checkpoint(run.checkpoint, checkpoint)  # over TENSOR_LIMIT: its local twin
        if run.on_checkpoint is not None:
            run.on_checkpoint(state)

    def stop() -> bool:
        budget = run.deadline is not None and time.monotonic() >= run.deadline
        spent = (run.stop_after is not None and done_now >= run.stop_after) or budget
        return distributed.agree(spent, device) if size > 1 and run.deadline else spent

    try:
        unsaved = observe()  # e.g. a milestone evaluation at iteration 0: kept even if the
        # budget ends before the first iteration, so that the next sitting does not redo it
        while state.iteration < run.iterations and not state.stopped:
            if stop():
                if run.checkpoint is not None and (done_now or unsaved):
                    save()
                break
            window += step.step(state.iteration)
            state.iteration += 1
            done_now += 1
            bar.update()
            observe()
            if state.iteration % log_every == 0:
                mean = (window / log_every).item()
                if not math.isfinite(mean):
                    raise diverged("the training loss is not finite")
                if abs(mean) > LOSS_LIMIT:
                    raise diverged(
                        f"the mean training loss reached {mean:.3g} (limit {LOSS_LIMIT:g})"
                    )
                state.history.append([state.iteration, mean])
                window.zero_()
                bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
            if stopper is not None and state.iteration % stopper.every == 0:
                state.stopped = (
                    distributed.agree(
                        rank == 0 and stopper.check(state.iteration, state.params), device
                    )
                    if size > 1
                    else stopper.check(state.iteration, state.params)
                )
            if run.checkpoint is not None and (
                state.iteration % run.checkpoint_every == 0
                or state.iteration == run.iterations
                or state.stopped
            ):
                save()
    finally:
        bar.close()
    if not (_finite(state.params) and bool(torch.isfinite(window))):
        raise diverged("a parameter or the training loss is not finite")
    state.wall_time_s += time.perf_counter() - start
    return state
