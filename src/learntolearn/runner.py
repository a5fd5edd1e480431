"""``run(config)``: load the stored result for the config's key, or train, evaluate and store it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from . import provenance
from .config import ExperimentConfig
from .diagnostics import compare_meta_gradients, step_cost
from .evaluation import accuracy, finetune_curve, finetune_curves, query_score, summarize_curve
from .functional import Params, init_params
from .inner_loop import SGD, Adam, UpdateRule
from .maml import MAML
from .models import MLP, ConvNet, FCNet
from .objective import Objective, cross_entropy, mse
from .omniglot import OmniglotTasks, load_omniglot
from .omniglot import fixed_tasks as fixed_omniglot
from .paths import runs_dir
from .pretraining import JointTraining
from .reptile import Reptile
from .sinusoid import SinusoidTasks, with_task_parameters
from .sinusoid import fixed_tasks as fixed_sinusoids
from .store import Result, ResultStore
from .tasks import TaskBatch, TaskDistribution
from .training import Learner, train

__all__ = [
    "MissingResultError",
    "Setup",
    "begin_computing",
    "build",
    "evaluate",
    "head_names",
    "normalisation_modes",
    "resolve_device",
    "run",
    "update_rule",
]


EVAL_CHUNK = 25  # test tasks adapted at once (memory and speed only; results are the same)


class MissingResultError(RuntimeError):
    """Training was needed but is not allowed here (``LEARNTOLEARN_NO_TRAIN`` is set)."""


@dataclass(frozen=True)
class Setup:
    """What a config turns into: the model as an objective, the method and its task stream."""

    objective: Objective
    learner: Learner
    params: Params
    tasks: TaskDistribution
    oracle: bool
    adapted: tuple[str, ...] | None = None  # what fine-tuning adapts (ANIL: the head); None: all

    def prepare(self, batch: TaskBatch) -> TaskBatch:
        """The oracle sees the task's amplitude and phase as inputs; others see x alone."""
        return with_task_parameters(batch) if self.oracle else batch


def cpu_numerics(device: torch.device) -> None:
    """On the CPU: flush denormal floats to zero, and compute with one intra-op thread.

    Second-order meta-gradients through batch-normalised convolutions produce denormal numbers
    (below ~1e-38 in float32), which x86 CPUs process 10-100x slower. ``set_flush_denormal``
    only reaches the calling thread, so extra intra-op threads would still hit them: measured
    here, a 5-way 1-shot MAML step took 86 ms on one flushing thread and 3.2 s on two threads.
    Values that small carry no information, flushing is deterministic, and on the CPU
    experiments run in parallel as separate ``learntolearn train`` processes instead. Both
    settings are process-wide.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        torch.set_num_threads(1)


def begin_computing(
    device: str | torch.device, missing: str
) -> tuple[torch.device, dict[str, Any]]:
    """Before computing anything that is not stored: refuse under ``LEARNTOLEARN_NO_TRAIN``
    (with the message ``missing``), set up the device, and record the code's git state."""
    if os.environ.get("LEARNTOLEARN_NO_TRAIN"):
        raise MissingResultError(missing)
    dev = resolve_device(device)
    cpu_numerics(dev)
    return dev, provenance.git_state()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available")
    return dev


def _model(config: ExperimentConfig) -> nn.Module:
    if config.tasks == "sinusoid":
        assert config.hidden is not None
        return MLP((3 if config.method == "oracle" else 1, *config.hidden, 1))
    assert config.n_way is not None
    if config.model == "fc":
        return FCNet(config.n_way)
    return ConvNet(config.n_way, pool=config.model == "conv-pool")


def normalisation_modes(objective: Objective) -> dict[str, Objective]:
    """The objective with transductive batch norm (the query batch's statistics, as MAML's
    code) and non-transductive (the support set's statistics), by the names results use."""
    return {
        "transductive": replace(objective, transductive=True),
        "non-transductive": replace(objective, transductive=False),
    }


def update_rule(config: ExperimentConfig, lr: float) -> UpdateRule:
    """The method's inner optimiser with step size ``lr``: in training and at test time."""
    return Adam(lr) if config.inner_optimizer == "adam" else SGD(lr)


def head_names(params: Params) -> tuple[str, ...]:
    """The classifier's last layer: what ANIL adapts (Raghu et al. 2020, Sec. 4)."""
    return tuple(k for k in params if k.startswith("head."))


def build(config: ExperimentConfig, device: torch.device) -> Setup:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = _model(config).to(device)
    classify = config.tasks != "sinusoid"
    objective = Objective(model, cross_entropy if classify else mse)
    params = init_params(model)
    adapted = head_names(params) if config.inner_params == "head" else None
    learner: Learner
    c = config
    if c.method == "maml":
        assert c.inner_lr is not None and c.inner_steps is not None
        learner = MAML(objective, c.inner_lr, c.inner_steps, bool(c.first_order), adapted=adapted)
    elif c.method == "reptile":
        assert c.inner_lr is not None and c.inner_steps is not None and c.inner_batch is not None
        learner = Reptile(objective, update_rule(c, c.inner_lr), c.inner_steps, c.inner_batch)
    else:
        learner = JointTraining(objective)
    tasks: TaskDistribution
    if classify:
        assert config.n_way is not None
        tasks = OmniglotTasks(
            load_omniglot(),
            "train",
            n_way=config.n_way,
            k_shot=config.k_shot,
            k_query=config.k_query,
            device=device,
        )
    else:
        tasks = SinusoidTasks(config.k_shot, config.k_query)
    return Setup(objective, learner, params, tasks, config.method == "oracle", adapted)


