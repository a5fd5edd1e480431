"""Train, evaluate and store a learned optimizer: ``run_optimizer(config, store)``.

Through the engine's :func:`~learntolearn.experiments.runner.obtain`, like every kind, it
loads the stored result for the config's key or computes it: meta-training by truncated BPTT
(resumable: a checkpoint in ``learned-optimizers/in-progress/``), then the evaluation on fixed
test problems of every setting against the hand-designed baselines, each with its step size
tuned on the grid by the same criterion (the mean loss over the horizon, the LSTM's own
meta-objective, on separate tuning problems). ``learned-optimizers/<key>/`` holds
``config.json``, ``metrics.json``, ``provenance.json``, ``optimizer.pt`` (φ, loaded with
``weights_only=True``) and their checksums (:class:`OptimizerStore`, the engine's store laid
out for φ).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from learntolearn.analysis.statistics import mean_ci95
from learntolearn.data.mnist import flat_digits
from learntolearn.data.optimizees import MLPs, Problems, Quadratics
from learntolearn.experiments import provenance
from learntolearn.experiments.compare import Verdict, compare_evaluations
from learntolearn.experiments.device import cpu_numerics, resolve_device
from learntolearn.experiments.runner import obtain
from learntolearn.experiments.store import Layout, Store, Stored, tensor_file
from learntolearn.experiments.training import RunSettings, loop
from learntolearn.io import load_tensors
from learntolearn.learned_optimizers.config import BASELINES, OptimizerConfig, Setting
from learntolearn.methods.inner_loop import NAG, SGD, Adam, RMSprop, UpdateRule
from learntolearn.methods.learned_optimizer import LSTMOptimizer, NonFiniteLossError, unroll
from learntolearn.models.optimizers import CoordinatewiseLSTM
from learntolearn.objective import Params, init_params

__all__ = [
    "FOLDER",
    "OptimizerResult",
    "OptimizerStore",
    "load_optimizer",
    "reevaluate_optimizer",
    "run_optimizer",
    "trajectories",
]

FOLDER = "learned-optimizers"
log = logging.getLogger(__name__)

RULES: dict[str, Callable[[float], UpdateRule]] = {
    "sgd": SGD,
    "nag": NAG,
    "rmsprop": RMSprop,
    "adam": lambda lr: Adam(lr, beta1=0.9),
}


@dataclass(frozen=True)
class OptimizerResult(Stored):
    config: OptimizerConfig

    def rule(self, device: str | torch.device = "cpu") -> LSTMOptimizer:
        """The trained optimizer as an update rule (its file verified against its checksum)."""
        return load_optimizer(tensor_file(self, "optimizer.pt"), self.config, device)


LAYOUT = Layout(OptimizerConfig, "optimizer.pt", OptimizerResult, "optimizer_sha256")


class OptimizerStore(Store[OptimizerResult]):
    """The learned optimizers under ``root`` (the ``learned-optimizers/`` folder of a store)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, LAYOUT)


def _network(config: OptimizerConfig) -> CoordinatewiseLSTM:
    return CoordinatewiseLSTM(2, config.hidden, config.layers)


def load_optimizer(
    path: Path, config: OptimizerConfig, device: str | torch.device = "cpu"
) -> LSTMOptimizer:
    """φ from ``path`` as the rule of ``config``; a φ of another shape gets a clear error."""
    net = _network(config).to(device)
    weights = load_tensors(path, device)
    expected = {k: tuple(v.shape) for k, v in net.named_parameters()}
    found = {k: tuple(v.shape) for k, v in weights.items()} if isinstance(weights, dict) else {}
    if found != expected:
        count = sum(v.numel() for v in weights.values()) if found else 0
        raise ValueError(
            f"{path} holds {count} optimizer parameters {sorted(found)[:3]}…, but a "
            f"{config.layers}-layer LSTM with {config.hidden} units needs "
            f"{sum(v.numel() for v in net.parameters())}: it belongs to another config; delete "
            "it to retrain"
        )
    return LSTMOptimizer(net, weights, config.scale, config.p)


def _family(config: OptimizerConfig, setting: Setting, train: bool, device: torch.device) -> Any:
    if config.problem == "quadratic":
        return Quadratics()
    images, labels = flat_digits(train)
    return MLPs(images.to(device), labels.to(device), setting.hidden, setting.activation)


