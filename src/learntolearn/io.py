"""Atomic file writes and safe checkpoint loading, shared by the data cache and the store."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "atomic_folder",
    "atomic_write",
    "finite_json",
    "load_checked_json",
    "load_json",
    "load_tensors",
    "save_checked_json",
    "save_json",
    "save_tensors",
    "sha256",
    "tensor_bytes",
    "training_lock",
]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A crash or a full disk leaves the previous file untouched, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a fresh temporary folder beside ``final``, then rename it to
    ``final``: the folder appears whole or not at all, and an existing one is never replaced."""
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} exists already; delete it first to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    tmp.chmod(0o755)
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def training_lock(path: Path, key: str) -> Iterator[None]:
    """Held while a process trains ``key``: a second one is refused at once, before it resumes
    the same checkpoint (an advisory ``flock`` on ``path``, removed when released)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another process is training {key} (it holds {path}); wait for it to finish or "
                "stop it, then run this again"
            ) from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by ``None``, so that it is valid
    JSON; a mean over test tasks of which some diverged is such a value (the stored count of
    diverged tasks and the median say what happened)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def save_json(path: Path, obj: Any) -> None:
    """Write valid JSON (non-finite numbers become ``null``, see :func:`finite_json`)."""
    text = json.dumps(finite_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def load_json(path: Path, remedy: str = "it is damaged: delete it to recompute it") -> Any:
    """Read a UTF-8 JSON file; a malformed one, or one that is not UTF-8 text (UTF-16, binary),
    gets a :class:`ValueError` naming it, the parse error and ``remedy``."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON (it is not UTF-8 text: {err}); {remedy}"
        ) from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {remedy}") from err


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checked_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (:func:`save_json`) and its SHA-256 beside it, in ``sha256sum``'s
    format (``<path>.sha256``), both atomically."""
    path = Path(path)
    save_json(path, obj)
    line = f"{sha256(path)}  {path.name}\n"
    atomic_write(_checksum_file(path), lambda p: p.write_text(line))


def load_checked_json(path: Path, remedy: str) -> Any:
    """Read a JSON file written by :func:`save_checked_json`, its SHA-256 verified; a missing,
    damaged or edited file (or checksum) gets a one-line error naming it and ``remedy``."""
    path = Path(path)
    check = _checksum_file(path)
    if not path.is_file() or not check.is_file():
        missing = path if not path.is_file() else check
        raise FileNotFoundError(f"{missing} is missing; {remedy}")
    words = check.read_text().split()
    if not words or words[0] != sha256(path):
        raise ValueError(
            f"{path} does not match its checksum {check.name}: it is damaged; {remedy}"
        )
    return load_json(path, remedy)


def tensor_bytes(obj: Any) -> bytes:
    """``torch.save`` of ``obj`` as bytes: the same object always gives the same bytes (saved
    to a named file, torch puts the file's name inside the archive)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_tensors(path: Path, obj: Any) -> None:
    """``torch.save`` atomically (tensors, dicts, lists, numbers and strings only); the file's
    bytes depend on ``obj`` alone (see :func:`tensor_bytes`)."""
    data = tensor_bytes(obj)
    atomic_write(path, lambda p: p.write_bytes(data))


def load_tensors(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``; a truncated or foreign file gets a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise ValueError(
            f"cannot read {path}: {type(err).__name__}: {err}. The file is truncated, damaged "
            "or not a learntolearn checkpoint; delete it (training resumes from scratch or "
            "from the previous result)"
        ) from err
