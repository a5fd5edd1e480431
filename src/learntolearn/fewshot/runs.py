"""``run(config, store)``: the stored result for the config's key, or train, evaluate and store it.

A config becomes a :class:`Setup` through the two tables: the task family (network, loss,
sampler, test sets) and the method (how to build it, its outer loop, its observers).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from learntolearn.analysis.meta_gradients import step_cost
from learntolearn.experiments import distributed, provenance
from learntolearn.experiments.compare import Verdict, compare_evaluations
from learntolearn.experiments.device import resolve_device
from learntolearn.experiments.runner import obtain
from learntolearn.experiments.store import checkpoint_file
from learntolearn.experiments.training import RunSettings, TrainState
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.evaluation import evaluate, milestones
from learntolearn.fewshot.method_table import METHODS, MethodEntry
from learntolearn.fewshot.stopping import ValidationPlateau
from learntolearn.fewshot.store import Result, ResultStore
from learntolearn.fewshot.task_families import FAMILIES, TaskFamily
from learntolearn.fewshot.training import train
from learntolearn.methods.protocol import Method
from learntolearn.objective import Objective, Params, init_params
from learntolearn.paths import runs_dir
from learntolearn.tasks import TaskBatch, TaskDistribution

__all__ = ["Setup", "build", "checkpoint_bytes", "network", "reevaluate", "run"]


@dataclass(frozen=True)
class Setup:
    """What a config turns into: the method over its objective, the initial parameters, the
    training task stream, and the table entries it came from."""

    method: Method
    params: Params
    tasks: TaskDistribution
    family: TaskFamily
    entry: MethodEntry

    @property
    def objective(self) -> Objective:
        return self.method.objective

    def prepare(self, batch: TaskBatch) -> TaskBatch:
        """The batch as the method sees it (the oracle: with the task's amplitude and phase)."""
        return self.entry.prepare(batch)


def build(config: ExperimentConfig, device: torch.device) -> Setup:
    """The config's network (seeded), method and training tasks, on ``device``."""
    family, entry = FAMILIES[config.tasks], METHODS[config.method]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = network(config).to(device)
    objective = Objective(model, family.loss, config.train_bn_mode != "non-transductive")
    method = entry.build(config, objective)
    return Setup(method, init_params(model), family.sampler(config, device), family, entry)


def network(config: ExperimentConfig) -> torch.nn.Module:
    """The network ``config`` trains (the method's own, else the task family's), freshly
    initialised from the global generator (:func:`build` seeds it)."""
    family, entry = FAMILIES[config.tasks], METHODS[config.method]
    own = entry.networks.get(config.model) if config.model is not None else None
    return own(config) if own else family.network(config, entry.extra_inputs)


def checkpoint_bytes(config: ExperimentConfig) -> int:
    """About how large ``config``'s training checkpoint will be, before training: the network
    built on the ``meta`` device (no memory, no data), then 4 bytes per float32 parameter for
    the parameters, 8 for Adam's two moments, 4 more for the parameters a stopping rule keeps,
    and 64 KiB of generator state, history and records (tests/test_local_tensors.py checks it
    against a real checkpoint)."""
    with torch.device("meta"):
        count = sum(p.numel() for p in network(config).parameters())
    copies = 3 + (config.stop_every is not None)
    return 4 * copies * count + 2**16


def run(
    config: ExperimentConfig,
    store: ResultStore,
    *,
    device: str | torch.device = "auto",
    progress: bool = True,
    checkpoint_every: int = 1000,
    stop_after: int | None = None,
    deadline: float | None = None,
    task_chunk: int | None = None,
) -> Result:
    """The stored result for ``config`` in ``store``; trains (resuming any checkpoint) when
    there is none.

    The run's checkpoint and progress record live in the store's ``in-progress/`` folder until
    the result is stored; a second process training the same key meanwhile is refused at
    once. ``stop_after`` (iterations) or ``deadline`` (a :func:`time.monotonic` time) end this
    sitting early with :class:`InterruptedError`; the same call resumes it. ``task_chunk``: see
    :class:`~learntolearn.experiments.training.RunSettings` (less memory; the same result up
    to rounding). In a distributed run every rank trains, rank 0 evaluates and stores, and
    every rank returns the stored result once it is stored.
    """

    def compute(dev: torch.device, code: dict[str, Any]) -> Result | None:
        FAMILIES[config.tasks].check_data(config)  # before the network is even built
        checkpoint = store.checkpoint_path(config)
        legacy = runs_dir() / f"{config.key}.pt"  # where checkpoints lived before in-progress/
        if (
            distributed.world()[0] == 0
            and legacy.is_file()
            and not checkpoint_file(checkpoint).is_file()
        ):
            shutil.move(legacy, checkpoint)
        distributed.barrier()  # the checkpoint is where every rank looks for it
        return _compute(
            config, store, dev, code, progress, checkpoint_every, stop_after, deadline, task_chunk
        )

    command = f"train {config.name} --profile {config.profile}"
    return obtain(config, store, compute, device=device, command=command)


def _compute(
    config: ExperimentConfig,
    store: ResultStore,
    dev: torch.device,
    code: dict[str, Any],
    progress: bool,
    checkpoint_every: int,
    stop_after: int | None,
    deadline: float | None,
    task_chunk: int | None,
) -> Result | None:
    """Train (or, for a run trained the same way, evaluate) and store; None on ranks but 0."""
    rank, ranks = distributed.world()
    checkpoint = store.checkpoint_path(config)
    sittings = list((store.progress(config) or {}).get("sittings", []))
    sitting = {
        "from": store.resumable_iteration(config),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **code,
        "device": provenance.device_name(dev),
        "ranks": ranks,
        "task_chunk": task_chunk,
    }

    def on_checkpoint(state: TrainState) -> None:
        sitting.update(to=state.iteration, total_wall_time_s=round(state.wall_time_s, 1))
        store.save_progress(
            config,
            {
                "key": config.key,
                "name": config.name,
                "profile": config.profile,
                "iteration": state.iteration,
                "iterations": config.iterations,
                "milestones": state.observed.get("milestones", []),
                "checkpoint_bytes": checkpoint_file(checkpoint).stat().st_size,
                "checkpoint_file": checkpoint_file(checkpoint).name,  # *.local.pt: not in git
                "sittings": [*sittings, sitting],
            },
        )

    settings = RunSettings(
        key=config.key,
        iterations=config.iterations,
        seed=config.seed,
        device=dev,
        checkpoint=checkpoint,
        checkpoint_every=min(checkpoint_every, config.iterations),
        progress=progress,
        stop_after=stop_after,
        deadline=deadline,
        task_chunk=task_chunk,
        on_checkpoint=on_checkpoint,
    )
    setup = build(config, dev)
    twin = store.trained_like(config)
    if twin is not None:  # trained already under another evaluation protocol: evaluate only
        if rank != 0:
            return None
        start = time.perf_counter()
        params = twin.params(dev)
        evaluation = evaluate(config, setup, params)
        made = provenance.collect(dev, time.perf_counter() - start, code)
        trained_as = twin.provenance.get("trained_as", twin.key)  # the run that trained it
        made = {**twin.provenance, "trained_as": trained_as, "evaluation": made}
        # the twin's milestones scored its own test tasks: they stay with the run that trained
        kept = {k: v for k, v in twin.metrics["train"].items() if k != "milestones"}
        train_metrics = {"train": kept, "eval": evaluation}
        return store.save(config, train_metrics, made, params)
    # A fixed batch of meta-training tasks, from its own generator: the observers and the cost
    # measurement see the same tasks, and the training stream is untouched.
    fixed = setup.prepare(
        setup.tasks.sample(config.meta_batch, torch.Generator(dev).manual_seed(config.seed + 7919))
    )
    observers = [*setup.entry.observers(config, setup.method, fixed), *milestones(config, setup)]
    rule = ValidationPlateau(config, setup) if config.stop_every is not None else None
    state = train(
        setup.method,
        setup.params,
        lambda g: setup.prepare(setup.tasks.sample(config.meta_batch, g)),
        setup.entry.outer(config),
        settings,
        observers,
        rule,
    )
    if state.iteration < config.iterations and not state.stopped:
        raise InterruptedError(
            f"{config.key} stopped at iteration {state.iteration}/{config.iterations}; "
            f"run it again to resume from {checkpoint}"
        )
    if rank != 0:
        return None
    train_metrics: dict[str, Any] = {"iterations": state.iteration, "history": state.history}
    train_metrics.update({name: records for name, records in state.observed.items() if records})
    train_metrics["cost"] = step_cost(setup.method.loss, state.params, fixed)
    params = state.params
    if rule is not None:  # the parameters kept on validation, and where the run ended
        train_metrics["stopping"] = rule.summary(state.iteration, state.stopped)
        params = rule.kept(state.params)
    metrics = {"train": train_metrics, "eval": evaluate(config, setup, params)}
    made = provenance.collect(dev, state.wall_time_s, code)
    if sittings:  # trained over several sittings: each one's commit, device and iterations
        made["sittings"] = [*sittings, {**sitting, "to": state.iteration}]
    result = store.save(config, metrics, made, params)
    store.end_progress(config)
    return result


def reevaluate(
    config: ExperimentConfig, store: ResultStore, device: str | torch.device, *, write: bool
) -> tuple[Result, Verdict | None]:
    """Evaluate ``config``'s stored parameters again: compared with the stored evaluation, or
    (``write``) stored in its place, with the new evaluation's own provenance record."""
    result = store.get(config)
    if result is None:
        raise FileNotFoundError(f"{config.key}: no stored result in {store.root}; train it first")
    dev = resolve_device(device)
    if write:
        store.check_writable()
    fresh = evaluate(config, build(config, dev), result.params(dev))
    if not write:
        return result, compare_evaluations(fresh, result.metrics["eval"])
    record = provenance.collect(dev, wall_time_s=0.0)
    del record["wall_time_s"]
    return store.update_evaluation(config, fresh, record), None
