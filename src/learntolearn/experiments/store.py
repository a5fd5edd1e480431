"""The results store: one folder per experiment key, committed with the book.

``results/<key>/`` holds ``config.json`` (the experiment), ``metrics.json`` (what the book
prints, with the SHA-256 of ``model.pt`` under ``model_sha256``), ``provenance.json`` (commit,
device, versions, wall time, date) and ``model.pt`` (the trained parameters: small, loaded with
``weights_only=True`` after its checksum is verified). A folder appears atomically, whole or
not at all, and is never overwritten. A damaged folder is reported, and does not keep the rest
of the store from being read.

A run still in progress lives in ``<store>/in-progress/``: ``<key>.pt`` (the resumable
checkpoint: parameters, optimiser state, generator state, history) and ``<key>.json`` (what the
book shows of it: iterations done, the milestone evaluations, one record per sitting). In the
committed store both are tracked by git, so a long run advances over sittings on any machine.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from learntolearn.experiments.config import ConfigError, ExperimentConfig
from learntolearn.io import (
    atomic_folder,
    load_json,
    load_tensors,
    save_json,
    save_tensors,
    sha256,
    training_lock,
)
from learntolearn.objective import Params
from learntolearn.paths import results_dir

__all__ = [
    "IN_PROGRESS",
    "DamagedResultError",
    "Result",
    "ResultStore",
    "check_writable_folder",
    "checkpoint_iteration",
]

FILES = ("config.json", "metrics.json", "provenance.json", "model.pt")
IN_PROGRESS = "in-progress"  # the folder of runs in progress, beside the results
# the other stores' folders: the learned optimizers (experiments/optimizer_runs) and the
# hyperparameter searches' summaries (experiments/search_runs)
OTHER = ("learned-optimizers", "search")


class DamagedResultError(ValueError):
    """A result folder is incomplete, unreadable or does not match its checksum or key."""


@dataclass(frozen=True)
class Result:
    config: ExperimentConfig
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    path: Path

    @property
    def key(self) -> str:
        return self.config.key

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
        """The trained parameters (plain tensors, no grad), after checking the checksum."""
        _verify_model(self.path, self.metrics)
        return load_tensors(self.path / "model.pt", map_location=device)


def _verify_model(path: Path, metrics: dict[str, Any]) -> None:
    expected = metrics.get("model_sha256")
    if expected is None:
        raise DamagedResultError(
            f"{path / 'metrics.json'} records no model_sha256, so {path / 'model.pt'} cannot be "
            "verified; delete the folder to recompute it"
        )
    found = sha256(path / "model.pt")
    if found != expected:
        raise DamagedResultError(
            f"{path / 'model.pt'} has SHA-256 {found[:12]}…, not the {expected[:12]}… its "
            "metrics record: the file was damaged or replaced; restore it from git "
            f"(git checkout -- {path}) or delete the folder to recompute it"
        )


def checkpoint_iteration(path: Path) -> int:
    """Iterations done in the training checkpoint at ``path`` (0: none, or unreadable;
    resuming it then reports what is wrong with it)."""
    if not path.is_file():
        return 0
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["iteration"])
    except Exception:
        return 0


def check_writable_folder(folder: Path, what: str) -> None:
    """Fail now, before hours of work, if nothing could be written to ``folder`` (``what`` names
    the setting that chose it)."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder; point {what} at a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PermissionError(
            f"cannot write to {folder} ({err.strerror or err}); make it writable or point "
            f"{what} at a writable folder"
        ) from err


class ResultStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else results_dir()

    def checkpoint_path(self, config: ExperimentConfig) -> Path:
        """The resumable checkpoint of ``config``'s run while it is in progress."""
        return self.root / IN_PROGRESS / f"{config.key}.pt"

    def progress(self, config: ExperimentConfig) -> dict[str, Any] | None:
        """The progress record of ``config``'s run in progress (None: no run in progress)."""
        path = self.checkpoint_path(config).with_suffix(".json")
        if not path.is_file() or not self.checkpoint_path(config).is_file():
            return None
        return load_json(path)

    def resumable_iteration(self, config: ExperimentConfig) -> int:
        """Iterations done in ``config``'s checkpoint (see :func:`checkpoint_iteration`)."""
        return checkpoint_iteration(self.checkpoint_path(config))

    def training_lock(self, config: ExperimentConfig) -> contextlib.AbstractContextManager[None]:
        """Held while a process trains ``config``: a second one is refused at once, before it
        resumes the same checkpoint (an advisory ``flock`` on ``in-progress/<key>.lock``)."""
        return training_lock(self.checkpoint_path(config).with_suffix(".lock"), config.key)

    def save_progress(self, config: ExperimentConfig, record: dict[str, Any]) -> None:
        """Write (atomically) the progress record beside the checkpoint."""
        save_json(self.checkpoint_path(config).with_suffix(".json"), record)

    def end_progress(self, config: ExperimentConfig) -> None:
        """Remove the checkpoint and progress record of a run that is stored now."""
        checkpoint = self.checkpoint_path(config)
        for path in (checkpoint, checkpoint.with_suffix(".json")):
            path.unlink(missing_ok=True)

    def path(self, config: ExperimentConfig) -> Path:
        return self.root / config.key

    def get(self, config: ExperimentConfig) -> Result | None:
        """The stored result of ``config``, or None if there is none."""
        path = self.path(config)
        return self._load(path) if path.is_dir() else None

    def check_writable(self) -> None:
        """Fail now, before hours of training, if a result could not be saved here."""
        check_writable_folder(self.root, "LEARNTOLEARN_RESULTS (the results store)")

    def _config(self, path: Path) -> ExperimentConfig:
        try:
            config = ExperimentConfig.from_dict(load_json(path / "config.json"))
        except (ConfigError, ValueError, OSError) as err:
            raise DamagedResultError(
                f"{path / 'config.json'} is not a valid config: {err}"
            ) from err
        if config.key != path.name:
            raise DamagedResultError(
                f"{path} holds a result for key {config.key}, not {path.name}: the folder was "
                "renamed or its config edited; delete it to recompute it"
            )
        return config

    def _load(self, path: Path) -> Result:
        for name in FILES:
            if not (path / name).is_file():
                raise DamagedResultError(
                    f"result folder {path} is incomplete ({name} is missing); "
                    "delete the folder to recompute it"
                )
        config = self._config(path)
        try:
            metrics = load_json(path / "metrics.json")
            record = load_json(path / "provenance.json")
        except (ValueError, OSError) as err:
            raise DamagedResultError(str(err)) from err
        _verify_model(path, metrics)
        return Result(config, metrics, record, path)

    def save(
        self,
        config: ExperimentConfig,
        metrics: dict[str, Any],
        provenance: dict[str, Any],
        params: Params,
    ) -> Result:
        """Write a result; an existing result for the same key is never overwritten."""
        final = self.path(config)

        def write(tmp: Path) -> None:
            save_tensors(tmp / "model.pt", {k: v.detach().cpu() for k, v in params.items()})
            save_json(tmp / "config.json", config.to_dict())
            save_json(tmp / "metrics.json", {**metrics, "model_sha256": sha256(tmp / "model.pt")})
            save_json(tmp / "provenance.json", provenance)

        atomic_folder(final, write)
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
        parameters can be evaluated under ``config`` instead of training again. Damaged
        folders are passed over (``list`` reports them)."""
        for path in self._folders():
            try:
                other = self._config(path)
                if other.training_key == config.training_key and other.key != config.key:
                    return self._load(path)
            except DamagedResultError:
                continue
        return None

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [
            p
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and p.name not in (IN_PROGRESS, *OTHER)
        ]

    def scan(self) -> tuple[list[Result], dict[Path, str]]:
        """Every readable result, sorted by key, and for each damaged folder what is wrong."""
        results, damaged = [], {}
        for path in self._folders():
            try:
                results.append(self._load(path))
            except DamagedResultError as err:
                damaged[path] = str(err)
        return results, damaged

    def results(self) -> list[Result]:
        """Every readable result, sorted by key (see :meth:`scan` for the damaged ones)."""
        return self.scan()[0]
