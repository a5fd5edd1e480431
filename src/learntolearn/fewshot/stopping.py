"""A stopping rule fixed before the run, for protocols far past convergence (issue 22).

Every ``stop_every`` iterations the run is scored on fixed tasks of the *validation* classes
(never the test classes), at the reported step, in the batch-norm mode the run trains in; the best
parameters so far are kept, and the run stops when the score has not improved by more than
``stop_delta`` for ``stop_patience`` evaluations. The kept parameters are the ones evaluated on
the test tasks and stored: model selection on validation, as Snell et al. (2017, Sec. 3.1) and
Vinyals et al. (2016) did, and not on the test classes. The rule's fields are part of the
config, so of its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from learntolearn.fewshot.evaluation import at_reported_step, evaluate
from learntolearn.objective import Params

if TYPE_CHECKING:
    from learntolearn.fewshot.config import ExperimentConfig
    from learntolearn.fewshot.runs import Setup

__all__ = ["ValidationPlateau"]


class ValidationPlateau:
    """The engine's :class:`~learntolearn.experiments.training.Stopper` for a few-shot run."""

    def __init__(self, config: ExperimentConfig, setup: Setup) -> None:
        assert config.stop_every and config.stop_patience and config.stop_delta is not None
        assert setup.family.validation_sets is not None
        self.every, self.patience, self.delta = (
            config.stop_every,
            config.stop_patience,
            config.stop_delta,
        )
        self.config = at_reported_step(config)
        self.sets = setup.family.validation_sets(self.config)
        self.setup = setup
        self.records: list[dict[str, float]] = []  # the validation curve
        self.best: Params | None = None
        self.best_iteration = 0

    def score(self, params: Params) -> tuple[float, float]:
        """Mean and 95% CI half-width of the validation accuracy at the reported step."""
        found = evaluate(self.config, self.setup, params, self.sets)
        mode = "transductive" if self.setup.objective.transductive else "non-transductive"
        curve = next(iter(found[mode].values()))
        return curve["mean"][-1], curve["ci95"][-1]

    def check(self, iteration: int, params: Params) -> bool:
        mean, ci = self.score(params)
        best = max((r["accuracy"] for r in self.records), default=-float("inf"))
        self.records.append({"iteration": iteration, "accuracy": mean, "ci95": ci})
        if mean > best + self.delta or self.best is None:
            self.best = {k: v.detach().clone() for k, v in params.items()}
            self.best_iteration = iteration
        since = sum(1 for r in self.records if r["iteration"] > self.best_iteration)
        return since >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records, "best": self.best, "best_iteration": self.best_iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = list(state["records"])
        self.best = state["best"]
        self.best_iteration = int(state["best_iteration"])

    def summary(self, iteration: int, stopped: bool) -> dict[str, Any]:
        """What the stored metrics say of the rule: its curve, the kept iteration, and where
        and why the run ended."""
        return {
            "every": self.every,
            "patience": self.patience,
            "delta": self.delta,
            "curve": self.records,
            "best_iteration": self.best_iteration,
            "ended_at": iteration,
            "reason": "validation plateau" if stopped else "the protocol's last iteration",
        }

    def kept(self, params: Params) -> Params:
        """The parameters to evaluate and store: the best on validation."""
        if self.best is None:
            return params
        device = next(iter(params.values())).device
        return {k: v.to(device) for k, v in self.best.items()}
