"""``run(config)``: load the stored result for the config's key, or train, evaluate and store it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from . import provenance
from .config import ExperimentConfig
from .evaluation import finetune_curve, mean_ci95
from .functional import Params, init_params
from .maml import MAML
from .models import MLP
from .objective import Objective, mse
from .paths import runs_dir
from .pretraining import JointTraining
from .sinusoid import SinusoidTasks, test_tasks, with_task_parameters
from .store import Result, ResultStore
from .tasks import TaskBatch
from .training import Learner, train

__all__ = ["MissingResultError", "Setup", "build", "evaluate", "resolve_device", "run"]


class MissingResultError(RuntimeError):
    """Training was needed but is not allowed here (``LEARNTOLEARN_NO_TRAIN`` is set)."""


@dataclass(frozen=True)
class Setup:
    """What a config turns into: the model as an objective, the method and its task stream."""

    objective: Objective
    learner: Learner
    params: Params
    tasks: SinusoidTasks
    oracle: bool

    def prepare(self, batch: TaskBatch) -> TaskBatch:
        """The oracle sees the task's amplitude and phase as inputs; others see x alone."""
        return with_task_parameters(batch) if self.oracle else batch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available")
    return dev


def build(config: ExperimentConfig, device: torch.device) -> Setup:
    oracle = config.method == "oracle"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = MLP((3 if oracle else 1, *config.hidden, 1)).to(device)
    objective = Objective(model, mse)
    learner: Learner
    if config.method == "maml":
        assert config.inner_lr is not None and config.inner_steps is not None
        learner = MAML(objective, config.inner_lr, config.inner_steps, bool(config.first_order))
    else:
        learner = JointTraining(objective)
    tasks = SinusoidTasks(config.k_shot, config.k_query)
    return Setup(objective, learner, init_params(model), tasks, oracle)


def evaluate(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    """Fine-tuning curves on the fixed test tasks, for every K of ``eval_shots``.

    ``full``: support points anywhere in [−5, 5]; ``half``: all K points in [−5, 0] (Fig. 2).
    """
    device = next(iter(params.values())).device
    out: dict[str, Any] = {}
    for region, half in (("full", False), ("half", True)):
        out[region] = {}
        for k, lr in zip(config.eval_shots, config.eval_lrs, strict=True):
            batch = test_tasks(
                k,
                num_tasks=config.eval_tasks,
                k_query=config.eval_query,
                seed=config.eval_seed,
                half=half,
            )
            batch = setup.prepare(batch).to(device)
            curve = finetune_curve(setup.objective, params, batch, steps=config.eval_steps, lr=lr)
            stats = [mean_ci95(c) for c in curve]
            out[region][str(k)] = {
                "lr": lr,
                "mse_mean": [m for m, _ in stats],
                "mse_ci95": [h for _, h in stats],
            }
    return out


def run(
    config: ExperimentConfig,
    *,
    device: str | torch.device = "auto",
    store: ResultStore | None = None,
    progress: bool = True,
    checkpoint_every: int = 1000,
    stop_after: int | None = None,
) -> Result:
    """The stored result for ``config``; trains (resuming any checkpoint) when there is none."""
    store = store or ResultStore()
    found = store.get(config)
    if found is not None:
        return found
    if os.environ.get("LEARNTOLEARN_NO_TRAIN"):
        raise MissingResultError(
            f"no stored result for {config.key} in {store.root}, and LEARNTOLEARN_NO_TRAIN is "
            f"set; run `python -m learntolearn train {config.name} --profile {config.profile}` "
            "(or `make reproduce`) and commit the new folder under results/"
        )
    dev = resolve_device(device)
    setup = build(config, dev)
    checkpoint = runs_dir() / f"{config.key}.pt"
    state = train(
        setup.learner,
        setup.params,
        lambda g: setup.prepare(setup.tasks.sample(config.meta_batch, g)),
        key=config.key,
        iterations=config.iterations,
        lr=config.meta_lr,
        seed=config.seed,
        device=dev,
        checkpoint=checkpoint,
        checkpoint_every=min(checkpoint_every, config.iterations),
        log_every=min(100, checkpoint_every, config.iterations),
        progress=progress,
        stop_after=stop_after,
    )
    if state.iteration < config.iterations:
        raise InterruptedError(
            f"{config.key} stopped at iteration {state.iteration}/{config.iterations}; "
            f"run it again to resume from {checkpoint}"
        )
    metrics = {
        "train": {"iterations": state.iteration, "history": state.history},
        "eval": evaluate(config, setup, state.params),
    }
    result = store.save(config, metrics, provenance.collect(dev, state.wall_time_s), state.params)
    checkpoint.unlink(missing_ok=True)
    return result
