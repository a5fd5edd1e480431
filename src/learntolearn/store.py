"""The results store: one folder per experiment key, committed with the book.

``results/<key>/`` holds ``config.json`` (the experiment), ``metrics.json`` (what the book
prints), ``provenance.json`` (commit, device, versions, wall time, date) and ``model.pt`` (the
trained parameters: small, loaded with ``weights_only=True``). A folder appears atomically, whole
or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, ExperimentConfig
from .functional import Params
from .io import load_json, load_tensors, save_json, save_tensors
from .paths import results_dir

__all__ = ["Result", "ResultStore"]


@dataclass(frozen=True)
class Result:
    config: ExperimentConfig
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    path: Path

    @property
    def key(self) -> str:
        return self.config.key

    def params(self, device: str | torch.device = "cpu") -> Params:
        """The trained parameters (plain tensors, no grad)."""
        return load_tensors(self.path / "model.pt", map_location=device)


class ResultStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else results_dir()

    def path(self, config: ExperimentConfig) -> Path:
        return self.root / config.key

    def get(self, config: ExperimentConfig) -> Result | None:
        """The stored result of ``config``, or None if there is none."""
        path = self.path(config)
        return self._load(path) if path.is_dir() else None

    def _load(self, path: Path) -> Result:
        for name in ("config.json", "metrics.json", "provenance.json", "model.pt"):
            if not (path / name).is_file():
                raise ValueError(
                    f"result folder {path} is incomplete ({name} is missing); "
                    "delete the folder to recompute it"
                )
        try:
            config = ExperimentConfig.from_dict(load_json(path / "config.json"))
        except ConfigError as err:
            raise ValueError(f"{path / 'config.json'} is not a valid config: {err}") from err
        if config.key != path.name:
            raise ValueError(
                f"{path} holds a result for key {config.key}, not {path.name}: the folder was "
                "renamed or its config edited; delete it to recompute it"
            )
        return Result(
            config, load_json(path / "metrics.json"), load_json(path / "provenance.json"), path
        )

    def save(
        self,
        config: ExperimentConfig,
        metrics: dict[str, Any],
        provenance: dict[str, Any],
        params: Params,
    ) -> Result:
        """Write a result; an existing result for the same key is never overwritten."""
        final = self.path(config)
        if final.exists():
            raise FileExistsError(f"{final} exists already; delete it first to replace it")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{config.key}."))
        tmp.chmod(0o755)
        try:
            save_json(tmp / "config.json", config.to_dict())
            save_json(tmp / "metrics.json", metrics)
            save_json(tmp / "provenance.json", provenance)
            save_tensors(tmp / "model.pt", {k: v.detach().cpu() for k, v in params.items()})
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self._load(final)

    def update_evaluation(
        self, config: ExperimentConfig, evaluation: dict[str, Any], record: dict[str, Any]
    ) -> Result:
        """Replace a stored result's evaluation (its trained parameters stay as they are).

        Used when the evaluation code improves: ``record`` (commit, device, date of the new
        evaluation) is kept under ``provenance["evaluation"]``, beside the training record.
        """
        return self._update(self._require(config), {"eval": evaluation}, {"evaluation": record})

    def add_analysis(
        self, config: ExperimentConfig, name: str, values: dict[str, Any], record: dict[str, Any]
    ) -> Result:
        """Store analysis ``name`` of a trained result under ``metrics["analyses"][name]``, with
        its own record under ``provenance["analyses"][name]``."""
        result = self._require(config)
        return self._update(
            result,
            {"analyses": {**result.metrics.get("analyses", {}), name: values}},
            {"analyses": {**result.provenance.get("analyses", {}), name: record}},
        )

    def _require(self, config: ExperimentConfig) -> Result:
        result = self.get(config)
        if result is None:
            raise FileNotFoundError(f"no stored result for {config.key} in {self.root}")
        return result

    def _update(
        self, result: Result, metrics: dict[str, Any], provenance: dict[str, Any]
    ) -> Result:
        """Merge ``metrics`` and ``provenance`` into a stored result's files."""
        save_json(result.path / "metrics.json", {**result.metrics, **metrics})
        save_json(result.path / "provenance.json", {**result.provenance, **provenance})
        return self._load(result.path)

    def trained_like(self, config: ExperimentConfig) -> Result | None:
        """A stored result trained exactly as ``config`` would be (same training key): its
        parameters can be evaluated under ``config`` instead of training again."""
        for result in self.results():
            if result.config.training_key == config.training_key and result.key != config.key:
                return result
        return None

    def results(self) -> list[Result]:
        """Every stored result, sorted by key (damaged folders are reported, not skipped)."""
        if not self.root.is_dir():
            return []
        return [
            self._load(p)
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]
