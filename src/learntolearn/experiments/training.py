"""The outer training loop shared by every method: resumable, deterministic, with progress.

Each iteration samples a meta-batch with a dedicated random generator, evaluates the method's
training objective (MAML's meta-loss, joint training's loss, ...) and takes one step of the
outer optimiser the method chose (:class:`OuterLoop`: Adam for MAML, Sec. 5; SGD with a step
size ε that falls linearly for Reptile, Nichol et al. 2018, App. A). What the *run* decides
(key, iterations, seed, device, checkpointing, progress) is a :class:`RunSettings`; measurements
taken along the way are :class:`Observer` s. A checkpoint (parameters, optimiser state, generator
state, history) is written atomically every ``checkpoint_every`` iterations, so a killed run
resumes to bit-for-bit the same result as an uninterrupted one, whatever the checkpoint interval.
A loss or parameter that stops being finite, or a mean loss beyond :data:`LOSS_LIMIT`, ends the
run with :class:`DivergedError`; the last good checkpoint is kept and nothing is stored.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from learntolearn.experiments import distributed
from learntolearn.io import load_tensors, save_tensors
from learntolearn.methods.protocol import Method
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = [
    "DivergedError",
    "Observer",
    "OuterLoop",
    "RunSettings",
    "TrainState",
    "meta_backward",
    "train",
]

CHECKPOINT_FORMAT = 2  # 1: before observers and the saved history window (still resumed)
LOG_EVERY = 100  # iterations per entry of the stored loss history (fewer if the run is shorter)
LOSS_LIMIT = 1e15  # a mean training loss beyond this has blown up (chance-level cross-entropy
# is log N, the sinusoids' MSE about 4); float32 overflows not far beyond (3e38)


class DivergedError(RuntimeError):
    """Training produced a non-finite loss or parameter; nothing was stored."""


@dataclass(frozen=True)
class OuterLoop:
    """What a method decides about its outer loop: the optimiser ("adam" or "sgd"), its step
    size ``lr`` (falling linearly to ``lr_final`` over the run when given, or halved every
    ``halve_every`` iterations) and an optional clipping of the meta-gradient's norm."""

    optimizer: str = "adam"
    lr: float = 1e-3
    lr_final: float | None = None
    clip_norm: float | None = None
    halve_every: int | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.lr_final is not None and self.halve_every is not None:
            raise ValueError("give lr_final (a linear schedule) or halve_every, not both")

    def make(self, params: Params) -> torch.optim.Optimizer:
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.SGD
        return cls(params.values(), lr=self.lr)

    @property
    def scheduled(self) -> bool:
        """Whether the step size changes over the run."""
        return self.lr_final is not None or self.halve_every is not None

    def lr_at(self, iteration: int, iterations: int) -> float:
        """Step size at ``iteration`` (from 0): ``lr + (lr_final − lr) · t / iterations``, or
        ``lr · 2^−⌊t / halve_every⌋``."""
        if self.halve_every is not None:
            return self.lr * 0.5 ** (iteration // self.halve_every)
        if self.lr_final is None:
            return self.lr
        return self.lr + (self.lr_final - self.lr) * (iteration / iterations)


@dataclass(frozen=True)
class RunSettings:
    """What the run decides: its key and length, the seed of the task stream, the device, where
    and how often to checkpoint, and progress. ``stop_after`` ends the call early after that
    many iterations, ``deadline`` (a :func:`time.monotonic` time) at the first iteration that
    ends after it; either way a checkpoint of the iteration reached is written to resume from.
    ``on_checkpoint(state)`` runs after every checkpoint is written (the runner records the
    run's progress beside it). ``task_chunk`` backpropagates the meta-batch that many tasks at
    a time (None: all at once): the same meta-gradient up to the order of floating-point sums,
    with one chunk's graph in memory instead of the whole batch's."""

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

    def __post_init__(self) -> None:
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {every!r}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")

    @property
    def log_every(self) -> int:
        """Iterations per history entry: fixed by the run's length alone, never by checkpoints."""
        return min(LOG_EVERY, self.iterations)


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


def _checkpoint(
    state: TrainState,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    key: str,
    window: Tensor,
    schedule: dict[str, int | None],
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "key": key,
        "schedule": schedule,  # ranks and task chunk: resumed with others, rounding differs
        "iteration": state.iteration,
        "params": {k: v.detach().clone() for k, v in state.params.items()},
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "history": state.history,
        "observed": state.observed,
        "window": window.detach().clone(),  # the loss sum of the history entry in progress
        "wall_time_s": state.wall_time_s,
    }


def _finite(params: Params) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values())


