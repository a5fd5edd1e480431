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

Git holds no tensor file over :data:`TENSOR_LIMIT` (8 MiB; GitHub refuses files over 100 MB, and
a repository that grows by tens of MB a sitting is not one to clone). Such a file is written
under its *local* name instead (``model.local.pt``, ``<key>.local.pt``; ``*.local.pt`` is
git-ignored): a result's stays listed in ``SHA256SUMS`` (with its size on a ``#`` line, which
``sha256sum -c`` skips) and is verified whenever it is present; without it (a fresh clone) the
result's config, metrics and provenance still load, verified, and asking for its parameters
raises :class:`LocalTensorsMissingError`, which says how to retrain them. A checkpoint over the
limit resumes only on the machine that wrote it. :meth:`Store.localise_tensors` renames the
tensor files of folders stored before the limit (keys and the other files unchanged).

The store knows nothing of the kinds: a :class:`Layout` says which config class reads a
folder's ``config.json``, what the tensor file is called and which result class to return.
"""

from __future__ import annotations

import contextlib
import os
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
    sha256,
    tensor_bytes,
    training_lock,
)
from learntolearn.objective import Params

__all__ = [
    "CHECKSUMS",
    "IN_PROGRESS",
    "TENSOR_LIMIT",
    "DamagedResultError",
    "Layout",
    "LocalTensorsMissingError",
    "Store",
    "Stored",
    "check_writable_folder",
    "checkpoint_file",
    "checkpoint_iteration",
    "committed",
    "local_name",
    "mebibytes",
    "save_checkpoint",
    "tensor_file",
]

IN_PROGRESS = "in-progress"  # the folder of runs in progress, beside the results
CHECKSUMS = "SHA256SUMS"
JSON_FILES = ("config.json", "metrics.json", "provenance.json")
KEY = re.compile(r"[a-z0-9][a-z0-9_-]*-(smoke|cpu|paper)-[0-9a-f]{10}")
# The largest tensor file (a result's parameters, a run's checkpoint) git holds, in bytes; a
# larger one is written under its git-ignored local name (see the module's docstring).
TENSOR_LIMIT = 8 * 2**20
SIZE_LINE = re.compile(r"# (\S+): (\d+) bytes")


class DamagedResultError(ValueError):
    """A result folder is incomplete, unreadable or does not match its checksums or key."""


class LocalTensorsMissingError(FileNotFoundError):
    """A result's tensor file is over :data:`TENSOR_LIMIT`, hence not in git, and not here."""


def local_name(name: str) -> str:
    """The git-ignored name of tensor file ``name`` when it is over :data:`TENSOR_LIMIT`
    (``model.pt`` -> ``model.local.pt``)."""
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.local.{suffix}"


def committed(size: int) -> bool:
    """Whether a tensor file of ``size`` bytes goes into git (at most :data:`TENSOR_LIMIT`)."""
    return size <= TENSOR_LIMIT


def mebibytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def checkpoint_file(path: Path) -> Path:
    """Where the checkpoint committed as ``path`` is: ``path`` or, over :data:`TENSOR_LIMIT`,
    its local twin (the newer if a crash left both); ``path`` when there is none."""
    found = [p for p in (path, path.with_name(local_name(path.name))) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else path


def save_checkpoint(path: Path, obj: Any) -> Path:
    """Write ``obj`` (see :func:`~learntolearn.io.save_tensors`) as checkpoint ``path``, or as
    its git-ignored local twin when it is over :data:`TENSOR_LIMIT`; the other name is removed.
    Returns the file written."""
    data = tensor_bytes(obj)
    local = path.with_name(local_name(path.name))
    target, other = (path, local) if committed(len(data)) else (local, path)
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    other.unlink(missing_ok=True)
    return target


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


def tensor_file(result: Stored, name: str) -> Path:
    """The tensor file ``name`` of ``result`` (or its local twin, the name ``SHA256SUMS``
    lists), verified; :class:`LocalTensorsMissingError` when it is a local file absent here."""
    listed, sizes = read_checksums(result.path)
    local = local_name(name)
    if local not in listed:
        verify_checksums(result.path, (name,))
        return result.path / name
    if not (result.path / local).is_file():
        c = result.config
        raise LocalTensorsMissingError(
            f"{result.key}: its parameters ({local}, {mebibytes(sizes.get(local, 0))}) are not "
            f"in git, whose limit for tensor files is {mebibytes(TENSOR_LIMIT)}, and not on "
            "this machine; retrain them into another store, `LEARNTOLEARN_RESULTS=/tmp/retrained "
            f"python -m learntolearn train {c.name} --profile {c.profile}`, and copy the "
            f"{local} of its folder {result.key} into {result.path}/ ({CHECKSUMS} then checks it "
            "is the same file: it is, bit for bit, on the CPU instruction set provenance.json "
            "records)"
        )
    verify_checksums(result.path, (local,))
    return result.path / local


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
    """Iterations done in the training checkpoint committed as ``path`` (or its local twin,
    see :func:`checkpoint_file`; 0: none, or unreadable: resuming it then says what is wrong)."""
    path = checkpoint_file(path)
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


def _restore(folder: Path) -> str:
    return f"restore the folder from git (git checkout -- {folder}) or delete it to recompute it"


def read_checksums(folder: Path) -> tuple[dict[str, str], dict[str, int]]:
    """``SHA256SUMS`` of ``folder``: the SHA-256 of each file listed, and the size recorded of
    each local tensor file (its ``#`` line)."""
    path = folder / CHECKSUMS
    try:
        lines = [line for line in path.read_text("ascii").splitlines() if line]
        listed = dict(reversed(line.split(None, 1)) for line in lines if line[0] != "#")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DamagedResultError(f"{path} cannot be read ({err}); {_restore(folder)}") from err
    sizes = {m[1]: int(m[2]) for line in lines if (m := SIZE_LINE.match(line))}
    return listed, sizes


def write_checksums(folder: Path, files: tuple[str, ...]) -> None:
    """Write ``SHA256SUMS`` for ``files`` of ``folder`` (atomically). A local tensor file
    absent here keeps the checksum and size recorded before; each local one gets a size line."""
    listed, sizes = read_checksums(folder) if (folder / CHECKSUMS).is_file() else ({}, {})
    lines, notes = [], []
    for name in files:
        present = (folder / name).is_file() or name not in listed
        lines.append(f"{sha256(folder / name) if present else listed[name]}  {name}\n")
        if ".local." in name:
            size = (folder / name).stat().st_size if present else sizes.get(name, 0)
            notes.append(
                f"# {name}: {size} bytes, over the {mebibytes(TENSOR_LIMIT)} limit for tensor "
                "files in git: not committed (git-ignored)\n"
            )
    text = "".join(lines + notes)
    atomic_write(folder / CHECKSUMS, lambda tmp: tmp.write_text(text))


def verify_checksums(folder: Path, files: tuple[str, ...]) -> None:
    """Check every file of ``files`` against ``SHA256SUMS``; a :class:`DamagedResultError`
    names the first that differs (or a missing record) and how to mend it."""
    restore = _restore(folder)
    path = folder / CHECKSUMS
    listed, _ = read_checksums(folder)
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
        """The resumable checkpoint of ``spec``'s run while it is in progress, by the name git
        holds it under (over :data:`TENSOR_LIMIT` it is the local twin: see
        :meth:`checkpoint_file`, :func:`save_checkpoint`)."""
        return self.root / IN_PROGRESS / f"{spec.key}.pt"

    def checkpoint_file(self, spec: Spec) -> Path:
        """Where ``spec``'s checkpoint is now (see :func:`checkpoint_file`)."""
        return checkpoint_file(self.checkpoint_path(spec))

    def progress(self, spec: Spec) -> dict[str, Any] | None:
        """The progress record of ``spec``'s run in progress (None: no run in progress)."""
        path = self.checkpoint_path(spec).with_suffix(".json")
        if not path.is_file() or not self.checkpoint_file(spec).is_file():
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
        local = checkpoint.with_name(local_name(checkpoint.name))
        for path in (checkpoint, local, checkpoint.with_suffix(".json")):
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

    def files(self, path: Path) -> tuple[str, ...]:
        """The files ``SHA256SUMS`` lists of result folder ``path``: the layout's, its tensor
        file under its local name if that is the one listed."""
        tensors = self.layout.tensors
        if tensors is None or not (path / CHECKSUMS).is_file():
            return self.layout.files
        local = local_name(tensors)
        return (*JSON_FILES, local) if local in read_checksums(path)[0] else self.layout.files

    def present(self, path: Path) -> tuple[str, ...]:
        """The files of :meth:`files` that must be in ``path`` (a local tensor file may not)."""
        return tuple(n for n in self.files(path) if ".local." not in n or (path / n).is_file())

    def load(self, path: Path) -> R:
        """The result in folder ``path``, every file verified against ``SHA256SUMS`` (a local
        tensor file when it is here)."""
        for name in (*self.present(path), CHECKSUMS):
            if not (path / name).is_file():
                raise DamagedResultError(
                    f"result folder {path} is incomplete ({name} is missing); "
                    "restore it from git or delete the folder to recompute it"
                )
        verify_checksums(path, self.present(path))
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
            files, digest = JSON_FILES, {}
            if layout.tensors is not None:
                assert tensors is not None
                data = tensor_bytes({k: v.detach().cpu() for k, v in tensors.items()})
                name = layout.tensors if committed(len(data)) else local_name(layout.tensors)
                atomic_write(tmp / name, lambda p: p.write_bytes(data))
                files, digest = (*JSON_FILES, name), {layout.tensor_sha_field: sha256(tmp / name)}
            save_json(tmp / "config.json", spec.to_dict())
            save_json(tmp / "metrics.json", {**metrics, **digest})
            save_json(tmp / "provenance.json", provenance)
            write_checksums(tmp, files)

        atomic_folder(self.path(spec), write)
        return self.load(self.path(spec))

    def update(self, result: Stored, metrics: dict[str, Any], provenance: dict[str, Any]) -> R:
        """Merge ``metrics`` and ``provenance`` into a stored result's files (a new evaluation
        or analysis; the tensors stay as they are) and their checksums."""
        verify_checksums(result.path, self.present(result.path))
        save_json(result.path / "metrics.json", {**result.metrics, **metrics})
        save_json(result.path / "provenance.json", {**result.provenance, **provenance})
        write_checksums(result.path, self.files(result.path))
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

    def localise_tensors(self) -> list[Path]:
        """Migration (once, for what was stored before :data:`TENSOR_LIMIT`): rename every tensor
        file over the limit to its git-ignored local name, in each verified result folder (its
        ``SHA256SUMS`` rewritten: the same checksums, the new name, the size) and in
        ``in-progress/`` (a run being trained, whose lock exists, is left alone). Keys and the
        other files do not change. Returns the files renamed, by their new names."""
        renamed: list[Path] = []
        tensors = self.layout.tensors
        for path in self.folders() if tensors is not None else []:
            assert tensors is not None
            big = path / tensors
            if not big.is_file() or committed(big.stat().st_size):
                continue
            try:
                self.load(path)
            except DamagedResultError:
                continue  # ``list`` reports it; nothing is renamed in a damaged folder
            os.replace(big, path / local_name(tensors))
            write_checksums(path, (*JSON_FILES, local_name(tensors)))
            renamed.append(path / local_name(tensors))
        running = self.root / IN_PROGRESS
        for checkpoint in sorted(running.glob("*.pt")) if running.is_dir() else []:
            local = checkpoint.with_name(local_name(checkpoint.name))
            if (
                ".local." in checkpoint.name
                or committed(checkpoint.stat().st_size)
                or checkpoint.with_suffix(".lock").exists()
            ):
                continue
            os.replace(checkpoint, local)
            renamed.append(local)
        return renamed