def evaluate(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    """Fine-tuning curves on the fixed test tasks, for every K of ``eval_shots``.

    Sinusoids: MSE with support points anywhere in [−5, 5] (``full``) and all in [−5, 0]
    (``half``, Fig. 2). Classification: accuracy with transductive batch normalisation (the
    statistics of the query batch, as the MAML code) and non-transductive (support statistics).
    """
    device = next(iter(params.values())).device
    cpu_numerics(device)
    out: dict[str, Any] = {}
    c = config
    if c.tasks == "sinusoid":
        for region, half in (("full", False), ("half", True)):
            out[region] = {}
            for k, lr in zip(c.eval_shots, c.eval_lrs, strict=True):
                batch = fixed_sinusoids(
                    k, num_tasks=c.eval_tasks, k_query=c.eval_query, seed=c.eval_seed, half=half
                )
                batch = setup.prepare(batch).to(device)
                curve = finetune_curve(
                    setup.objective,
                    params,
                    batch,
                    steps=c.eval_steps,
                    lr=lr,
                    rule=update_rule(c, lr),
                )
                out[region][str(k)] = {"lr": lr, **summarize_curve(curve)}
        return out
    assert c.n_way is not None
    data = load_omniglot()
    # Both modes adapt on the support set alone, normalised by its own statistics, so they
    # share one trajectory; only the query predictions differ.
    modes = normalisation_modes(setup.objective)
    scores = {m: query_score(o, accuracy) for m, o in modes.items()}
    out = {mode: {} for mode in modes}
    for k, lr in zip(c.eval_shots, c.eval_lrs, strict=True):
        chunks = fixed_omniglot(
            data,
            n_way=c.n_way,
            k_shot=k,
            k_query=c.eval_query,
            num_tasks=c.eval_tasks,
            seed=c.eval_seed,
        )
        parts = [
            finetune_curves(
                setup.objective,
                params,
                b.to(device),
                steps=c.eval_steps,
                lr=lr,
                scores=scores,
                chunk=EVAL_CHUNK,
                rule=update_rule(c, lr),
                only=setup.adapted,
            )
            for b in chunks
        ]
        for m in modes:
            curve = torch.cat([p[m] for p in parts], 1)
            out[m][str(k)] = {"lr": lr, **summarize_curve(curve, "accuracy")}
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
    dev, code = begin_computing(
        device,
        f"no stored result for {config.key} in {store.root}, and LEARNTOLEARN_NO_TRAIN is "
        f"set; run `python -m learntolearn train {config.name} --profile {config.profile}` "
        "(or `make reproduce`) and commit the new folder under results/",
    )
    setup = build(config, dev)
    twin = store.trained_like(config)
    if twin is not None:  # trained already under another evaluation protocol: evaluate only
        start = time.perf_counter()
        params = twin.params(dev)
        evaluation = evaluate(config, setup, params)
        record = provenance.collect(dev, time.perf_counter() - start, code)
        record = {**twin.provenance, "trained_as": twin.key, "evaluation": record}
        train_metrics = {"train": twin.metrics["train"], "eval": evaluation}
        return store.save(config, train_metrics, record, params)
    checkpoint = runs_dir() / f"{config.key}.pt"
    # A fixed batch of meta-training tasks, from its own generator: the gradient monitor and the
    # cost measurement see the same tasks, and the training stream is untouched.
    fixed = setup.prepare(
        setup.tasks.sample(config.meta_batch, torch.Generator(dev).manual_seed(config.seed + 7919))
    )
    monitor = None
    if isinstance(setup.learner, MAML) and config.monitor_every:
        maml = setup.learner
        monitor = lambda p: compare_meta_gradients(maml, p, fixed)  # noqa: E731
    state = train(
        setup.learner,
        setup.params,
        lambda g: setup.prepare(setup.tasks.sample(config.meta_batch, g)),
        key=config.key,
        iterations=config.iterations,
        lr=config.meta_lr,
        seed=config.seed,
        optimizer="sgd" if config.method == "reptile" else "adam",
        lr_final=config.meta_lr_final,
        device=dev,
        checkpoint=checkpoint,
        checkpoint_every=min(checkpoint_every, config.iterations),
        log_every=min(100, checkpoint_every, config.iterations),
        progress=progress,
        stop_after=stop_after,
        monitor=monitor,
        monitor_every=config.monitor_every or 0,
    )
    if state.iteration < config.iterations:
        raise InterruptedError(
            f"{config.key} stopped at iteration {state.iteration}/{config.iterations}; "
            f"run it again to resume from {checkpoint}"
        )
    train_metrics: dict[str, Any] = {"iterations": state.iteration, "history": state.history}
    if state.monitor:
        train_metrics["monitor"] = state.monitor
    train_metrics["cost"] = step_cost(setup.learner.loss, state.params, fixed)
    metrics = {
        "train": train_metrics,
        "eval": evaluate(config, setup, state.params),
    }
    result = store.save(
        config, metrics, provenance.collect(dev, state.wall_time_s, code), state.params
    )
    checkpoint.unlink(missing_ok=True)
    return result