def meta_backward(
    learner: Method, params: Params, batch: TaskBatch, total: int, chunk: int | None
) -> Tensor:
    """Backpropagate ``learner.loss`` over ``batch``, ``chunk`` tasks at a time, each chunk
    weighted by its share of a meta-batch of ``total`` tasks; returns the weighted loss."""
    n = batch.num_tasks
    if chunk is None or chunk >= n:
        loss = learner.loss(params, batch) * (n / total)
        loss.backward()
        return loss.detach()
    summed = torch.zeros((), device=batch.device)
    for i in range(0, n, chunk):
        part = batch[i : i + chunk]
        loss = learner.loss(params, part) * (part.num_tasks / total)
        loss.backward()
        summed += loss.detach()
    return summed


def train(
    learner: Method,
    params: Params,
    sample: Callable[[torch.Generator], TaskBatch],
    outer: OuterLoop,
    run: RunSettings,
    observers: Sequence[Observer] = (),
) -> TrainState:
    """Minimise ``learner.loss`` on meta-batches from ``sample`` with ``outer`` for
    ``run.iterations`` steps, resuming from ``run.checkpoint`` when it exists.

    In a distributed run (:mod:`~learntolearn.experiments.distributed`) every rank takes its
    share of each meta-batch and the meta-gradients are summed; rank 0 alone observes and
    writes checkpoints, and the returned state of the other ranks has no observations."""
    device, key = run.device, run.key
    rank, size = distributed.world()
    schedule = {"ranks": size, "task_chunk": run.task_chunk}
    state = TrainState(
        params={k: v.detach().clone().to(device).requires_grad_() for k, v in params.items()},
        observed={o.name: [] for o in observers},
    )
    opt = outer.make(state.params)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    window = torch.zeros((), device=device)
    if run.checkpoint is not None and run.checkpoint.is_file():
        ck = load_tensors(run.checkpoint, map_location=device)
        if ck.get("format") == 1 and ck.get("key") == key:  # written on a history boundary
            ck = {**ck, "observed": {"monitor": ck["monitor"]}, "window": window.clone()}
            ck["format"] = CHECKPOINT_FORMAT
        if ck.get("format") != CHECKPOINT_FORMAT or ck.get("key") != key:
            raise ValueError(
                f"checkpoint {run.checkpoint} belongs to {ck.get('key')!r} (format "
                f"{ck.get('format')}), not {key!r}; delete it to start this run from scratch"
            )
        with torch.no_grad():
            for k, v in state.params.items():
                v.copy_(ck["params"][k])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"].cpu())
        state.iteration, state.history = ck["iteration"], ck["history"]
        state.observed = {o.name: ck["observed"].get(o.name, []) for o in observers}
        state.wall_time_s = ck["wall_time_s"]
        window.copy_(ck["window"])
        if ck.get("schedule", schedule) != schedule and rank == 0:
            warnings.warn(
                f"{key}: resuming a checkpoint made with {ck['schedule']} under {schedule}; "
                "the run equals an uninterrupted one up to floating-point rounding, not bit "
                "for bit (resume with the same ranks and --task-chunk for that)",
                stacklevel=2,
            )

    bar = tqdm(
        total=run.iterations,
        initial=state.iteration,
        disable=True if not run.progress or rank else None,
        desc=key,
        unit="it",
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
            f"the last checkpoint ({run.checkpoint}) is kept"
            if run.checkpoint is not None and run.checkpoint.is_file()
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
        save_tensors(run.checkpoint, _checkpoint(state, opt, gen, key, window, schedule))
        if run.on_checkpoint is not None:
            run.on_checkpoint(state)

    def stop() -> bool:
        budget = run.deadline is not None and time.monotonic() >= run.deadline
        spent = (run.stop_after is not None and done_now >= run.stop_after) or budget
        return distributed.agree(spent, device) if size > 1 and run.deadline else spent

    try:
        unsaved = observe()  # e.g. a milestone evaluation at iteration 0: kept even if the
        # budget ends before the first iteration, so that the next sitting does not redo it
        while state.iteration < run.iterations:
            if stop():
                if run.checkpoint is not None and (done_now or unsaved):
                    save()
                break
            if outer.scheduled:
                opt.param_groups[0]["lr"] = outer.lr_at(state.iteration, run.iterations)
            batch = sample(gen)
            opt.zero_grad(set_to_none=True)
            if size == 1 and run.task_chunk is None:  # the plain step
                loss = learner.loss(state.params, batch)
                loss.backward()
            else:  # this rank's tasks, weighted by their share of the meta-batch's mean
                part = batch if size == 1 else distributed.shard(batch, rank, size)
                loss = meta_backward(learner, state.params, part, batch.num_tasks, run.task_chunk)
            if size > 1:
                loss = distributed.reduce_gradients(state.params, loss)
            if outer.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(list(state.params.values()), outer.clip_norm)
            opt.step()
            window += loss.detach()
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
            if run.checkpoint is not None and (
                state.iteration % run.checkpoint_every == 0 or state.iteration == run.iterations
            ):
                save()
    finally:
        bar.close()
    if not (_finite(state.params) and bool(torch.isfinite(window))):
        raise diverged("a parameter or the training loss is not finite")
    state.wall_time_s += time.perf_counter() - start
    return state
