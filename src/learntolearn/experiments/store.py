"""The results store: one folder per experiment key, for every kind of experiment.

``<root>/<key>/`` holds ``config.json`` (the experiment), ``metrics.json`` (what the book
prints), ``provenance.json`` (commit, device, versions, wall time, date), one tensor file (the
trained parameters, loaded with ``weights_only=True``) and ``SHA256SUMS``: the SHA-256 of each of
those four files, in ``sha256sum``'s format, verified whenever the folder is read. A folder
appears atomically, whole or not at all, and is never overwritten; a damaged one is reported
and does not keep the rest of the store from being read. A folder whose name is not a key
(``<name>-<profile>-<10 hex digits>``) is not a result and is left alone.

A run still in progress lives in ``<root>/in-progress/``: ``<key>.pt`` (the resumable
checkpoint) and ``<key>.json`` (what the book shows of it: iterations done, the milestone
evaluations, one record per sitting). In the committed store both are tracked by git, so a long
run advances over sittings on any machine.

The store knows nothing of the kinds: a :class:`Layout` says which config class reads a
folder's ``config.json``, what the tensor file is called and which result class to return.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from learntolearn.experiments.spec import ConfigError, Spec
from learntolearn.io import (
    atomic_folder,
    atomic_write,
    load_json,
    save_json,
    save_tensors,
    sha256,
    training_lock,
)
from learntolearn.objective import Params

__all__ = [
    "CHECKSUMS",
    "IN_PROGRESS",
    "DamagedResultError",
    "Layout",
    "Store",
    "Stored",
    "check_writable_folder",
    "checkpoint_iteration",
]

IN_PROGRESS = "in-progress"  # the folder of runs in progress, beside the results
CHECKSUMS = "SHA256SUMS"
JSON_FILES = ("config.json", "metrics.json", "provenance.json")
KEY = re.compile(r"[a-z0-9][a-z0-9_-]*-(smoke|cpu|paper)-[0-9a-f]{10}")


class DamagedResultError(ValueError):
    """A result folder is incomplete, unreadable or does not match its checksums or key."""


@dataclass(frozen=True)
class Stored:
    """A stored result of any kind: its config, metrics, provenance and folder."""

    config: Any
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    path: Path

    @property
    def key(self) -> str:
        return str(self.config.key)


R = TypeVar("R", bound=Stored)


@dataclass(frozen=True)
class Layout(Generic[R]):
    """How one kind's results are stored: the config class that reads ``config.json``, the
    tensor file's name, the metrics field that held its SHA-256 before ``SHA256SUMS`` existed
    (still written, for readers of the old format) and the result class."""

    spec: type[Spec]
    tensors: str | None  # None: a kind whose results are numbers only (the search)
    result: Callable[[Any, dict[str, Any], dict[str, Any], Path], R]
    tensor_sha_field: str = "model_sha256"

    @property
    def files(self) -> tuple[str, ...]:
        return (*JSON_FILES, self.tensors) if self.tensors else JSON_FILES


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


def write_checksums(folder: Path, files: tuple[str, ...]) -> None:
    """Write ``SHA256SUMS`` for ``files`` of ``folder`` (atomically)."""
    lines = "".join(f"{sha256(folder / name)}  {name}\n" for name in files)
    atomic_write(folder / CHECKSUMS, lambda tmp: tmp.write_text(lines))


def verify_checksums(folder: Path, files: tuple[str, ...]) -> None:
    """Check every file of ``files`` against ``SHA256SUMS``; a :class:`DamagedResultError`
    names the first that differs (or a missing record) and how to mend it."""
    restore = f"restore the folder from git (git checkout -- {folder}) or delete it to recompute it"
    path = folder / CHECKSUMS
    try:
        listed = dict(
            reversed(line.split(None, 1)) for line in path.read_text("ascii").splitlines() if line
        )
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DamagedResultError(f"{path} cannot be read ({err}); {restore}") from err
    for name in files:
        expected = listed.get(name)
        if expected is None:
            raise DamagedResultError(f"{path} records no checksum of {name}; {restore}")
        found = sha256(folder / name)
        if found != expected:
            raise DamagedResultError(
                f"{folder / name} has SHA-256 {found[:12]}…, not the {expected[:12]}… that "
                f"{CHECKSUMS} records: the file was damaged or replaced; {restore}"
            )


class Store(Generic[R]):
    """The results of one kind under ``root`` (see the module's docstring)."""

    def __init__(self, root: Path, layout: Layout[R]) -> None:
        self.root = Path(root)
        self.layout = layout

    # --- runs in progress ---------------------------------------------------------------
    def checkpoint_path(self, spec: Spec) -> Path:
        """The resumable checkpoint of ``spec``'s run while it is in progress."""
        return self.root / IN_PROGRESS / f"{spec.key}.pt"

    def progress(self, spec: Spec) -> dict[str, Any] | None:
        """The progress record of ``spec``'s run in progress (None: no run in progress)."""
        path = self.checkpoint_path(spec).with_suffix(".json")
        if not path.is_file() or not self.checkpoint_path(spec).is_file():
            return None
        return load_json(path)

    def resumable_iteration(self, spec: Spec) -> int:
        """Iterations done in ``spec``'s checkpoint (see :func:`checkpoint_iteration`)."""
        return checkpoint_iteration(self.checkpoint_path(spec))

    def training_lock(self, spec: Spec) -> contextlib.AbstractContextManager[None]:
        """Held while a process trains ``spec``: a second one is refused at once, before it
        resumes the same checkpoint (an advisory ``flock`` on ``in-progress/<key>.lock``)."""
        return training_lock(self.checkpoint_path(spec).with_suffix(".lock"), spec.key)

    def save_progress(self, spec: Spec, record: dict[str, Any]) -> None:
        """Write (atomically) the progress record beside the checkpoint."""
        save_json(self.checkpoint_path(spec).with_suffix(".json"), record)

    def end_progress(self, spec: Spec) -> None:
        """Remove the checkpoint and progress record of a run that is stored now."""
        checkpoint = self.checkpoint_path(spec)
        for path in (checkpoint, checkpoint.with_suffix(".json")):
            path.unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Fail now, before hours of training, if a result could not be saved here."""
        check_writable_folder(self.root, "LEARNTOLEARN_RESULTS (the results store)")
        check_writable_folder(self.root / IN_PROGRESS, f"{self.root} (its {IN_PROGRESS}/)")

    # --- stored results -----------------------------------------------------------------
    def path(self, spec: Spec) -> Path:
        return self.root / spec.key

    def get(self, spec: Spec) -> R | None:
        """The stored result of ``spec``, or None if there is none."""
        path = self.path(spec)
        return self.load(path) if path.is_dir() else None

    def config_of(self, path: Path) -> Any:
        """The config stored in result folder ``path``, checked against the folder's name."""
        try:
            config = self.layout.spec.from_dict(load_json(path / "config.json"))
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

    def load(self, path: Path) -> R:
        """The result in folder ``path``, every file verified against ``SHA256SUMS``."""
        for name in (*self.layout.files, CHECKSUMS):
            if not (path / name).is_file():
                raise DamagedResultError(
                    f"result folder {path} is incomplete ({name} is missing); "
                    "restore it from git or delete the folder to recompute it"
                )
        verify_checksums(path, self.layout.files)
        config = self.config_of(path)
        try:
            metrics = load_json(path / "metrics.json")
            record = load_json(path / "provenance.json")
        except (ValueError, OSError) as err:
            raise DamagedResultError(str(err)) from err
        return self.layout.result(config, metrics, record, path)

    def save(
        self,
        spec: Spec,
        metrics: dict[str, Any],
        provenance: dict[str, Any],
        tensors: Params | None,
    ) -> R:
        """Write a result; an existing result for the same key is never overwritten."""
        layout = self.layout

        def write(tmp: Path) -> None:
            if layout.tensors is not None:
                assert tensors is not None
                cpu = {k: v.detach().cpu() for k, v in tensors.items()}
                save_tensors(tmp / layout.tensors, cpu)
                digest = {layout.tensor_sha_field: sha256(tmp / layout.tensors)}
            else:
                digest = {}
            save_json(tmp / "config.json", spec.to_dict())
            save_json(tmp / "metrics.json", {**metrics, **digest})
            save_json(tmp / "provenance.json", provenance)
            write_checksums(tmp, layout.files)

        atomic_folder(self.path(spec), write)
        return self.load(self.path(spec))

    def update(self, result: Stored, metrics: dict[str, Any], provenance: dict[str, Any]) -> R:
        """Merge ``metrics`` and ``provenance`` into a stored result's files (a new evaluation
        or analysis; the tensors stay as they are) and their checksums."""
        verify_checksums(result.path, self.layout.files)
        save_json(result.path / "metrics.json", {**result.metrics, **metrics})
        save_json(result.path / "provenance.json", {**result.provenance, **provenance})
        write_checksums(result.path, self.layout.files)
        return self.load(result.path)

    def folders(self) -> list[Path]:
        """The folders named like a result's key (anything else is not the store's)."""
        if not self.root.is_dir():
            return []
        return [p for p in sorted(self.root.iterdir()) if p.is_dir() and KEY.fullmatch(p.name)]

    def scan(self) -> tuple[list[R], dict[Path, str]]:
        """Every readable result, sorted by key, and for each damaged folder what is wrong."""
        results, damaged = [], {}
        for path in self.folders():
            try:
                results.append(self.load(path))
            except DamagedResultError as err:
                damaged[path] = str(err)
        return results, damaged

    def results(self) -> list[R]:
        """Every readable result, sorted by key (see :meth:`scan` for the damaged ones)."""
        return self.scan()[0]

    def add_checksums(self) -> list[Path]:
        """Migration (once, for folders stored before ``SHA256SUMS``): write it for every result
        folder that lacks one and whose tensor file matches the SHA-256 its metrics record;
        returns the folders given one. A folder that fails that check is left as it is."""
        added = []
        tensor_sha = self.layout.tensor_sha_field
        if self.layout.tensors is None:
            return added
        for path in self.folders():
            if (path / CHECKSUMS).exists():
                continue
            try:
                self.config_of(path)
                recorded = load_json(path / "metrics.json").get(tensor_sha)
            except (DamagedResultError, ValueError, OSError):
                continue
            if recorded is not None and recorded == sha256(path / self.layout.tensors):
                write_checksums(path, self.layout.files)
                added.append(path)
        return added