def trajectories(rule: UpdateRule, problems: Problems, steps: int) -> Tensor:
    """Losses ``[steps+1, B]`` of ``rule`` on every problem (no meta-gradient). A problem that
    diverges keeps its non-finite losses in its own column; the others are unaffected."""
    params = {k: v.detach() for k, v in problems.params.items()}
    state: Params = {}
    out = []
    for t in range(steps + 1):
        params = {k: v.requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            value = problems.loss(params, t)
            out.append(value.detach())
            if t == steps:
                break
            grads = torch.autograd.grad(value.sum(), list(params.values()))
        with torch.no_grad():
            new, state = rule(params, dict(zip(params, grads, strict=True)), state, t)
        params = {k: v.detach() for k, v in new.items()}
        state = {k: v.detach() for k, v in state.items()}
    return torch.stack(out)


def _summary(curve: Tensor) -> dict[str, Any]:
    """Per step mean and 95% CI over the finite problems; the final loss; the diverged count."""
    finite = torch.isfinite(curve).all(0)
    kept = curve[:, finite]
    diverged = int((~finite).sum())
    if diverged:
        log.warning("%d of %d problems diverged (non-finite loss)", diverged, curve.shape[1])
    if kept.shape[1] < 2:
        return {"diverged": diverged, "problems": curve.shape[1]}
    stats = [mean_ci95(c) for c in kept]
    return {
        "mean": [m for m, _ in stats],
        "ci95": [h for _, h in stats],
        "final": list(mean_ci95(kept[-1])),
        "objective": list(mean_ci95(kept[1:].mean(0))),  # mean loss over the horizon
        "diverged": diverged,
        "problems": curve.shape[1],
    }


def _criterion(curve: Tensor) -> float:
    """The tuning criterion: the mean over problems of the mean loss over the horizon (inf for
    a diverged problem), the quantity the LSTM is trained to minimise (Eq. 3, w_t = 1)."""
    per_problem = curve[1:].mean(0)
    return float(torch.where(torch.isfinite(per_problem), per_problem, torch.inf).mean())


def _evaluate(config: OptimizerConfig, rule: LSTMOptimizer, dev: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (name, setting) in enumerate(config.settings.items()):
        # drawn on the CPU, so that every device sees the same test and tuning problems
        test_family = _family(config, setting, False, dev)
        tune_family = _family(config, setting, True, dev)
        seed = config.eval_seed + 1000 * i
        tune = tune_family.sample(
            config.tune_problems, setting.steps, torch.Generator().manual_seed(seed + 1), dev
        )
        test = test_family.sample(
            config.eval_problems, setting.steps, torch.Generator().manual_seed(seed), dev
        )
        found: dict[str, Any] = {"steps": setting.steps}
        start = time.perf_counter()
        found["lstm"] = _summary(trajectories(rule, test, setting.steps))
        found["lstm"]["seconds"] = round(time.perf_counter() - start, 2)
        for b in BASELINES:
            scores = {
                lr: _criterion(trajectories(RULES[b](lr), tune, setting.steps))
                for lr in config.lr_grid
            }
            best = min(scores, key=lambda lr: scores[lr])
            curve = trajectories(RULES[b](best), test, setting.steps)
            found[b] = {
                **_summary(curve),
                "lr": best,
                "tuning": {f"{k:g}": v for k, v in scores.items()},
            }
        out[name] = found
    return out


class OptimizerStep:
    """One training horizon of the LSTM optimizer (the engine's :class:`~learntolearn.
    experiments.training.TrainingStep`): fresh problems, then ``horizon / unroll`` truncated
    unrolls, each followed by an Adam step on φ (Andrychowicz et al. 2016, Sec. 2.1: truncated
    backpropagation through time); its loss is the mean optimizee loss over the horizon."""

    def __init__(self, config: OptimizerConfig, dev: torch.device) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = _network(config).to(dev)
        self.config, self.dev = config, dev
        self.params = init_params(net)
        self.outer = torch.optim.Adam(list(self.params.values()), lr=config.meta_lr)
        self.gen = torch.Generator(dev).manual_seed(config.seed)
        self.rule = LSTMOptimizer(net, self.params, config.scale, config.p)
        self.family = _family(config, Setting(steps=config.horizon), True, dev)

    def step(self, iteration: int) -> Tensor:
        config = self.config
        problems = self.family.sample(config.meta_batch, config.horizon, self.gen)
        theta, state, seen = problems.params, {}, []
        for s in range(0, config.horizon, config.unroll):
            try:
                meta_loss, theta, state, losses = unroll(
                    self.rule,
                    problems.loss,
                    theta,
                    state,
                    start=s,
                    steps=config.unroll,
                    second_order=config.second_order,
                )
            except NonFiniteLossError as err:
                raise NonFiniteLossError(
                    f"{config.key}, training iteration {iteration}: {err}; nothing was stored, "
                    "the checkpoint in in-progress/ holds the last good state"
                ) from err
            self.outer.zero_grad()
            (meta_loss / (config.unroll * config.meta_batch)).backward()
            grads = [w.grad for w in self.params.values() if w.grad is not None]
            if not all(bool(torch.isfinite(g).all()) for g in grads):
                raise NonFiniteLossError(f"{config.key}: non-finite meta-gradient at {iteration}")
            self.outer.step()
            theta = {k: v.detach() for k, v in theta.items()}
            state = {k: v.detach() for k, v in state.items()}
            seen += losses
        return torch.tensor(sum(seen) / len(seen), dtype=torch.float64)

    def state_dict(self) -> dict[str, Any]:
        return {
            "outer": self.outer.state_dict(),
            "generator": self.gen.get_state(),
            "device": self.dev.type,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("device", "cpu") != self.dev.type:
            raise ValueError(
                f"a checkpoint of {self.config.key} was written on {state.get('device', 'cpu')}, "
                f"not {self.dev.type}: resume it there (the problems it draws depend on the "
                "device), or delete it"
            )
        self.outer.load_state_dict(state["outer"])
        self.gen.set_state(state["generator"].cpu())


def _train(
    config: OptimizerConfig,
    dev: torch.device,
    checkpoint: Path,
    checkpoint_every: int,
    deadline: float | None,
    progress: bool,
) -> tuple[Params, dict[str, Any]]:
    """Meta-train φ through the engine's loop (a history entry per horizon)."""
    step = OptimizerStep(config, dev)
    run = RunSettings(
        key=config.key,
        iterations=config.iterations,
        seed=config.seed,
        device=dev,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        progress=progress,
        deadline=deadline,
        history_every=1,
        unit="horizon",
    )
    state = loop(step, run)
    if state.iteration < config.iterations:
        raise InterruptedError(
            f"{config.key} stopped at {state.iteration}/{config.iterations}; rerun to resume"
        )
    history = [mean for _, mean in state.history]
    train = {"iterations": config.iterations, "history": history, "wall_time_s": state.wall_time_s}
    return state.params, train


def run_optimizer(
    config: OptimizerConfig,
    store: OptimizerStore,
    *,
    device: str | torch.device = "auto",
    progress: bool = True,
    checkpoint_every: int = 50,
    deadline: float | None = None,
) -> OptimizerResult:
    """The stored result of ``config`` in ``store``, or train, evaluate and store it;
    ``deadline`` (a :func:`time.monotonic` time) ends the sitting with :class:`InterruptedError`
    and a checkpoint to resume from."""

    def compute(dev: torch.device, code: dict[str, Any]) -> OptimizerResult:
        checkpoint = store.checkpoint_path(config)
        weights, train = _train(config, dev, checkpoint, checkpoint_every, deadline, progress)
        start = time.perf_counter()
        trained = {k: v.detach() for k, v in weights.items()}
        rule = LSTMOptimizer(_network(config).to(dev), trained, config.scale, config.p)
        evaluation = _evaluate(config, rule, dev)
        made = provenance.collect(dev, train["wall_time_s"], code)
        made["evaluation_s"] = round(time.perf_counter() - start, 1)
        result = store.save(config, {"train": train, "eval": evaluation}, made, weights)
        store.end_progress(config)  # its checkpoint, under either name
        return result

    command = f"train {config.name} --profile {config.profile}"
    return obtain(config, store, compute, device=device, command=command)


def reevaluate_optimizer(
    config: OptimizerConfig, store: OptimizerStore, device: str | torch.device
) -> tuple[OptimizerResult, Verdict]:
    """Evaluate ``config``'s stored optimizer again on its fixed test problems (the baselines
    tuned again too) and compare with the stored evaluation."""
    result = store.get(config)
    if result is None:
        raise FileNotFoundError(f"{config.key}: no stored result in {store.root}; train it first")
    dev = resolve_device(device)
    cpu_numerics(dev)
    return result, compare_evaluations(
        _evaluate(config, result.rule(dev), dev), result.metrics["eval"]
    )
