"""The few-shot methods' side of the training loop: their outer loop and their step.

Each iteration samples a meta-batch with a dedicated random generator, evaluates the method's
training objective (MAML's meta-loss, joint training's loss, ...) and takes one step of the
outer optimiser the method chose (:class:`OuterLoop`: Adam for MAML, Sec. 5; SGD with a step
size ε that falls linearly for Reptile, Nichol et al. 2018, App. A). :class:`MetaStep` is that
iteration, in the engine's step contract; the engine's :func:`~learntolearn.experiments.
training.loop` runs it (resumable, deterministic, with progress and divergence refusal).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from learntolearn.experiments import distributed
from learntolearn.experiments.training import Observer, RunSettings, Stopper, TrainState, loop
from learntolearn.methods.protocol import Method
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["MetaStep", "OuterLoop", "meta_backward", "train"]


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


class MetaStep:
    """One meta-iteration of ``learner`` (the engine's :class:`~learntolearn.experiments.
    training.TrainingStep`): the outer loop's step size for this iteration, a meta-batch from
    ``sample``, the meta-gradient (this rank's share of the tasks, ``chunk`` tasks at a time;
    summed over ranks), an optional clipping, and the outer optimiser's step."""

    def __init__(
        self,
        learner: Method,
        params: Params,
        sample: Callable[[torch.Generator], TaskBatch],
        outer: OuterLoop,
        run: RunSettings,
    ) -> None:
        self.learner, self.sample, self.outer, self.run = learner, sample, outer, run
        self.params = {
            k: v.detach().clone().to(run.device).requires_grad_() for k, v in params.items()
        }
        self.opt = outer.make(self.params)
        self.gen = torch.Generator(device=run.device).manual_seed(run.seed)
        self.rank, self.size = distributed.world()
        self.schedule = {"ranks": self.size, "task_chunk": run.task_chunk}

    def step(self, iteration: int) -> Tensor:
        outer, opt = self.outer, self.opt
        if outer.scheduled:
            opt.param_groups[0]["lr"] = outer.lr_at(iteration, self.run.iterations)
        batch = self.sample(self.gen)
        opt.zero_grad(set_to_none=True)
        if self.size == 1 and self.run.task_chunk is None:  # the plain step
            loss = self.learner.loss(self.params, batch)
            loss.backward()
        else:  # this rank's tasks, weighted by their share of the meta-batch's mean
            part = batch if self.size == 1 else distributed.shard(batch, self.rank, self.size)
            loss = meta_backward(
                self.learner, self.params, part, batch.num_tasks, self.run.task_chunk
            )
        if self.size > 1:
            loss = distributed.reduce_gradients(self.params, loss)
        if outer.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), outer.clip_norm)
        opt.step()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,  # ranks and task chunk (others: the same up to rounding)
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())
        if state.get("schedule", self.schedule) != self.schedule and self.rank == 0:
            warnings.warn(
                f"{self.run.key}: resuming a checkpoint made with {state['schedule']} under "
                f"{self.schedule}; the run equals an uninterrupted one up to floating-point "
                "rounding, not bit for bit (resume with the same ranks and --task-chunk for that)",
                stacklevel=3,
            )


def train(
    learner: Method,
    params: Params,
    sample: Callable[[torch.Generator], TaskBatch],
    outer: OuterLoop,
    run: RunSettings,
    observers: Sequence[Observer] = (),
    stopper: Stopper | None = None,
) -> TrainState:
    """Minimise ``learner.loss`` on meta-batches from ``sample`` with ``outer`` for
    ``run.iterations`` steps, resuming from ``run.checkpoint`` when it exists.

    In a distributed run (:mod:`~learntolearn.experiments.distributed`) every rank takes its
    share of each meta-batch and the meta-gradients are summed; rank 0 alone observes and
    writes checkpoints, and the returned state of the other ranks has no observations."""
    return loop(MetaStep(learner, params, sample, outer, run), run, observers, stopper)
