"""The outer training loop shared by every method: resumable, deterministic, with progress.

Each iteration samples a meta-batch with a dedicated random generator, evaluates the method's
objective (MAML's meta-loss, joint training's loss, ...) and takes one Adam step (MAML's outer
update uses Adam, Sec. 5) or one SGD step (Reptile's, whose step size ε falls linearly from
``lr`` to ``lr_final`` over the run, Nichol et al. 2018, App. A). A checkpoint (parameters,
optimiser state, generator state, loss history) is written atomically every
``checkpoint_every`` iterations, so a killed run resumes to bit-for-bit the same result as an
uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from .functional import Params
from .io import load_tensors, save_tensors
from .tasks import TaskBatch

__all__ = ["Learner", "TrainState", "train"]

CHECKPOINT_FORMAT = 1


class Learner(Protocol):
    """A method's training objective on a batch of tasks."""

    def loss(self, params: Params, batch: TaskBatch) -> Tensor: ...


@dataclass
class TrainState:
    params: Params
    iteration: int = 0
    history: list[list[float]] = field(default_factory=list)  # [iteration, mean loss]
    monitor: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0


def _checkpoint(state: TrainState, opt: torch.optim.Optimizer, gen: torch.Generator, key: str):
    return {
        "format": CHECKPOINT_FORMAT,
        "key": key,
        "iteration": state.iteration,
        "params": {k: v.detach().clone() for k, v in state.params.items()},
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "history": state.history,
        "monitor": state.monitor,
        "wall_time_s": state.wall_time_s,
    }


def train(
    learner: Learner,
    params: Params,
    sample: Callable[[torch.Generator], TaskBatch],
    *,
    key: str,
    iterations: int,
    lr: float,
    seed: int,
    optimizer: str = "adam",
    lr_final: float | None = None,
    device: torch.device,
    checkpoint: Path | None = None,
    checkpoint_every: int = 1000,
    log_every: int = 100,
    progress: bool = True,
    stop_after: int | None = None,
    monitor: Callable[[Params], dict[str, float]] | None = None,
    monitor_every: int = 0,
) -> TrainState:
    """Minimise ``learner.loss`` with ``optimizer`` ("adam" or "sgd") for ``iterations`` steps,
    resuming from ``checkpoint``. With ``lr_final`` the step size at iteration t (from 0) is
    ``lr + (lr_final − lr) · t / iterations``.

    ``stop_after`` ends the call early after that many iterations (as a kill would), leaving
    the checkpoint to resume from: the tests use it to check that resuming is exact.
    ``monitor(params)`` is recorded before training and every ``monitor_every`` iterations; it
    must not draw from the training generator.
    """
    if checkpoint_every % log_every:
        raise ValueError("checkpoint_every must be a multiple of log_every")
    state = TrainState(
        params={k: v.detach().clone().to(device).requires_grad_() for k, v in params.items()}
    )
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    opt_class = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_class(state.params.values(), lr=lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    if checkpoint is not None and checkpoint.is_file():
        ck = load_tensors(checkpoint, map_location=device)
        if ck.get("format") != CHECKPOINT_FORMAT or ck.get("key") != key:
            raise ValueError(
                f"checkpoint {checkpoint} belongs to {ck.get('key')!r}, not {key!r}; "
                "delete it to start this run from scratch"
            )
        with torch.no_grad():
            for k, v in state.params.items():
                v.copy_(ck["params"][k])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"].cpu())
        state.iteration, state.history = ck["iteration"], ck["history"]
        state.monitor = ck.get("monitor", [])
        state.wall_time_s = ck["wall_time_s"]

    bar = tqdm(
        total=iterations,
        initial=state.iteration,
        disable=not progress or None,
        desc=key,
        unit="it",
        dynamic_ncols=True,
        leave=False,
    )
    window = torch.zeros((), device=device)
    start, done_now = time.perf_counter(), 0

    def observe() -> None:
        due = monitor is not None and monitor_every and state.iteration % monitor_every == 0
        fresh = not state.monitor or state.monitor[-1]["iteration"] < state.iteration
        if due and fresh:
            state.monitor.append({"iteration": state.iteration, **monitor(state.params)})

    try:
        observe()
        while state.iteration < iterations:
            if stop_after is not None and done_now >= stop_after:
                break
            if lr_final is not None:
                frac = state.iteration / iterations
                opt.param_groups[0]["lr"] = lr + (lr_final - lr) * frac
            loss = learner.loss(state.params, sample(gen))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            window += loss.detach()
            state.iteration += 1
            done_now += 1
            bar.update()
            observe()
            if state.iteration % log_every == 0:
                state.history.append([state.iteration, (window / log_every).item()])
                window.zero_()
                bar.set_postfix(loss=f"{state.history[-1][1]:.4f}", refresh=False)
            if checkpoint is not None and (
                state.iteration % checkpoint_every == 0 or state.iteration == iterations
            ):
                state.wall_time_s += time.perf_counter() - start
                start = time.perf_counter()
                save_tensors(checkpoint, _checkpoint(state, opt, gen, key))
    finally:
        bar.close()
    state.wall_time_s += time.perf_counter() - start
    return state
