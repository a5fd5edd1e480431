"""The few-shot results: :class:`Result` (a stored run, with its curves and parameters) and
:class:`ResultStore`, the engine's store laid out for them (``model.pt``), with what only
few-shot runs have (``model.pt`` over the engine's ``TENSOR_LIMIT`` is ``model.local.pt``, not
in git): a run trained the same way under another evaluation protocol, a new
evaluation of stored parameters, and analyses stored beside the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from learntolearn.experiments.store import (
    DamagedResultError,
    Layout,
    Store,
    Stored,
    tensor_file,
)
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.io import load_tensors
from learntolearn.objective import Params
from learntolearn.paths import results_dir

__all__ = ["Result", "ResultStore"]


@dataclass(frozen=True)
class Result(Stored):
    config: ExperimentConfig

    def curve(self, key: str, shots: int | None = None) -> dict[str, Any]:
        """The stored fine-tuning curve under metric ``key`` (a batch-norm mode, or a sinusoid
        region) for ``shots`` support examples (default: the first of ``eval_shots``)."""
        k = self.config.eval_shots[0] if shots is None else shots
        return self.metrics["eval"][key][str(k)]

    @property
    def reported_step(self) -> int:
        """The adaptation step the papers report (``test_steps``; else the last one)."""
        c = self.config
        return c.test_steps if c.test_steps is not None else c.eval_steps

    @property
    def cost(self) -> dict[str, float]:
        """Wall time and saved memory of one meta-iteration, measured at the end of training."""
        return self.metrics["train"]["cost"]

    def params(self, device: str | torch.device = "cpu") -> Params:
        """The trained parameters (plain tensors, no grad), after checking the checksum; a
        :class:`~learntolearn.experiments.store.LocalTensorsMissingError` says how to get them
        when they are over the store's limit for git and not on this machine."""
        return load_tensors(tensor_file(self, "model.pt"), map_location=device)


LAYOUT = Layout(spec=ExperimentConfig, tensors="model.pt", result=Result)


class ResultStore(Store[Result]):
    """The few-shot results under ``root`` (default: the committed store)."""

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(Path(root) if root is not None else results_dir(), LAYOUT)

    def update_evaluation(
        self, config: ExperimentConfig, evaluation: dict[str, Any], record: dict[str, Any]
    ) -> Result:
        """Replace a stored result's evaluation (its trained parameters stay as they are).

        Used when the evaluation code improves: ``record`` (commit, device, date of the new
        evaluation) is kept under ``provenance["evaluation"]``, beside the training record.
        """
        return self.update(self._require(config), {"eval": evaluation}, {"evaluation": record})

    def add_analysis(
        self, config: ExperimentConfig, name: str, values: dict[str, Any], record: dict[str, Any]
    ) -> Result:
        """Store analysis ``name`` of a trained result under ``metrics["analyses"][name]``, with
        its own record under ``provenance["analyses"][name]``."""
        result = self._require(config)
        return self.update(
            result,
            {"analyses": {**result.metrics.get("analyses", {}), name: values}},
            {"analyses": {**result.provenance.get("analyses", {}), name: record}},
        )

    def _require(self, config: ExperimentConfig) -> Result:
        result = self.get(config)
        if result is None:
            raise FileNotFoundError(f"no stored result for {config.key} in {self.root}")
        return result

    def trained_like(self, config: ExperimentConfig) -> Result | None:
        """A stored result trained exactly as ``config`` would be (same training key): its
        parameters can be evaluated under ``config`` instead of training again. Damaged
        folders are passed over (``list`` reports them)."""
        for path in self.folders():
            try:
                other = self.config_of(path)
                if other.training_key == config.training_key and other.key != config.key:
                    return self.load(path)
            except DamagedResultError:
                continue
        return None
